"""The event envelope and when a region is lost or regained: pure functions, checked by table."""

from __future__ import annotations

import json

import pytest

from bgpctl import events
from bgpctl.core.types import Health, PathHealth, PathKey, Reason, Transition
from bgpctl.hooks.event import (
    initial_usable,
    make_event,
    path_state_payload,
    region_events,
    region_payload,
    region_usable,
)
from bgpctl.policy.model import HookEvent, PathState
from tests.control.support import lab_policy, schema_errors

P, S, D, G = PathState.PREFERRED, PathState.STANDBY, PathState.DOWN, PathState.DEGRADED
SERVICES = ("media", "signalling", "api")


def states(use1: PathState | None, usw2: PathState | None, **per: PathState | None) -> dict[PathKey, PathState | None]:
    """Every service's interconnect path of both regions in one state per region (``per`` overrides one
    path, keyed ``service_region``)."""
    out: dict[PathKey, PathState | None] = {}
    for s in SERVICES:
        for region, st in (("use1", use1), ("usw2", usw2)):
            out[PathKey(s, region, "interconnect")] = per.get(f"{s}_{region}", st)
    return out


def test_hook_event_names_are_the_events_module_constants() -> None:
    assert tuple(HookEvent) == events.HOOK_EVENT_TYPES
    assert [e.value for e in HookEvent] == [
        "path.state",
        "route.change",
        "region.lost",
        "region.regained",
        "override.set",
        "override.expired",
        "policy.reload",
    ]


@pytest.mark.parametrize(
    ("given", "want"),
    [
        (states(P, P), {"use1": True, "usw2": True}),
        (states(D, P), {"use1": False, "usw2": True}),
        (states(G, P), {"use1": False, "usw2": True}),  # every path degraded: no path is preferred or standby
        (states(S, P), {"use1": True, "usw2": True}),  # drained (standby): still usable
        (states(D, P, api_use1=S), {"use1": True, "usw2": True}),  # one service still has an up path there
        (states(None, P), {"use1": None, "usw2": True}),  # not judged yet: nothing said
        (states(D, P, api_use1=None), {"use1": None, "usw2": True}),  # one path still unknown
        (states(D, D), {"use1": False, "usw2": False}),
    ],
)
def test_a_region_is_usable_while_one_of_its_paths_is_preferred_or_standby(
    given: dict[PathKey, PathState | None], want: dict[str, bool | None]
) -> None:
    assert region_usable(lab_policy(), given) == want


def test_lost_and_regained_fire_once_on_the_change_and_unknown_keeps_the_last_word() -> None:
    policy = lab_policy()
    before = initial_usable(policy)
    seen = []
    for st in [states(None, None), states(P, P), states(D, P), states(D, P), states(None, P), states(P, P)]:
        changes = region_events(before, region_usable(policy, st))
        seen.append((changes.lost, changes.regained))
        before = dict(changes.usable)
    assert seen == [((), ()), ((), ()), (("use1",), ()), ((), ()), ((), ()), ((), ("use1",))]


def test_a_region_already_dead_at_the_start_is_reported_lost_once_judged() -> None:
    policy = lab_policy()
    changes = region_events(initial_usable(policy), region_usable(policy, states(None, P)))
    assert changes.lost == ()
    changes = region_events(changes.usable, region_usable(policy, states(D, P)))
    assert changes.lost == ("use1",) and changes.regained == ()


def test_an_active_standby_second_region_is_never_lost_for_being_standby() -> None:
    policy = lab_policy()
    # api is active-standby: usw2 is standby while use1 is preferred; a policy of such services only
    # must not report usw2 lost
    st = {PathKey("api", "use1", "interconnect"): P, PathKey("api", "usw2", "interconnect"): S}
    assert region_usable(policy, st) == {"use1": True, "usw2": True}


def test_the_envelope_is_stable_compact_and_fits_the_schema() -> None:
    policy = lab_policy()
    health = {k: PathHealth(Health.DOWN if k.region == "use1" else Health.UP) for k in states(D, P)}
    payload = region_payload(policy, "use1", states(D, P), health, {"use1": False, "usw2": True})
    e = make_event(events.REGION_LOST, payload, at=1_780_000_000.25, host="cr", id_="0" * 32)
    assert e.body == json.dumps(e.data, sort_keys=True, separators=(",", ":")).encode()
    assert json.loads(e.body) == {
        "version": 1,
        "id": "0" * 32,
        "time": "2026-05-28T20:26:40.250000Z",
        "type": "region.lost",
        "host": "cr",
        "payload": payload,
    }
    assert payload["usable_regions"] == ["usw2"] and payload["lost_regions"] == ["use1"]
    assert {p["path"] for p in payload["paths"]} == {f"{s}/use1/interconnect" for s in SERVICES}
    assert schema_errors("hook-event", e.data) == []
    assert schema_errors("hook-event", {**e.data, "payload": {"region": "use1"}}) != []  # the schema can fail


def test_a_path_state_event_carries_the_reasons_and_measurements() -> None:
    t = Transition(
        PathKey("media", "use1", "interconnect"),
        1.0,
        Health.UP,
        Health.DOWN,
        (Reason("consecutive_lost", 5, 5, "consecutive_lost 5 >= down_after_lost 5"),),
    )
    e = make_event(events.PATH_STATE, path_state_payload(t), at=2.0, host="cr")
    assert e.data["payload"] == {
        "path": "media/use1/interconnect",
        "service": "media",
        "region": "use1",
        "old": "up",
        "new": "down",
        "reasons": ["consecutive_lost 5 >= down_after_lost 5"],
        "measurements": {"consecutive_lost": 5},
    }
    assert schema_errors("hook-event", e.data) == []


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="not a hook event type"):
        make_event("path.health", {}, at=0.0, host="cr")
