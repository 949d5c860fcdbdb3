"""plan() with what the sessions negotiated (issue 9, point 1): a peer that did not negotiate ADD-PATH
gets one best path per prefix, whatever the policy asks; the switch between the two is made whole."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bgpctl.core.controller import Controller
from bgpctl.core.plan import plan
from bgpctl.core.types import ChangeKind, Health, PathHealth, PathKey, Plan, RouteKey
from bgpctl.policy.model import Family, Policy
from tests.core.plans.support import TWO_PATHS, deep_merge, health_map, lab_policy

LAB = lab_policy()
TWO = lab_policy(TWO_PATHS)
MEDIA, SIG, API = "203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26"
V4 = frozenset({Family.IPV4_UNICAST})
NEGOTIATED = {"edge": V4}
NOTHING: dict[str, frozenset[Family]] = {}


def _edge(p: Plan) -> dict[RouteKey, Any]:
    return p.desired["edge"]


def _next_hops(p: Plan, prefix: str) -> dict[int, str]:
    return {k.path_id: a.next_hop for k, a in _edge(p).items() if k.prefix == prefix}


def test_without_negotiated_add_path_the_edge_gets_the_single_best_path() -> None:
    p = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0, add_path=NOTHING)
    # active-active: both regions preferred; the tie goes to the policy's first path (use1)
    assert _next_hops(p, MEDIA) == {0: "198.18.1.11"}
    assert all(k.path_id == 0 for k in _edge(p))


def test_with_negotiated_add_path_every_path_has_its_id() -> None:
    p = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0, add_path=NEGOTIATED)
    assert _next_hops(p, MEDIA) == {1: "198.18.1.11", 2: "198.18.1.12"}


def test_the_single_path_is_the_planners_best_with_its_attributes() -> None:
    """use1 degraded: the one route is usw2's preferred one, not the de-preferred (prepended) one."""
    health = health_map(LAB, {"default": "up", "media/use1/interconnect": "degraded"})
    p = plan(LAB, health, None, 0.0, add_path=NOTHING)
    multi = plan(LAB, health, None, 0.0, add_path=NEGOTIATED)
    assert _next_hops(p, MEDIA) == {0: "198.18.1.12"}
    assert _edge(p)[RouteKey(MEDIA, 0)] == _edge(multi)[RouteKey(MEDIA, 2)]


def test_a_region_fault_without_add_path_keeps_a_route_for_every_connect_prefix() -> None:
    up = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0, add_path=NOTHING)
    down = plan(LAB, health_map(LAB, {"default": "up", "*/use1/*": "down"}), up, 1.0, add_path=NOTHING)
    for prefix in (MEDIA, SIG, API):
        assert _next_hops(down, prefix) == {0: "198.18.1.12"}, prefix
    # the fault moved the route: one announcement per prefix, no withdrawal (that would remove the prefix)
    edge_changes = [c for c in down.changes if c.peer == "edge"]
    assert {c.kind for c in edge_changes} == {ChangeKind.ANNOUNCE}


def test_losing_add_path_is_made_whole_at_once_outside_the_rate_limit() -> None:
    tight = lab_policy(deep_merge(TWO_PATHS, {"guards": {"max_route_changes_per_minute": 1}}))
    health = health_map(tight, {"default": "up"})
    multi = Plan(
        desired=plan(tight, health, None, 0.0, add_path=NEGOTIATED).desired,
        changes=(),
        deferred=(),
        notes=(),
        change_times=(0.0,),  # the budget of the minute is spent
    )
    single = plan(tight, health, multi, 1.0, add_path=NOTHING)
    assert all(k.path_id == 0 for k in _edge(single)), _edge(single)
    assert {k.prefix for k in _edge(single)} == {MEDIA, SIG, API}
    assert not [c for c in single.deferred if c.peer == "edge"]
    assert any("ADD-PATH changed towards edge" in n for n in single.notes)
    why = [c.why for c in single.changes if c.peer == "edge" and c.kind is ChangeKind.WITHDRAW]
    assert why and all("ADD-PATH is not negotiated with edge" in w for w in why)


def test_fail_static_keeps_one_route_per_prefix_for_a_peer_without_add_path() -> None:
    up = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0, add_path=NEGOTIATED)
    dark = plan(LAB, health_map(LAB, {"default": "down"}), up, 1.0, add_path=NOTHING)
    assert _next_hops(dark, MEDIA) == {0: "198.18.1.11"}
    assert any(n.startswith("fail-static") for n in dark.notes)


def test_the_controller_plans_again_when_add_path_changes() -> None:
    ctl = Controller(LAB, {})
    ctl.health = dict(health_map(LAB, {"default": "up"}))
    ctl.last_plan = plan(LAB, ctl.health, None, 0.0, add_path=NOTHING)
    assert ctl.negotiated({"edge": V4, "tgw-use1": frozenset()})
    assert not ctl.negotiated({"edge": V4})  # an empty set is "nothing negotiated", as a missing peer
    p = ctl.step(1.0).plan
    assert isinstance(p, Plan)
    assert _next_hops(p, MEDIA) == {1: "198.18.1.11", 2: "198.18.1.12"}
    assert ctl.step(2.0).plan is None  # nothing changed since


def _health(policy: Policy) -> st.SearchStrategy[dict[PathKey, PathHealth]]:
    keys = [PathKey(s, r, p) for s in policy.services for r, reg in policy.regions.items() for p in reg.paths]
    return st.fixed_dictionaries({k: st.sampled_from(list(Health)).map(PathHealth) for k in keys})


_STATES = st.sampled_from([NOTHING, NEGOTIATED])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_health(TWO), _STATES), min_size=1, max_size=6))
def test_a_peer_without_add_path_never_holds_more_than_one_path_per_prefix(
    steps: list[tuple[dict[PathKey, PathHealth], dict[str, frozenset[Family]]]],
) -> None:
    previous: Plan | None = None
    for i, (health, negotiated) in enumerate(steps):
        previous = plan(TWO, health, previous, float(i), add_path=negotiated)
        if "edge" not in negotiated:
            assert all(k.path_id == 0 for k in previous.desired["edge"]), previous.desired["edge"]
        # the TGWs never negotiated anything, and the policy does not ask it either
        assert all(k.path_id == 0 for peer in ("tgw-use1", "tgw-usw2") for k in previous.desired[peer])
