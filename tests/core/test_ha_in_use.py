"""Whose routes the peers use, from our own routes as they send them back (bgpctl.core.ha.in_use, docs/ha.md)."""

from __future__ import annotations

from bgpctl.core.ha import in_use, whose
from bgpctl.core.types import RouteAttrs, RouteKey
from bgpctl.policy.load import load_policy
from bgpctl.policy.model import HaRole, PeerRole
from tests.core.plans.support import POLICIES

PRIMARY = load_policy(POLICIES / "lab-ha-cr1.yaml")
SECONDARY = load_policy(POLICIES / "lab-ha-cr2.yaml")


def _back(copies: int) -> RouteAttrs:
    """A route the edge (AS65010) sends back: its AS, then ``copies`` of ours."""
    return RouteAttrs("198.18.1.11", (65010, *(65000,) * copies))


def test_whose_route_by_the_copies_of_our_as() -> None:
    # the primary sends 1 (preferred) to 4 (degraded) copies; the secondary 5 to 8
    for copies, want in [
        (1, HaRole.PRIMARY),
        (2, HaRole.PRIMARY),
        (4, HaRole.PRIMARY),
        (5, HaRole.SECONDARY),
        (8, HaRole.SECONDARY),
    ]:
        assert whose(PRIMARY, PeerRole.EDGE, _back(copies)) is want
        assert whose(SECONDARY, PeerRole.EDGE, _back(copies)) is want
    assert whose(load_policy(POLICIES / "lab.yaml"), PeerRole.EDGE, _back(1)) is None


def test_in_use_verdicts() -> None:
    media, api = RouteKey("203.0.113.0/26", 0), RouteKey("203.0.113.128/26", 0)
    ours = {"edge": {media: _back(1), api: _back(2)}, "tgw-use1": {}}
    theirs = {"edge": {media: _back(5), api: _back(6)}}
    mixed = {"edge": {media: _back(1), api: _back(6)}}
    assert in_use(load_policy(POLICIES / "lab.yaml"), ours) is None
    primary = in_use(PRIMARY, ours)
    assert primary is not None and (primary["role"], primary["in_use"]) == ("primary", "yes")
    assert primary["reflected"] == [
        {"peer": "edge", "prefix": "203.0.113.0/26", "as_path": [65010, 65000], "uses": "primary"},
        {"peer": "edge", "prefix": "203.0.113.128/26", "as_path": [65010, 65000, 65000], "uses": "primary"},
    ]
    assert primary["penalty"] == {"prepend": 4, "med": 1000, "transit_gateway_communities": ["7224:7100"]}
    secondary = in_use(SECONDARY, ours)
    assert secondary is not None and (secondary["role"], secondary["in_use"]) == ("secondary", "no")
    assert secondary["why"] == "0 of 2 route(s) the peers send back are this host's (secondary)"
    assert in_use(SECONDARY, theirs)["in_use"] == "yes"  # type: ignore[index]
    assert in_use(PRIMARY, mixed)["in_use"] == "partly"  # type: ignore[index]
    unknown = in_use(PRIMARY, {"edge": {}})
    assert unknown is not None and unknown["in_use"] == "unknown" and "docs/ha.md" in unknown["why"]
