"""Table-driven tests for plan(): path states, route attributes, ADD-PATH, guards, ordering, rate limit."""

from __future__ import annotations

import ipaddress
from ipaddress import ip_network
from typing import Any

import pytest

from bgpctl.core.plan import apply_changes, path_states, plan
from bgpctl.core.types import ChangeKind, PathKey, Plan, RouteAttrs, RouteChange, RouteKey
from bgpctl.policy.model import Drain, Family, Overrides, PathState
from bgpctl.speaker.commands import validate_rib
from tests.core.plans.support import NO_ADD_PATH, TWO_PATHS, health_map, lab_policy

P, S, D, X = PathState.PREFERRED, PathState.STANDBY, PathState.DEGRADED, PathState.DOWN

LAB = lab_policy()
TWO = lab_policy(TWO_PATHS)
MEDIA, SIG, API, CORP = "203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26", "192.0.2.0/24"


def _states(policy: Any, service: str, spec: dict[str, str], overrides: Overrides | None = None) -> dict[str, Any]:
    states, _ = path_states(policy, health_map(policy, spec), overrides)
    return {f"{k.region}/{k.path}": v for k, v in states.items() if k.service == service}


# ------------------------------------------------------------------------------------------
# path states


STATE_CASES: list[tuple[str, Any, str, dict[str, str], Overrides | None, dict[str, Any]]] = [
    (
        "active-active, all up: each region's best path preferred",
        LAB,
        "media",
        {"default": "up"},
        None,
        {"use1/interconnect": P, "usw2/interconnect": P},
    ),
    (
        "active-active, two paths per region: lowest priority preferred, the other standby",
        TWO,
        "media",
        {"default": "up"},
        None,
        {"use1/interconnect": P, "use1/vpn": S, "usw2/interconnect": P, "usw2/vpn": S},
    ),
    (
        "active-active, interconnect down: the vpn takes over in its region",
        TWO,
        "media",
        {"default": "up", "media/use1/interconnect": "down"},
        None,
        {"use1/interconnect": X, "use1/vpn": P, "usw2/interconnect": P, "usw2/vpn": S},
    ),
    (
        "active-active, interconnect degraded: degraded, the vpn preferred",
        TWO,
        "media",
        {"default": "up", "media/use1/interconnect": "degraded"},
        None,
        {"use1/interconnect": D, "use1/vpn": P, "usw2/interconnect": P, "usw2/vpn": S},
    ),
    (
        "unknown paths have no state (not announced)",
        LAB,
        "media",
        {"media/use1/interconnect": "up"},
        None,
        {"use1/interconnect": P, "usw2/interconnect": None},
    ),
    (
        "active-standby, all up: first region of order preferred only",
        LAB,
        "api",
        {"default": "up"},
        None,
        {"use1/interconnect": P, "usw2/interconnect": S},
    ),
    (
        "active-standby, first region down: the next region preferred",
        LAB,
        "api",
        {"default": "up", "api/use1/*": "down"},
        None,
        {"use1/interconnect": X, "usw2/interconnect": P},
    ),
    (
        "active-standby, first region degraded: the next region preferred, first degraded",
        LAB,
        "api",
        {"default": "up", "api/use1/*": "degraded"},
        None,
        {"use1/interconnect": D, "usw2/interconnect": P},
    ),
    (
        "active-standby, two paths: only the first region's best path preferred",
        TWO,
        "api",
        {"default": "up"},
        None,
        {"use1/interconnect": P, "use1/vpn": S, "usw2/interconnect": S, "usw2/vpn": S},
    ),
    (
        "drain a region: its up paths standby, never withdrawn",
        LAB,
        "media",
        {"default": "up"},
        Overrides(drain=[Drain(region="use1")]),
        {"use1/interconnect": S, "usw2/interconnect": P},
    ),
    (
        "drain one path: the region's next path preferred",
        TWO,
        "media",
        {"default": "up"},
        Overrides(drain=[Drain(region="use1", path="interconnect")]),
        {"use1/interconnect": S, "use1/vpn": P, "usw2/interconnect": P, "usw2/vpn": S},
    ),
    (
        "drain does not lift a down path",
        LAB,
        "media",
        {"default": "up", "media/use1/*": "down"},
        Overrides(drain=[Drain(region="use1")]),
        {"use1/interconnect": X, "usw2/interconnect": P},
    ),
    (
        "drain the active-standby primary: the standby region takes over",
        LAB,
        "api",
        {"default": "up"},
        Overrides(drain=[Drain(region="use1")]),
        {"use1/interconnect": S, "usw2/interconnect": P},
    ),
    (
        "pin active-active to a region: only that region preferred",
        LAB,
        "media",
        {"default": "up"},
        Overrides(pin={"media": "usw2"}),
        {"use1/interconnect": S, "usw2/interconnect": P},
    ),
    (
        "pin active-standby to its standby region",
        LAB,
        "api",
        {"default": "up"},
        Overrides(pin={"api": "usw2"}),
        {"use1/interconnect": S, "usw2/interconnect": P},
    ),
    (
        "pin to a down region: normal rules",
        LAB,
        "media",
        {"default": "up", "media/usw2/*": "down"},
        Overrides(pin={"media": "usw2"}),
        {"use1/interconnect": P, "usw2/interconnect": X},
    ),
    (
        "pin another service: this one unaffected",
        LAB,
        "media",
        {"default": "up"},
        Overrides(pin={"api": "usw2"}),
        {"use1/interconnect": P, "usw2/interconnect": P},
    ),
]


@pytest.mark.parametrize(
    ("policy", "service", "health", "overrides", "expected"),
    [c[1:] for c in STATE_CASES],
    ids=[c[0] for c in STATE_CASES],
)
def test_path_states(
    policy: Any, service: str, health: dict[str, str], overrides: Overrides | None, expected: dict[str, Any]
) -> None:
    assert _states(policy, service, health, overrides) == expected


def test_pin_fallback_and_drain_are_noted() -> None:
    ov = Overrides(pin={"media": "usw2"}, drain=[Drain(region="use1")])
    _, notes = path_states(LAB, health_map(LAB, {"default": "up", "media/usw2/*": "down"}), ov)
    assert any("pin: media -> usw2 has no undrained up path" in n for n in notes)
    assert any("drain: up paths of use1 are standby" in n for n in notes)


# ------------------------------------------------------------------------------------------
# routes


def _route(p: Plan, peer: str, prefix: str, path_id: int) -> RouteAttrs | None:
    return p.desired[peer].get(RouteKey(prefix, path_id))


ROUTE_CASES: list[tuple[str, dict[str, str], str, str, int, RouteAttrs | None]] = [
    (
        "preferred to the edge: MED 0, no prepend, next hop the TGW",
        {"default": "up"},
        "edge",
        MEDIA,
        1,
        RouteAttrs("198.18.1.11", (65000,), 0),
    ),
    (
        "ADD-PATH: the second region gets path id 2",
        {"default": "up"},
        "edge",
        MEDIA,
        2,
        RouteAttrs("198.18.1.12", (65000,), 0),
    ),
    (
        "standby to the edge: MED 100, one prepend",
        {"default": "up"},
        "edge",
        API,
        2,
        RouteAttrs("198.18.1.12", (65000, 65000), 100),
    ),
    (
        "degraded to the edge: MED 500, three prepends",
        {"default": "up", "media/use1/*": "degraded"},
        "edge",
        MEDIA,
        1,
        RouteAttrs("198.18.1.11", (65000,) * 4, 500),
    ),
    ("down: withdrawn from the edge", {"default": "up", "media/use1/*": "down"}, "edge", MEDIA, 1, None),
    ("unknown: not announced", {"default": "up", "media/use1/*": "unknown"}, "edge", MEDIA, 1, None),
    (
        "corporate prefix to the TGW: next hop the edge, preferred community",
        {"default": "up"},
        "tgw-use1",
        CORP,
        0,
        RouteAttrs("198.18.1.1", (65000,), None, ("7224:7300",)),
    ),
    (
        "corporate prefix follows media's state: degraded community and prepends",
        {"default": "up", "media/usw2/*": "degraded"},
        "tgw-usw2",
        CORP,
        0,
        RouteAttrs("198.18.1.1", (65000,) * 4, None, ("7224:7100",)),
    ),
    (
        "corporate prefix follows media only, not api",
        {"default": "up", "api/usw2/*": "down"},
        "tgw-usw2",
        CORP,
        0,
        RouteAttrs("198.18.1.1", (65000,), None, ("7224:7300",)),
    ),
    (
        "corporate prefix withdrawn from the TGW of a down media path",
        {"default": "up", "media/usw2/*": "down"},
        "tgw-usw2",
        CORP,
        0,
        None,
    ),
]


@pytest.mark.parametrize(
    ("health", "peer", "prefix", "path_id", "expected"), [c[1:] for c in ROUTE_CASES], ids=[c[0] for c in ROUTE_CASES]
)
def test_route_attributes(
    health: dict[str, str], peer: str, prefix: str, path_id: int, expected: RouteAttrs | None
) -> None:
    assert _route(plan(LAB, health_map(LAB, health), None, 0.0), peer, prefix, path_id) == expected


def test_service_prefixes_only_to_edges_and_corporate_only_to_tgws() -> None:
    p = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0)
    assert {k.prefix for k in p.desired["edge"]} == {MEDIA, SIG, API}
    assert {k.prefix for k in p.desired["tgw-use1"]} == {CORP}
    assert {k.prefix for k in p.desired["tgw-usw2"]} == {CORP}


BEST_CASES: list[tuple[str, dict[str, str], str, str | None]] = [
    ("both preferred: the first region wins the tie", {"default": "up"}, MEDIA, "198.18.1.11"),
    ("use1 degraded: usw2 (preferred) wins", {"default": "up", "media/use1/*": "degraded"}, MEDIA, "198.18.1.12"),
    ("use1 down: usw2", {"default": "up", "media/use1/*": "down"}, MEDIA, "198.18.1.12"),
    ("both degraded: the first region", {"default": "degraded"}, MEDIA, "198.18.1.11"),
    (
        "standby region up, preferred region degraded: standby beats degraded",
        {"default": "up", "api/use1/*": "degraded"},
        API,
        "198.18.1.12",
    ),
    ("nothing up: nothing", {"default": "unknown"}, MEDIA, None),
]


@pytest.mark.parametrize(("health", "prefix", "next_hop"), [c[1:] for c in BEST_CASES], ids=[c[0] for c in BEST_CASES])
def test_without_add_path_only_the_best_route(health: dict[str, str], prefix: str, next_hop: str | None) -> None:
    policy = lab_policy(NO_ADD_PATH)
    p = plan(policy, health_map(policy, health), None, 0.0)
    routes = {k: a for k, a in p.desired["edge"].items() if k.prefix == prefix}
    if next_hop is None:
        assert routes == {}
    else:
        assert list(routes) == [RouteKey(prefix, 0)]
        assert routes[RouteKey(prefix, 0)].next_hop == next_hop


def test_path_ids_stay_with_the_path_whatever_the_health() -> None:
    healthy = plan(TWO, health_map(TWO, {"default": "up"}), None, 0.0)
    shifted = plan(TWO, health_map(TWO, {"default": "up", "*/use1/interconnect": "down"}), None, 0.0)
    ids = {k.path_id: a.next_hop for k, a in healthy.desired["edge"].items() if k.prefix == MEDIA}
    assert ids == {1: "198.18.1.11", 2: "198.18.1.31", 3: "198.18.1.12", 4: "198.18.1.32"}
    for k, a in shifted.desired["edge"].items():
        if k.prefix == MEDIA:
            assert ids[k.path_id] == a.next_hop


def test_ipv6_prefix_only_to_peers_that_carry_ipv6() -> None:
    patch: dict[str, Any] = {
        "guards": {"allowlist": ["203.0.113.0/24", "192.0.2.0/24", "2001:db8::/32"]},
        "peers": [
            {**NO_ADD_PATH["peers"][0], "families": ["ipv4-unicast", "ipv6-unicast"], "add_path": "send"},
            *NO_ADD_PATH["peers"][1:],
        ],
    }
    loaded = lab_policy(patch)
    # plan() is checked here on its own (the loader refuses some of these policies), so the prefix and the
    # paths' IPv6 next hops go in past the loader
    media = loaded.services["media"]
    v6_media = media.model_copy(update={"prefixes": [*media.prefixes, ipaddress.ip_network("2001:db8:1::/48")]})
    regions = {
        rname: region.model_copy(
            update={
                "paths": {
                    # 198.18.1.11 -> 2001:db8:ff::11
                    pname: path.model_copy(
                        update={
                            "next_hop_v6": ipaddress.IPv6Address(f"2001:db8:ff::{str(path.next_hop).split('.')[-1]}")
                        }
                    )
                    for pname, path in region.paths.items()
                }
            }
        )
        for rname, region in loaded.regions.items()
    }
    policy = loaded.model_copy(update={"services": {**loaded.services, "media": v6_media}, "regions": regions})
    p = plan(policy, health_map(policy, {"default": "up"}), None, 0.0)
    v6 = {k.path_id: a.next_hop for k, a in p.desired["edge"].items() if k.prefix == "2001:db8:1::/48"}
    assert v6 == {1: "2001:db8:ff::11", 2: "2001:db8:ff::12"}  # each region's interconnect, its IPv6 next hop
    assert {a.next_hop for k, a in p.desired["edge"].items() if k.prefix == MEDIA} == {"198.18.1.11", "198.18.1.12"}
    # the same policy with the edge back to IPv4 only (the loader refuses that; plan() must cope anyway)
    v4_edge = policy.peers[0].model_copy(update={"families": [Family.IPV4_UNICAST]})
    v4 = policy.model_copy(update={"peers": [v4_edge, *policy.peers[1:]]})
    p4 = plan(v4, health_map(v4, {"default": "up"}), None, 0.0)
    assert [k for k in p4.desired["edge"] if k.prefix == "2001:db8:1::/48"] == []
    assert {k.prefix for k in p4.desired["edge"]} == {MEDIA, SIG, API}


def test_an_ipv6_prefix_without_an_ipv6_next_hop_is_not_planned() -> None:
    """A path with only an IPv4 next hop carries no IPv6 route (the speaker would refuse the whole RIB)."""
    patch: dict[str, Any] = {
        "guards": {"allowlist": ["203.0.113.0/24", "192.0.2.0/24", "2001:db8::/32"]},
        "peers": [
            {**NO_ADD_PATH["peers"][0], "families": ["ipv4-unicast", "ipv6-unicast"]},
            *NO_ADD_PATH["peers"][1:],
        ],
    }
    loaded = lab_policy(patch)
    media = loaded.services["media"]
    v6_media = media.model_copy(update={"prefixes": [*media.prefixes, ipaddress.ip_network("2001:db8:1::/48")]})
    policy = loaded.model_copy(update={"services": {**loaded.services, "media": v6_media}})
    p = plan(policy, health_map(policy, {"default": "up"}), None, 0.0)
    assert [k for k in p.desired["edge"] if k.prefix == "2001:db8:1::/48"] == []
    assert "2001:db8:1::/48: path use1/interconnect has no IPv6 next hop; not planned through it" in " ".join(p.notes)
    validate_rib(policy, p.desired)  # what is planned renders


# ------------------------------------------------------------------------------------------
# fail-static, freeze, allowlist


def test_fail_static_keeps_the_last_routes_of_a_dark_service() -> None:
    first = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0)
    dark = plan(LAB, health_map(LAB, {"default": "up", "media/*/*": "down"}), first, 10.0)
    for peer in ("edge", "tgw-use1", "tgw-usw2"):
        want = {k: a for k, a in first.desired[peer].items() if k.prefix in (MEDIA, CORP)}
        assert {k: a for k, a in dark.desired[peer].items() if k.prefix in (MEDIA, CORP)} == want
    assert not [c for c in dark.changes if c.key.prefix in (MEDIA, CORP)]
    assert "fail-static: service media: no path is up or degraded; kept 2 previous route(s)" in dark.notes
    assert (
        "fail-static: the corporate prefixes (they follow media): no path is up or degraded; kept 2 previous route(s)"
    ) in dark.notes


def test_fail_static_off_withdraws() -> None:
    policy = lab_policy({"guards": {"fail_static": False}}, drop=("signals",))
    first = plan(policy, health_map(policy, {"default": "up"}), None, 0.0)
    dark = plan(policy, health_map(policy, {"default": "up", "media/*/*": "down"}), first, 10.0)
    assert [k for k in dark.desired["edge"] if k.prefix == MEDIA] == []
    assert dark.desired["tgw-use1"] == {}
    assert any("fail-static is off" in n for n in dark.notes)


def test_fail_static_also_for_unknown_after_a_restart() -> None:
    first = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0)
    restarted = plan(LAB, {}, first, 10.0)
    assert restarted.desired == first.desired
    assert restarted.changes == ()


def test_freeze_keeps_everything_and_notes_it() -> None:
    first = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0)
    frozen = plan(LAB, health_map(LAB, {"default": "up", "api/use1/*": "down"}), first, 10.0, Overrides(freeze=True))
    assert frozen.desired == first.desired
    assert frozen.changes == () and frozen.deferred == ()
    assert any(n.startswith("freeze") for n in frozen.notes)


def test_overrides_default_to_the_policy_overrides() -> None:
    policy = lab_policy({"overrides": {"pin": {"media": "usw2"}}})
    p = plan(policy, health_map(policy, {"default": "up"}), None, 0.0)
    assert p.desired["edge"][RouteKey(MEDIA, 1)].med == 100
    assert (
        plan(policy, health_map(policy, {"default": "up"}), None, 0.0, Overrides())
        .desired["edge"][RouteKey(MEDIA, 1)]
        .med
        == 0
    )


def _unvalidated_prefix(prefix: str) -> Any:
    """The lab policy with a media prefix outside the allowlist, bypassing validation."""
    media = LAB.services["media"].model_copy(update={"prefixes": [ip_network(MEDIA), ip_network(prefix)]})
    return LAB.model_copy(update={"services": {**LAB.services, "media": media}})


@pytest.mark.parametrize("prefix", ["10.0.0.0/8", "203.0.112.0/23", "0.0.0.0/0", "192.0.2.0/23"])
def test_allowlist_drops_planned_routes_outside_it(prefix: str) -> None:
    policy = _unvalidated_prefix(prefix)
    p = plan(policy, health_map(policy, {"default": "up"}), None, 0.0)
    assert all(k.prefix != prefix for routes in p.desired.values() for k in routes)
    assert all(c.key.prefix != prefix for c in p.changes)
    assert any(prefix in n and "allowlist" in n for n in p.notes)
    assert RouteKey(MEDIA, 1) in p.desired["edge"]


def test_allowlist_withdraws_at_once_what_an_earlier_plan_holds_outside_it() -> None:
    policy = lab_policy({"guards": {"max_route_changes_per_minute": 1}})
    bad = RouteKey("10.1.0.0/16", 1)
    previous = Plan(
        desired={"edge": {bad: RouteAttrs("198.18.1.11", (65000,))}, "tgw-use1": {}, "tgw-usw2": {}},
        changes=(),
        change_times=(0.0,),
    )
    for overrides in (None, Overrides(freeze=True)):
        p = plan(policy, health_map(policy, {"default": "up"}), previous, 1.0, overrides)
        assert bad not in p.desired["edge"]
        assert p.changes[0] == RouteChange("edge", ChangeKind.WITHDRAW, bad, None, p.changes[0].why)
        assert "allowlist" in p.changes[0].why


# ------------------------------------------------------------------------------------------
# change order (make-before-break) and why


def _kinds(p: Plan) -> list[tuple[str, str, int, int | None]]:
    return [(c.kind.value, c.key.prefix, c.key.path_id, None if c.attrs is None else c.attrs.med) for c in p.changes]


def test_active_standby_failover_announces_the_new_preferred_before_degrading_the_old() -> None:
    first = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0)
    moved = plan(LAB, health_map(LAB, {"default": "up", "api/use1/*": "degraded"}), first, 10.0)
    assert _kinds(moved) == [("announce", API, 2, 0), ("announce", API, 1, 500)]
    assert moved.changes[0].why == "api/usw2/interconnect preferred"
    assert moved.changes[1].why == "api/use1/interconnect degraded (de-preferred)"


def test_failover_to_the_vpn_announces_before_withdrawing() -> None:
    first = plan(TWO, health_map(TWO, {"default": "up"}), None, 0.0)
    moved = plan(TWO, health_map(TWO, {"default": "up", "media/use1/interconnect": "down"}), first, 10.0)
    media_edge = [c for c in moved.changes if c.peer == "edge"]
    assert [(c.kind.value, c.key.path_id) for c in media_edge] == [("announce", 2), ("withdraw", 1)]
    assert media_edge[1].why == "media/use1/interconnect down: withdrawn"
    tgw = [c for c in moved.changes if c.peer == "tgw-use1"]
    assert [c.kind.value for c in tgw] == []  # the vpn (same TGW) is preferred now: the same route


def test_recovery_order_better_first_then_de_preference() -> None:
    first = plan(LAB, health_map(LAB, {"default": "up", "api/use1/*": "down"}), None, 0.0)
    back = plan(LAB, health_map(LAB, {"default": "up"}), first, 60.0)
    assert _kinds(back) == [("announce", API, 1, 0), ("announce", API, 2, 100)]


def test_withdrawals_come_last_and_unknown_is_explained() -> None:
    first = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0)
    p = plan(LAB, health_map(LAB, {"default": "up", "media/use1/*": "unknown", "api/use1/*": "degraded"}), first, 10.0)
    kinds = [c.kind for c in p.changes]
    assert kinds == sorted(kinds, key=lambda k: k is ChangeKind.WITHDRAW)
    withdrawn = [c for c in p.changes if c.kind is ChangeKind.WITHDRAW and c.peer == "edge"]
    assert [c.why for c in withdrawn] == ["media/use1/interconnect unknown: not announced"]


# ------------------------------------------------------------------------------------------
# rate limit


RATE_CASES: list[tuple[str, int, tuple[float, ...], float, int]] = [
    # (name, limit, change_times before, now, changes applied of the 2 an api failover needs)
    ("plenty of budget", 60, (), 100.0, 2),
    ("exactly the budget", 2, (), 100.0, 2),
    ("one left", 3, (50.0, 60.0), 100.0, 1),
    ("none left", 2, (50.0, 60.0), 100.0, 0),
    ("old changes fall out of the minute", 2, (30.0, 40.0), 100.0, 2),
    ("a change exactly 60 s ago no longer counts", 2, (40.0, 40.0), 100.0, 2),
    ("59.9 s ago still counts", 2, (40.1, 40.1), 100.0, 0),
]


@pytest.mark.parametrize(
    ("limit", "times", "now", "applied"), [c[1:] for c in RATE_CASES], ids=[c[0] for c in RATE_CASES]
)
def test_rate_limit(limit: int, times: tuple[float, ...], now: float, applied: int) -> None:
    policy = lab_policy({"guards": {"max_route_changes_per_minute": limit}})
    settled = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0)  # the lab's budget: all at once
    previous = Plan(desired=settled.desired, changes=(), change_times=times)
    p = plan(policy, health_map(policy, {"default": "up", "api/use1/*": "degraded"}), previous, now)
    assert len(p.changes) == applied
    assert len(p.deferred) == 2 - applied
    assert p.desired == apply_changes(previous.desired, p.changes)
    assert p.change_times == tuple(t for t in times if t > now - 60) + (now,) * applied
    if p.deferred:
        assert any(n.startswith("rate limit: ") for n in p.notes)
        # the next call, a minute later, plans the deferred changes again
        later = plan(policy, health_map(policy, {"default": "up", "api/use1/*": "degraded"}), p, now + 60)
        assert [c.key for c in later.changes] == [c.key for c in p.deferred]
        assert later.deferred == ()


def test_deferred_changes_are_the_tail_in_make_before_break_order() -> None:
    policy = lab_policy({"guards": {"max_route_changes_per_minute": 1}})
    settled = plan(LAB, health_map(LAB, {"default": "up"}), None, -100.0)
    p = plan(policy, health_map(policy, {"default": "up", "api/use1/*": "degraded"}), settled, 0.0)
    assert _kinds(p) == [("announce", API, 2, 0)]  # the new preferred went out; the de-preference waits
    assert [(c.key.path_id, c.attrs.med if c.attrs else None) for c in p.deferred] == [(1, 500)]


def test_the_lab_policy_key_set() -> None:
    # guards the tables above: the lab policy has the paths they talk about
    assert set(path_states(LAB, {})[0]) == {
        PathKey(s, r, "interconnect") for s in ("media", "signalling", "api") for r in ("use1", "usw2")
    }


WHY_CASES: list[tuple[str, str, RouteKey, str]] = [
    ("a peer the policy no longer has", "old-edge", RouteKey(MEDIA, 1), "peer old-edge is no longer in the policy"),
    (
        "a prefix no service has any more",
        "edge",
        RouteKey("203.0.113.192/26", 1),
        "203.0.113.192/26 is no longer announced to edge by the policy",
    ),
    ("a path id no path has any more", "edge", RouteKey(MEDIA, 9), "path id 9 is no path of the policy any more"),
    (
        "ADD-PATH turned on",
        "edge",
        RouteKey(MEDIA, 0),
        "ADD-PATH is on towards edge now: 203.0.113.0/26 goes out once per path",
    ),
    (
        "ADD-PATH turned off",
        "tgw-use1",
        RouteKey(CORP, 1),
        "ADD-PATH is off towards tgw-use1 now: 192.0.2.0/24 goes out once, path id 0",
    ),
]


@pytest.mark.parametrize(("peer", "key", "why"), [c[1:] for c in WHY_CASES], ids=[c[0] for c in WHY_CASES])
def test_withdrawals_left_over_from_an_older_policy_say_why(peer: str, key: RouteKey, why: str) -> None:
    settled = plan(LAB, health_map(LAB, {"default": "up"}), None, 0.0)
    desired = {name: dict(routes) for name, routes in settled.desired.items()}
    desired.setdefault(peer, {})[key] = RouteAttrs("198.18.1.11", (65000,), 0)
    p = plan(LAB, health_map(LAB, {"default": "up"}), Plan(desired=desired, changes=()), 10.0)
    assert [(c.peer, c.kind, c.key, c.why) for c in p.changes] == [(peer, ChangeKind.WITHDRAW, key, why)]
    assert key not in p.desired.get(peer, {})
