"""What the control API answers from: a snapshot the daemon's loop keeps, and pure builders of the answers.

The daemon's loop replaces :class:`Snapshot` after every pass (references to the controller's immutable
state plus small copies of the speaker's), so a request never reads half-updated state and never waits
for anything. :func:`status_result` and :func:`routes_result` turn a snapshot into the ``status`` and
``routes`` answers, whose shapes are ``bgpctl/schemas/status.schema.json`` and ``routes.schema.json``.
:class:`DecisionLog` is a decision sink that keeps the last decisions, :class:`SessionTracker` when each
BGP session entered its state.
"""

from __future__ import annotations

import collections
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bgpctl import events
from bgpctl.control.protocol import MAX_DECISIONS, finite
from bgpctl.core import ha
from bgpctl.core.plan import RouteSource, ideal_rib, path_states, route_order, service_weights
from bgpctl.core.types import Health, PathHealth, PathKey, PathStats, Plan, Rib, RouteAttrs, Transition
from bgpctl.policy.model import Mode, Overrides, PathState, PeerRole, Policy
from bgpctl.render import attrs_to_dict, change_to_dict, transition_to_dict


@dataclass(frozen=True, slots=True)
class SessionView:
    state: str
    since: float | None  # when the daemon saw the session enter this state (to the loop's pass)
    last_error: str | None = None  # the reason ExaBGP gave the last time the session went down


@dataclass(frozen=True, slots=True)
class ExabgpView:
    pid: int | None
    starts: int
    exits: tuple[int, ...]  # exit codes of the ExaBGP processes that ended, newest last
    api_connected: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The daemon's state as of ``at`` (seconds since the epoch, the controller's clock)."""

    at: float
    policy: Policy
    policy_file: str
    run_dir: str
    pid: int
    started_at: float
    rib_complete: bool
    health: Mapping[PathKey, PathHealth]
    stats: Mapping[PathKey, PathStats]
    plan: Plan | None
    announced: Rib  # what ExaBGP acknowledged, per peer whose session is up
    sessions: Mapping[str, SessionView]
    exabgp: ExabgpView
    speaker_counters: Mapping[str, int] = field(default_factory=dict)
    decisions: tuple[dict[str, Any], ...] = ()
    overrides: tuple[dict[str, Any], ...] = ()  # runtime overrides (status rows); the policy's are added
    effective: Overrides | None = None  # what plan() applies (policy + runtime); None: the policy's
    policy_source: Mapping[str, Any] | None = None  # PolicyDesk.state(): file, sha256, mtime, loaded_at, last_reload
    signals: tuple[dict[str, Any], ...] = ()  # outside signals (status rows: bgpctl.signals.feed)
    reflected: Rib = field(default_factory=dict)  # our routes as the peers send them back (HA: whose are in use)

    @property
    def in_force(self) -> Overrides:
        return self.policy.overrides if self.effective is None else self.effective


# --------------------------------------------------------------------------------------------
# kept by the daemon


class DecisionLog:
    """A decision sink (:class:`bgpctl.daemon.sinks.DecisionSink`) keeping the last decisions and stats."""

    def __init__(self, maxlen: int = MAX_DECISIONS) -> None:
        self._entries: collections.deque[dict[str, Any]] = collections.deque(maxlen=maxlen)
        self._recent: tuple[dict[str, Any], ...] | None = ()  # None: changed since recent() last copied
        self.stats: Mapping[PathKey, PathStats] = {}

    def transition(self, t: Transition) -> None:
        self._recent = None
        self._entries.append({"at": t.at, "event": events.PATH_HEALTH, **transition_to_dict(t)})

    def planned(self, p: Plan, *, at: float, new_notes: tuple[str, ...]) -> None:
        self._recent = None
        for c in p.changes:
            self._entries.append({"at": at, "event": events.ROUTE_CHANGE, **change_to_dict(c)})
        for c in p.deferred:
            self._entries.append({"at": at, "event": events.ROUTE_DEFERRED, **change_to_dict(c)})
        for note in new_notes:
            self._entries.append({"at": at, "event": events.PLAN_NOTE, "note": note})

    def measured(self, stats: Mapping[PathKey, PathStats]) -> None:
        self.stats = stats

    def recent(self) -> tuple[dict[str, Any], ...]:
        """The kept decisions, oldest first (copied only when they changed: the loop asks on every pass)."""
        if self._recent is None:
            self._recent = tuple(self._entries)
        return self._recent


class SessionTracker:
    """When each session entered its current state, from the states the loop sees on every pass."""

    def __init__(self) -> None:
        self._views: dict[str, SessionView] = {}

    def observe(self, states: Mapping[str, str], reasons: Mapping[str, str], now: float) -> Mapping[str, SessionView]:
        for peer, state in states.items():
            old = self._views.get(peer)
            reason = reasons.get(peer)
            if old is None or old.state != state:
                self._views[peer] = SessionView(state, now if old is not None else None, reason)
            elif reason != old.last_error:
                self._views[peer] = SessionView(state, old.since, reason)
        return dict(self._views)


# --------------------------------------------------------------------------------------------
# status


def _stats_dict(s: PathStats | None) -> dict[str, Any]:
    if s is None:
        return {
            "samples": 0,
            "lost": 0,
            "loss_pct": None,
            "rtt_p50_ms": None,
            "rtt_p95_ms": None,
            "jitter_ms": None,
            "mos": None,
            "unanswered": 0,
        }
    return {
        "samples": s.samples,
        "lost": s.lost,
        "loss_pct": finite(s.loss_pct, 2),
        "rtt_p50_ms": finite(s.rtt_p50_ms),
        "rtt_p95_ms": finite(s.rtt_p95_ms),
        "jitter_ms": finite(s.jitter_ms),
        "mos": finite(s.mos, 2),
        "unanswered": s.unanswered,
    }


def policy_overrides(ov: Overrides) -> list[dict[str, Any]]:
    """The overrides written in the policy file, in the shape of the runtime ones."""
    out: list[dict[str, Any]] = []
    for d in ov.drain:
        out.append({"kind": "drain", "target": d.region if d.path is None else f"{d.region}/{d.path}"})
    for service, region in ov.pin.items():
        out.append({"kind": "pin", "target": f"{service}:{region}"})
    if ov.freeze:
        out.append({"kind": "freeze", "target": "*"})
    for service, weights in ov.weights.items():
        split = " ".join(f"{r}={w}" for r, w in weights.items())
        out.append({"kind": "weight", "target": f"{service} {split}", "weights": dict(weights)})
    return [{**o, "source": "policy", "by": None, "since": None, "expires": None, "reason": None} for o in out]


def _session_rows(s: Snapshot) -> list[dict[str, Any]]:
    rows = []
    for peer in s.policy.peers:
        view = s.sessions.get(peer.name, SessionView("idle", None))
        rows.append(
            {
                "peer": peer.name,
                "address": str(peer.address),
                "role": peer.role.value,
                "peer_as": peer.peer_as,
                "state": view.state,
                "since": finite(view.since),
                "uptime_s": finite(s.at - view.since, 1) if view.state == "up" and view.since is not None else None,
                "last_error": view.last_error,
                "routes": len(s.announced.get(peer.name, {})),
            }
        )
    return rows


def state_reason(
    policy: Policy, key: PathKey, health: Health, state: PathState | None, overrides: Overrides | None = None
) -> str:
    """Why plan() gives the path this state, in words (the health's own reasons are listed apart)."""
    service = policy.services[key.service]
    override = _override_of(policy, key, overrides)
    if state is None:
        return "not judged yet: not announced"
    if state is PathState.DOWN:
        return "health down: withdrawn (fail-static keeps the last routes if every path of the service is down)"
    if state is PathState.DEGRADED:
        return f"health {health}: de-preferred (actions.degraded), never withdrawn"
    if state is PathState.PREFERRED:
        if override is not None and override.startswith("pin"):
            return f"preferred by override {override}"
        if service.mode is Mode.ACTIVE_STANDBY:
            return "up, best path of the first region of the service's order that has one (active-standby)"
        weights = service_weights(policy, key.service, overrides)
        if weights is not None:
            return f"up, best path of its region (active-active, weight {weights.get(key.region, 0)})"
        return "up, best path of its region (active-active)"
    if override is not None and override.startswith("drain"):
        return f"up, standby by override {override}"
    if service.mode is Mode.ACTIVE_STANDBY:
        return "up, standby: an earlier region of the service's order is preferred (active-standby)"
    weights = service_weights(policy, key.service, overrides)
    if weights is not None and weights.get(key.region, 0) == 0:
        return "up, standby: weight 0 while a region of weight above 0 is up"
    return "up, standby: a better path of its region (priority) is preferred"


def _path_rows(s: Snapshot) -> list[dict[str, Any]]:
    states, _ = path_states(s.policy, s.health, s.in_force)
    rows = []
    for key in states:
        h = s.health.get(key, PathHealth())
        state = states.get(key)
        rows.append(
            {
                "path": str(key),
                "service": key.service,
                "region": key.region,
                "name": key.path,
                "health": h.health.value,
                "since": finite(h.since) if h.health is not Health.UNKNOWN else None,
                "state": state.value if state is not None else None,
                "reasons": [r.text for r in h.reasons],
                "why": state_reason(s.policy, key, h.health, state, s.in_force),
                "stats": _stats_dict(s.stats.get(key)),
            }
        )
    return rows


def status_result(s: Snapshot, decisions: int) -> dict[str, Any]:
    """The ``status`` answer (shape: bgpctl/schemas/status.schema.json)."""
    notes = list(s.plan.notes) if s.plan is not None else []
    return {
        "at": finite(s.at),
        "daemon": {
            "pid": s.pid,
            "policy": s.policy_file,
            "run_dir": s.run_dir,
            "started_at": finite(s.started_at),
            "uptime_s": finite(s.at - s.started_at, 1),
            "rib_complete": s.rib_complete,
            "policy_source": dict(s.policy_source) if s.policy_source is not None else None,
        },
        "exabgp": {
            "pid": s.exabgp.pid,
            "running": s.exabgp.pid is not None,
            "api_connected": s.exabgp.api_connected,
            "starts": s.exabgp.starts,
            "exits": list(s.exabgp.exits),
        },
        "speaker": {"counters": dict(sorted(s.speaker_counters.items()))},
        "sessions": _session_rows(s),
        "paths": _path_rows(s),
        "overrides": [*policy_overrides(s.policy.overrides), *s.overrides],
        "signals": list(s.signals),
        "notes": notes,
        "decisions": list(s.decisions[-decisions:]) if decisions else [],
        "ha": ha.in_use(s.policy, s.reflected, handing_over=s.plan is not None and s.plan.held_back),
    }


# --------------------------------------------------------------------------------------------
# routes


def _overlaps(prefix: str, wanted: ipaddress.IPv4Network | ipaddress.IPv6Network | None) -> bool:
    if wanted is None:
        return True
    try:
        net = ipaddress.ip_network(prefix, strict=False)
    except ValueError:
        return False
    return net.version == wanted.version and net.overlaps(wanted)


def _override_of(policy: Policy, key: PathKey, overrides: Overrides | None = None) -> str | None:
    ov = policy.overrides if overrides is None else overrides
    if ov.freeze:
        return "freeze"
    for d in ov.drain:
        if d.region == key.region and d.path in (None, key.path) and d.service in (None, key.service):
            where = d.region if d.path is None else f"{d.region}/{d.path}"
            return f"drain {where}" + ("" if d.service is None else f" for {d.service}")
    if ov.pin.get(key.service) is not None:
        return f"pin {key.service}:{ov.pin[key.service]}"
    if key.service in ov.weights:
        return f"weight {key.service} " + " ".join(f"{r}={w}" for r, w in ov.weights[key.service].items())
    return None


def _rule(
    policy: Policy,
    role: PeerRole,
    *,
    source: RouteSource | None,
    ideal_attrs: RouteAttrs | None,
    attrs: RouteAttrs,
    kept: str | None,
    health: Mapping[PathKey, PathHealth],
    overrides: Overrides | None = None,
) -> dict[str, Any]:
    """The path, state and action behind a route; ``kept`` says why a route is not the health's ideal one."""
    if source is None or ideal_attrs != attrs:
        return {
            "path": str(source.path) if source is not None else None,
            "health": health.get(source.path, PathHealth()).health.value if source is not None else None,
            "state": None,
            "action": None,
            "override": _override_of(policy, source.path, overrides) if source is not None else None,
            "kept": kept or "kept from an earlier plan",
        }
    return {
        "path": str(source.path),
        "health": health.get(source.path, PathHealth()).health.value,
        "state": source.state.value,
        "action": f"actions.{source.state.value}.{role.value}" + (" + ha.secondary" if ha.is_secondary(policy) else ""),
        "override": _override_of(policy, source.path, overrides),
        "kept": None,
    }


def _kept_reason(s: Snapshot, peer: str, prefix: str) -> str | None:
    if s.plan is None:
        return None
    if any(c.peer == peer and c.key.prefix == prefix for c in s.plan.deferred):
        return "rate limit (guards.max_route_changes_per_minute): the change is deferred"
    for note in s.plan.notes:
        if note.startswith(("fail-static", "degraded-static", "freeze")):
            return note
    return None


def routes_result(s: Snapshot, peer: str | None = None, prefix: str | None = None) -> dict[str, Any]:
    """The ``routes`` answer (shape: bgpctl/schemas/routes.schema.json). ``prefix`` is a checked filter.

    Per peer, every route the daemon wants announced or ExaBGP still holds: ``status`` ``announced``
    (acknowledged by ExaBGP with these attributes), ``pending`` (wanted, not acknowledged yet, or the
    session is not up) or ``withdrawing`` (held, no longer wanted)."""
    wanted = ipaddress.ip_network(prefix, strict=False) if prefix is not None else None
    ideal = ideal_rib(s.policy, s.health, s.in_force)
    desired = s.plan.desired if s.plan is not None else {}
    peers = []
    for p in s.policy.peers:
        if peer is not None and p.name != peer:
            continue
        want, held = desired.get(p.name, {}), s.announced.get(p.name, {})
        rows = []
        for key in sorted(set(want) | set(held), key=route_order):
            if not _overlaps(key.prefix, wanted):
                continue
            attrs = want.get(key) or held[key]
            status = "withdrawing" if key not in want else "announced" if held.get(key) == attrs else "pending"
            rule = _rule(
                s.policy,
                p.role,
                source=ideal.sources.get((p.name, key)),
                ideal_attrs=ideal.routes.get(p.name, {}).get(key) if key in want else None,
                attrs=attrs,
                kept=_kept_reason(s, p.name, key.prefix) if key in want else "no longer planned: being withdrawn",
                health=s.health,
                overrides=s.in_force,
            )
            rows.append(
                {"prefix": key.prefix, "path_id": key.path_id, **attrs_to_dict(attrs), "status": status, "rule": rule}
            )
        view = s.sessions.get(p.name, SessionView("idle", None))
        peers.append(
            {
                "peer": p.name,
                "address": str(p.address),
                "role": p.role.value,
                "peer_as": p.peer_as,
                "add_path": p.add_path.value,
                "session": view.state,
                "routes": rows,
            }
        )
    return {
        "at": finite(s.at),
        "filter": {"peer": peer, "prefix": prefix},
        "peers": peers,
        "deferred": [change_to_dict(c) for c in (s.plan.deferred if s.plan is not None else ())],
        "notes": list(s.plan.notes) if s.plan is not None else [],
    }


def unknown_peer(s: Snapshot, peer: str) -> str | None:
    """None when the policy has ``peer``; else the message naming the peers it has."""
    names = [p.name for p in s.policy.peers]
    return None if peer in names else f"no peer '{peer}' in the policy: peers are {', '.join(names)}"
