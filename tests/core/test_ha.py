"""The HA pair's rule (docs/ha.md): peers prefer every route of the primary over any route of the secondary.

Whatever each controller thinks of each path (random health on each side, random overrides), for every
peer and prefix the primary announces, each of its routes beats each of the secondary's in BGP's own
order (AWS local preference, then AS-path length, then MED). So the peers' choice between the two
controllers depends only on whether the primary's routes are there, never on what the two measure:
disagreement cannot move traffic between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bgpctl.core.ha import apply_role
from bgpctl.core.plan import plan
from bgpctl.core.types import PathHealth, PathKey, RouteAttrs
from bgpctl.policy.ha import local_preference
from bgpctl.policy.model import HaRole, PeerRole, Policy
from tests.core.plans.strategies import health_for, overrides_for
from tests.core.plans.support import NO_ADD_PATH, TWO_PATHS, lab_policy

PENALTY: dict[str, Any] = {"prepend": 4, "med": 1000, "transit_gateway_communities": ["7224:7100"]}


def _pair(patch: Mapping[str, Any] | None = None) -> tuple[Policy, Policy, Policy]:
    """(single controller, primary, secondary) of one lab policy variant."""
    base = dict(patch or {})
    return (
        lab_policy(base or None),
        lab_policy({**base, "ha": {"role": "primary", "secondary": PENALTY}}),
        lab_policy({**base, "ha": {"role": "secondary", "secondary": PENALTY}}),
    )


PAIRS = [_pair(), _pair(TWO_PATHS), _pair(NO_ADD_PATH)]


def _bgp_order(attrs: RouteAttrs, role: PeerRole) -> tuple[int, int, int]:
    """Lower is preferred: AWS local preference (transit gateways), AS-path length, MED (missing = 0)."""
    lp = local_preference(list(attrs.communities)) if role is PeerRole.TRANSIT_GATEWAY else None
    return (-(lp if lp is not None else 0), len(attrs.as_path), attrs.med or 0)


@st.composite
def disagreement(draw: st.DrawFn) -> tuple[int, dict[PathKey, PathHealth], dict[PathKey, PathHealth], Any, Any]:
    i = draw(st.integers(0, len(PAIRS) - 1))
    single = PAIRS[i][0]
    return (
        i,
        draw(health_for(single)),
        draw(health_for(single)),
        draw(overrides_for(single)),
        draw(overrides_for(single)),
    )


@given(disagreement())
def test_every_route_of_the_primary_beats_every_route_of_the_secondary(case: Any) -> None:
    i, h1, h2, o1, o2 = case
    _, primary, secondary = PAIRS[i]
    p1 = plan(primary, h1, None, 0.0, o1)
    p2 = plan(secondary, h2, None, 0.0, o2)
    for peer in primary.peers:
        for k1, a1 in p1.desired[peer.name].items():
            for k2, a2 in p2.desired[peer.name].items():
                if k1.prefix == k2.prefix:
                    assert _bgp_order(a1, peer.role) < _bgp_order(a2, peer.role), (peer.name, k1, a1, k2, a2)


@given(st.integers(0, len(PAIRS) - 1).flatmap(lambda i: st.tuples(st.just(i), health_for(PAIRS[i][0]))))
def test_the_primary_plans_as_a_single_controller(case: tuple[int, dict[PathKey, PathHealth]]) -> None:
    i, health = case
    single, primary, _ = PAIRS[i]
    assert plan(primary, health, None, 0.0) == plan(single, health, None, 0.0)


@given(st.integers(0, len(PAIRS) - 1).flatmap(lambda i: st.tuples(st.just(i), health_for(PAIRS[i][0]))))
def test_the_secondary_sends_the_same_routes_made_worse(case: tuple[int, dict[PathKey, PathHealth]]) -> None:
    i, health = case
    single, _, secondary = PAIRS[i]
    one = plan(single, health, None, 0.0).desired
    two = plan(secondary, health, None, 0.0).desired
    for peer in single.peers:
        assert set(one[peer.name]) == set(two[peer.name])
        for key, attrs in one[peer.name].items():
            worse = two[peer.name][key]
            assert worse.next_hop == attrs.next_hop  # the same forwarding: a switch of controller moves no packet
            assert worse.as_path == attrs.as_path + (single.speaker.local_as,) * 4
            assert worse.med == (attrs.med or 0) + 1000
            if peer.role is PeerRole.TRANSIT_GATEWAY:
                assert worse.communities == ("7224:7100",)
            else:
                assert worse.communities == attrs.communities


def test_apply_role_without_ha_or_as_primary_changes_nothing() -> None:
    single, primary, secondary = PAIRS[0]
    attrs = RouteAttrs(next_hop="198.18.1.11", as_path=(65000,), med=None, communities=("7224:7300",))
    assert apply_role(single, PeerRole.EDGE, attrs) == attrs
    assert primary.ha is not None and primary.ha.role is HaRole.PRIMARY
    assert apply_role(primary, PeerRole.TRANSIT_GATEWAY, attrs) == attrs
    assert apply_role(secondary, PeerRole.TRANSIT_GATEWAY, attrs) == RouteAttrs(
        next_hop="198.18.1.11", as_path=(65000,) * 5, med=1000, communities=("7224:7100",)
    )
    no_med = lab_policy({"ha": {"role": "secondary", "secondary": {**PENALTY, "med": 0}}})
    assert apply_role(no_med, PeerRole.EDGE, attrs).med is None
