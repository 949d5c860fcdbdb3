"""What a hook is told: the event envelope, the payload of each type, and when a region is lost. No I/O.

Every event is one JSON object (bgpctl/schemas/hook-event.schema.json, docs/hooks.md)::

    {"version": 1, "id": "<uuid4 hex>", "time": "2026-12-01T07:12:00.123456Z", "type": "region.lost",
     "host": "<hostname>", "payload": {...}}

``time`` is when the daemon decided (the evaluation step that produced it), RFC 3339 in UTC. ``id`` is
unique per event: a receiver that sees an id twice (a retry whose first answer was lost) drops the copy.

Regions (:func:`region_usable`, :func:`region_events`): a region is *usable* while at least one of its
paths is ``preferred`` or ``standby`` (up, whether or not traffic prefers it now: a drained region and the
second region of an active-standby service stay usable) for at least one service, in the path states of
the plan just made (:func:`bgpctl.core.plan.path_states` of the health and overrides it was made with). It
is *unusable* when none is and every one of its paths is judged (each degraded, suspect or down); while
a path of it is still unknown (the start) nothing is said. ``region.lost`` fires when a region that was
usable is found unusable; ``region.regained`` when a lost region is usable again. At the start every
region counts as usable, so a region already dead when the daemon starts is reported lost once its
paths are judged, and a restart of a healthy daemon says nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bgpctl import events
from bgpctl.core.types import PathHealth, PathKey, RouteChange, Transition
from bgpctl.policy.model import PathState, Policy
from bgpctl.render import change_to_dict, transition_to_dict

EVENT_VERSION = 1
"""The envelope's ``version``: raised only when a field changes meaning or goes away (new fields do not)."""

States = Mapping[PathKey, PathState | None]
"""Every path's state in a plan (bgpctl.core.plan.path_states): None while its health is unknown."""

_USABLE = (PathState.PREFERRED, PathState.STANDBY)


@dataclass(frozen=True, slots=True)
class Event:
    """One event, made once and handed to every hook that wants its type. ``body`` is the exact bytes sent
    (and signed): the JSON text of :attr:`data`, keys sorted, no spaces."""

    type: str
    data: Mapping[str, Any]
    body: bytes

    @property
    def id(self) -> str:
        return str(self.data["id"])


def rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_event(type_: str, payload: Mapping[str, Any], *, at: float, host: str, id_: str | None = None) -> Event:
    if type_ not in events.HOOK_EVENT_TYPES:
        raise ValueError(f"{type_!r} is not a hook event type (bgpctl.events.HOOK_EVENT_TYPES)")
    data = {
        "version": EVENT_VERSION,
        "id": id_ or uuid.uuid4().hex,
        "time": rfc3339(at),
        "type": type_,
        "host": host,
        "payload": dict(payload),
    }
    return Event(type_, data, json.dumps(data, sort_keys=True, separators=(",", ":")).encode())


# --------------------------------------------------------------------------------------------
# payloads


def path_state_payload(t: Transition) -> dict[str, Any]:
    """``path.state``: a path's health changed (decide()'s transition, as the log's path.health: path, old,
    new, reasons), with its service and region apart and the measurements that crossed a threshold."""
    return {
        **transition_to_dict(t),
        "service": t.key.service,
        "region": t.key.region,
        "measurements": {r.metric: r.value for r in t.reasons if r.value is not None},
    }


def route_change_payload(c: RouteChange) -> dict[str, Any]:
    """``route.change``: one route sent to a peer (bgpctl.render.change_to_dict, as the log's route.change)."""
    return change_to_dict(c)


def override_payload(row: Mapping[str, Any]) -> dict[str, Any]:
    """``override.set`` / ``override.expired``: the override as the control API shows it (kind, target, by,
    since, expires, reason)."""
    return dict(row)


# --------------------------------------------------------------------------------------------
# regions


def region_usable(policy: Policy, states: States) -> dict[str, bool | None]:
    """Per region: True usable, False unusable, None not known yet (see the module docstring)."""
    out: dict[str, bool | None] = {}
    for region in policy.regions:
        mine = [s for k, s in states.items() if k.region == region]
        if any(s in _USABLE for s in mine):
            out[region] = True
        elif mine and all(s is not None for s in mine):
            out[region] = False
        else:
            out[region] = None
    return out


@dataclass(frozen=True, slots=True)
class RegionChanges:
    lost: tuple[str, ...]
    regained: tuple[str, ...]
    usable: Mapping[str, bool]  # what the next call compares with


def initial_usable(policy: Policy) -> dict[str, bool]:
    """Before the first plan every region counts as usable (a restart of a healthy daemon says nothing)."""
    return dict.fromkeys(policy.regions, True)


def region_events(before: Mapping[str, bool], now: Mapping[str, bool | None]) -> RegionChanges:
    """Compare two consecutive plans' regions: which were lost, which regained. Unknown keeps the last word."""
    after = dict(before)
    lost: list[str] = []
    regained: list[str] = []
    for region, usable in now.items():
        if usable is None:
            continue
        was = before.get(region, True)
        if was and not usable:
            lost.append(region)
        elif usable and not was:
            regained.append(region)
        after[region] = usable
    return RegionChanges(tuple(lost), tuple(regained), after)


def region_payload(
    policy: Policy,
    region: str,
    states: States,
    health: Mapping[PathKey, PathHealth],
    usable: Mapping[str, bool],
) -> dict[str, Any]:
    """``region.lost`` / ``region.regained``: the region, the regions usable now, and each path of the region
    with its state, health and the reasons for it."""
    return {
        "region": region,
        "usable_regions": sorted(r for r, ok in usable.items() if ok),
        "lost_regions": sorted(r for r, ok in usable.items() if not ok),
        "paths": [
            {
                "path": str(k),
                "service": k.service,
                "state": None if s is None else str(s),
                "health": str(health[k].health) if k in health else "unknown",
                "reasons": [r.text for r in health[k].reasons] if k in health else [],
            }
            for k, s in sorted(states.items())
            if k.region == region and k.service in policy.services
        ],
    }
