"""Dual stack in the pure core (docs/dualstack.md): each family of a dual-stack path is judged apart.

decide() sees a dual-stack path's IPv6 measurement as a key of its own (``PathKey.family`` ``ipv6``); plan()
sends a family's routes by that family's health. The golden plans tests/core/plans/dual-stack-* cover the
routes; these tests cover the keys and decide().
"""

from __future__ import annotations

import json

import pytest

from bgpctl.core.decide import decide, path_keys
from bgpctl.core.plan import health_key, plan
from bgpctl.core.recording import Header, RecordingError, Settled, parse_line, read_recording
from bgpctl.core.replay import ReplayError, replay
from bgpctl.core.types import MEASURED_V6, Health, PathHealth, PathKey
from tests.core.fed_run import FedRun, replayed_steps
from tests.core.plans.support import lab_policy
from tests.core.test_decide import BLACKHOLE, GOOD

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


def test_ipv6_measurements_are_recorded_with_their_family_and_replay_to_the_same_decisions() -> None:
    run = FedRun(DUAL)
    run.advance(30.0)
    assert all(run.health(k).health is Health.UP for k in path_keys(DUAL))
    run.forget_firsts()
    run.losing_keys = {MEDIA_USE1_V6}  # IPv6 broken on use1's link; IPv4 on it answers
    run.advance(10.0)
    assert {k for (k, h) in run.first if h is Health.DOWN} == {MEDIA_USE1_V6}
    assert run.health(MEDIA_USE1).health is Health.UP
    run.losing_keys = set()
    run.advance(60.0)
    assert run.health(MEDIA_USE1_V6).health is Health.UP

    header = json.loads(run.lines[0])
    assert "media/use1/interconnect/ipv6" in header["paths"] and "media/use1/interconnect" in header["paths"]
    samples = [json.loads(line) for line in run.lines if '"seq"' in line]
    v6 = [s for s in samples if s.get("family") == MEASURED_V6]
    assert v6 and {(s["service"], s["region"], s["path"]) for s in v6} == {
        ("media", "use1", "interconnect"),
        ("media", "usw2", "interconnect"),
    }
    assert all(set(s) == {"service", "region", "path", "seq", "sent", "received"} for s in samples if "family" not in s)
    events = list(read_recording(run.lines))
    assert isinstance(events[0], Header) and MEDIA_USE1_V6 in events[0].paths
    assert {e.key for e in events if isinstance(e, Settled)} == set(path_keys(DUAL))

    replayed, summary = replayed_steps(run.lines, DUAL)
    assert replayed == [s for s in run.steps if s[1]]
    assert summary.final_health == {k: run.health(k).health for k in path_keys(DUAL)}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"service": "media", "region": "use1", "path": "interconnect", "family": "ipv4", "seq": 1, '
            '"sent": 1.0, "received": 1.1}',
            r"x:1: 'family' is 'ipv4': write \"ipv6\"",
        ),
        (
            '{"service": "media", "region": "use1", "path": "interconnect", "family": 6, "seq": 1, '
            '"sent": 1.0, "received": null}',
            r"x:1: 'family' is 6",
        ),
        (
            '{"bgpctl_recording": 2, "steps": true, "paths": {"media/use1/interconnect/ipv4": '
            '{"interval_s": 0.02, "timeout_s": 0.3}}}',
            r"x:1: paths.media/use1/interconnect/ipv4: write 'service/region/path' \(or 'service/region/path/ipv6'",
        ),
    ],
)
def test_a_bad_family_in_a_recording_is_refused_with_file_and_line(line: str, message: str) -> None:
    with pytest.raises(RecordingError, match=message):
        parse_line(line, "x:1")


def test_a_recording_with_ipv6_samples_replays_against_a_policy_without_them_refused() -> None:
    line = (
        '{"service": "media", "region": "use1", "path": "interconnect", "family": "ipv6", "seq": 1, '
        '"sent": 1.0, "received": 1.001}'
    )
    header = '{"bgpctl_recording": 2, "steps": true, "paths": {}}'
    with pytest.raises(
        ReplayError, match=r"samples of media/use1/interconnect/ipv6, which the policy does not measure"
    ):
        list(replay(lab_policy(), read_recording([header, line, '{"ev": "step", "at": 2.0}'])))
