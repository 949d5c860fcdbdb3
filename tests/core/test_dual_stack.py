"""Dual stack in the pure core (docs/dualstack.md): each family of a dual-stack path is judged apart.

decide() sees a dual-stack path's IPv6 measurement as a key of its own (``PathKey.family`` ``ipv6``); plan()
sends a family's routes by that family's health. The golden plans tests/core/plans/dual-stack-* cover the
routes; these tests cover the keys and decide().
"""

from __future__ import annotations

from bgpctl.core.decide import decide, path_keys
from bgpctl.core.plan import health_key, plan
from bgpctl.core.types import MEASURED_V6, Health, PathHealth, PathKey
from tests.core.plans.support import lab_policy
from tests.core.windows import BLACKHOLE, GOOD

DUAL = lab_policy(file="examples/dual-stack.yaml")
MEDIA_USE1 = PathKey("media", "use1", "interconnect")
MEDIA_USE1_V6 = PathKey("media", "use1", "interconnect", MEASURED_V6)
MEDIA_USW2_V6 = PathKey("media", "usw2", "interconnect", MEASURED_V6)


def test_only_targets_with_address_v6_get_an_ipv6_measurement() -> None:
    keys = path_keys(DUAL)
    assert [str(k) for k in keys if k.family] == ["media/use1/interconnect/ipv6", "media/usw2/interconnect/ipv6"]
    assert [str(k) for k in keys if k.service == "media"] == [
        "media/use1/interconnect",
        "media/use1/interconnect/ipv6",
        "media/usw2/interconnect",
        "media/usw2/interconnect/ipv6",
    ]
    assert MEDIA_USE1_V6.labels == ("media", "use1", "interconnect/ipv6")
    assert MEDIA_USE1.labels == ("media", "use1", "interconnect")


def test_a_routes_health_key_is_its_familys_measurement() -> None:
    assert health_key(DUAL, "media", "use1", "interconnect", 6) == MEDIA_USE1_V6
    assert health_key(DUAL, "media", "use1", "interconnect", 4) == MEDIA_USE1
    # api has an IPv6 prefix but no IPv6 probe target: its IPv6 routes follow the IPv4 probes
    assert health_key(DUAL, "api", "use1", "interconnect", 6) == PathKey("api", "use1", "interconnect")


def test_ipv6_down_while_ipv4_on_the_same_link_is_up() -> None:
    stats = {k: GOOD for k in path_keys(DUAL)} | {MEDIA_USE1_V6: BLACKHOLE}
    health = decide(DUAL, stats, {}, 0.0).health
    assert health[MEDIA_USE1_V6].health is Health.DOWN
    assert health[MEDIA_USE1].health is Health.UP
    assert health[MEDIA_USW2_V6].health is Health.UP


def test_the_ipv6_session_of_a_path_takes_down_only_its_ipv6_measurement() -> None:
    previous = {k: PathHealth(Health.UP) for k in path_keys(DUAL)}
    stats = {k: GOOD for k in path_keys(DUAL)}
    health = decide(DUAL, stats, previous, 10.0, frozenset({"tgw-usw2-v6"})).health
    assert {str(k) for k, h in health.items() if h.health is Health.DOWN} == {"media/usw2/interconnect/ipv6"}
    health = decide(DUAL, stats, previous, 10.0, frozenset({"tgw-usw2"})).health
    assert {str(k) for k, h in health.items() if h.health is Health.DOWN} == {
        "media/usw2/interconnect",
        "signalling/usw2/interconnect",
        "api/usw2/interconnect",
    }


def test_ipv6_routes_follow_ipv6_health_and_ipv4_routes_ipv4_health() -> None:
    up = {k: PathHealth(Health.UP) for k in path_keys(DUAL)}
    first = plan(DUAL, up, None, 0.0)
    second = plan(DUAL, up | {MEDIA_USE1_V6: PathHealth(Health.DOWN)}, first, 10.0)
    moved = {(c.peer, c.key.prefix, c.kind.value) for c in second.changes}
    assert moved == {("edge", "2001:db8:c0::/64", "withdraw"), ("tgw-use1", "2001:db8:a::/48", "withdraw")}
    third = plan(DUAL, up | {MEDIA_USE1: PathHealth(Health.DOWN)}, first, 10.0)
    moved = {(c.peer, c.key.prefix, c.kind.value) for c in third.changes}
    assert moved == {("edge", "203.0.113.0/26", "withdraw"), ("tgw-use1", "192.0.2.0/24", "withdraw")}
