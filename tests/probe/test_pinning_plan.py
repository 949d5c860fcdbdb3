"""The pure half of pinning: what to change, decided from a snapshot (no netlink, no root)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from bgpctl.errors import ProbeError
from bgpctl.probe.pinning import (
    RT_PROTO_BGPCTL,
    AddrSeen,
    Observed,
    Pin,
    Pinning,
    RouteSeen,
    RuleSeen,
    Step,
    check_tables,
    describe,
    missing,
    orphans,
    plan_install,
    plan_take_away,
)

PIN = Pin("198.18.1.21", 101, "198.18.1.11", "use1/interconnect")
PIN6 = Pin("2001:db8:1::21", 601, "2001:db8:1::11", "use1/v6")
OURS_DEFAULT = RouteSeen(None, 0, None, PIN.next_hop, RT_PROTO_BGPCTL)
OUR_RULE = RuleSeen(PIN.source, 32, PIN.table, 9200)


def calls(steps: list[Step]) -> list[tuple[str, str, str | None]]:
    return [(s.call, s.command, s.creates) for s in steps]


def test_a_fresh_pin_adds_address_default_route_and_rule_and_says_it_created_them() -> None:
    steps = plan_install(PIN, Observed(oif=3), priority=9200, add_addresses=True)
    assert calls(steps) == [("addr", "add", "addr"), ("route", "replace", "route"), ("rule", "add", "rule")]
    assert steps[0].kwargs() == {"index": 3, "address": PIN.source, "prefixlen": 32, "proto": RT_PROTO_BGPCTL}
    assert steps[1].kwargs() == {
        "dst": "0.0.0.0",
        "dst_len": 0,
        "gateway": PIN.next_hop,
        "oif": 3,
        "table": 101,
        "proto": RT_PROTO_BGPCTL,
        "family": socket.AF_INET,
    }
    assert steps[2].kwargs() == {
        "family": socket.AF_INET,
        "src": PIN.source,
        "src_len": 32,
        "table": 101,
        "priority": 9200,
        "protocol": RT_PROTO_BGPCTL,
    }


def test_ipv6_pins_use_host_length_128_and_the_v6_default() -> None:
    steps = plan_install(PIN6, Observed(oif=4), priority=9201, add_addresses=False)
    assert calls(steps) == [("route", "replace", "route"), ("rule", "add", "rule")]
    assert steps[0].kwargs()["dst"] == "::" and steps[0].kwargs()["family"] == socket.AF_INET6
    assert steps[1].kwargs()["src_len"] == 128 and steps[1].kwargs()["priority"] == 9201


def test_an_installed_pin_plans_only_the_harmless_replace_and_creates_nothing() -> None:
    seen = Observed(routes=(OURS_DEFAULT,), rules=(OUR_RULE,), addrs=(AddrSeen(3, 32, RT_PROTO_BGPCTL),), oif=3)
    assert calls(plan_install(PIN, seen, priority=9200, add_addresses=True)) == [("route", "replace", None)]


def test_stale_routes_and_rules_of_ours_are_deleted() -> None:
    old_metric = RouteSeen(None, 0, 10, "198.18.1.99", RT_PROTO_BGPCTL)  # not replaced in place: metric 10
    old_metric0 = RouteSeen(None, 0, None, "198.18.1.99", RT_PROTO_BGPCTL)  # replaced in place
    specific = RouteSeen("203.0.113.0", 24, None, PIN.next_hop, RT_PROTO_BGPCTL)
    other_table = RuleSeen(PIN.source, 32, 999, 9200)
    seen = Observed(routes=(old_metric, old_metric0, specific), rules=(other_table,), oif=3)
    steps = plan_install(PIN, seen, priority=9200, add_addresses=False)
    assert calls(steps) == [
        ("route", "replace", None),
        ("route", "del", None),
        ("route", "del", None),
        ("rule", "del", None),
        ("rule", "add", "rule"),
    ]
    assert steps[1].kwargs() == {
        "family": socket.AF_INET,
        "table": 101,
        "dst_len": 0,
        "priority": 10,
        "proto": RT_PROTO_BGPCTL,
    }
    assert steps[2].kwargs()["dst"] == "203.0.113.0" and steps[2].kwargs()["dst_len"] == 24
    assert steps[3].kwargs()["table"] == 999


def test_an_unusable_next_hop_is_refused_with_the_reason() -> None:
    with pytest.raises(ProbeError, match=r"path use1/interconnect: next hop .* via 198\.18\.9\.1"):
        plan_install(
            PIN,
            Observed(oif_problem="next hop 198.18.1.11 is not on a connected network (reached via 198.18.9.1)"),
            priority=9200,
            add_addresses=True,
        )


def test_a_table_with_foreign_routes_is_refused_before_anything_changes() -> None:
    foreign = RouteSeen("198.51.100.0", 24, None, "198.18.1.11", 4)
    check_tables([PIN], {PIN: Observed(routes=(OURS_DEFAULT,))})
    with pytest.raises(ProbeError, match=r"table 101 holds 1 route\(s\) bgpctl did not install \(proto \[4\]\)"):
        check_tables([PIN], {PIN: Observed(routes=(OURS_DEFAULT, foreign))})


def test_take_away_removes_only_the_wanted_parts_with_our_marks() -> None:
    operators_addr, our_addr = AddrSeen(2, 24, 0), AddrSeen(3, 32, RT_PROTO_BGPCTL)
    unrelated_rule = RuleSeen("198.18.1.77", 32, 300, 9200)
    seen = Observed(routes=(OURS_DEFAULT,), rules=(OUR_RULE, unrelated_rule), addrs=(operators_addr, our_addr))
    assert calls(plan_take_away(PIN, seen, lambda part, pin: True)) == [
        ("rule", "del", None),
        ("route", "del", None),
        ("addr", "del", None),
    ]
    assert plan_take_away(PIN, seen, lambda part, pin: True)[2].kwargs() == {
        "index": 3,
        "address": PIN.source,
        "prefixlen": 32,
    }
    assert calls(plan_take_away(PIN, seen, lambda part, pin: part == "rule")) == [("rule", "del", None)]
    assert plan_take_away(PIN, seen, lambda part, pin: False) == []


def test_describe_summarizes_a_snapshot() -> None:
    seen = Observed(routes=(OURS_DEFAULT,), rules=(OUR_RULE,), addrs=(AddrSeen(3, 32, 0),))
    assert describe(PIN, seen) == {
        "rules": 1,
        "routes": [{"default": True, "gateway": PIN.next_hop, "proto": RT_PROTO_BGPCTL}],
        "address_owned": False,
    }


def test_the_sync_api_refuses_to_run_inside_an_event_loop() -> None:
    async def main() -> None:
        with pytest.raises(ProbeError, match=r"await Pinning.purge_async\(\) there instead"):
            Pinning([PIN], netns="tbprb-never-touched").purge()

    asyncio.run(main())


def test_priority_outside_bgpctls_range_is_refused() -> None:
    with pytest.raises(ProbeError, match="outside bgpctl's range 9200-9299"):
        Pinning([PIN], priority=100)


def test_orphans_are_marked_rules_no_pin_of_the_policy_owns() -> None:
    stale = RuleSeen("198.18.1.99", 32, 199, 9250)  # a crashed daemon's path the policy no longer has
    stale6 = RuleSeen("2001:db8:1::99", 128, 699, 9201)
    marked = [
        (socket.AF_INET, OUR_RULE),
        (socket.AF_INET, stale),
        (socket.AF_INET6, stale6),
        (socket.AF_INET, RuleSeen(None, 0, 300, 9200)),  # no source: not a pin's shape, left alone
        (socket.AF_INET, RuleSeen("198.18.1.98", 24, 300, 9200)),  # not a host route: left alone
    ]
    found = orphans(marked, [PIN, PIN6])
    assert [(p.source, p.table) for p in found] == [("198.18.1.99", 199), ("2001:db8:1::99", 699)]
    # taken away whole: the rule, the table's routes of ours, an address of ours
    seen = Observed(
        routes=(RouteSeen(None, 0, None, "198.18.1.11", RT_PROTO_BGPCTL),),
        rules=(stale,),
        addrs=(AddrSeen(3, 32, RT_PROTO_BGPCTL),),
    )
    assert calls(plan_take_away(found[0], seen, lambda part, pin: True)) == [
        ("rule", "del", None),
        ("route", "del", None),
        ("addr", "del", None),
    ]
    assert orphans(marked[:1], [PIN]) == []


def test_missing_names_what_a_link_down_took_from_an_installed_pin() -> None:
    whole = Observed(routes=(OURS_DEFAULT,), rules=(OUR_RULE,))
    assert missing(PIN, whole) == []  # nothing to repair: the daemon writes nothing
    assert missing(PIN, Observed(rules=(OUR_RULE,))) == ["route"]  # the kernel flushed the table's route
    other_hop = RouteSeen(None, 0, None, "198.18.1.99", RT_PROTO_BGPCTL)
    assert missing(PIN, Observed(routes=(other_hop,), rules=(OUR_RULE,))) == ["route"]
    assert missing(PIN, Observed()) == ["route", "rule"]
