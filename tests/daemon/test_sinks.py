"""The routing-state gauges the dashboard and the alert rules read (bgpctl_path_state, bgpctl_announced_routes,
bgpctl_overrides), exported from a controller judged on real samples, read back from the exposition text."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bgpctl.core.overrides import apply
from bgpctl.core.plan import path_states
from bgpctl.core.types import PathKey, PathStats, RouteAttrs, RouteKey
from bgpctl.daemon.sinks import Metrics, MetricsSink, Throttle, export_routing_state, override_counts
from bgpctl.policy.model import Drain, Overrides
from tests.control.support import Judged, judge, lab_policy

BY = {"pid": 7, "uid": 0, "gid": 0}
PEERS = ["edge", "tgw-use1", "tgw-usw2"]


def _samples(m: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def _current_states(m: Metrics) -> dict[str, str]:
    """'service/region/path' -> the state whose series is 1 (exactly one per path, or the test fails)."""
    on: dict[str, list[str]] = {}
    for labels, value in _samples(m, "bgpctl_path_state").items():
        d = dict(labels)
        key = f"{d['service']}/{d['region']}/{d['path']}"
        on.setdefault(key, [])
        if value == 1:
            on[key].append(d["state"])
        else:
            assert value == 0, (labels, value)
    assert all(len(v) == 1 for v in on.values()), on
    return {k: v[0] for k, v in on.items()}


def _export(m: Metrics, j: Judged, announced: dict[str, dict[RouteKey, RouteAttrs]] | None = None) -> None:
    c = j.controller
    export_routing_state(
        m,
        states=path_states(c.policy, c.health, c.overrides)[0],
        peers=PEERS,
        announced=announced or {},
        policy_overrides=c.policy.overrides,
        runtime=c.runtime,
    )


def test_path_state_has_one_series_on_per_path_and_follows_health_and_drains() -> None:
    j = judge(lab_policy(), lost=lambda k, t: k.region == "usw2")
    m = Metrics()
    _export(m, j)
    states = _current_states(m)
    assert set(states) == {str(k) for k in j.controller.keys}
    assert {k: v for k, v in states.items() if "/usw2/" in k} == dict.fromkeys(
        (k for k in states if "/usw2/" in k), "down"
    )
    assert set(v for k, v in states.items() if "/use1/" in k) == {"preferred"}

    new, _, _ = apply(
        j.controller.policy,
        j.controller.health,
        (),
        "drain",
        {"target": ("use1", None), "reason": "maintenance", "force": True},
        by=BY,
        now=j.now,
    )
    j.controller.set_overrides(new)
    _export(m, j)
    assert set(v for k, v in _current_states(m).items() if "/use1/" in k) == {"standby"}
    assert _samples(m, "bgpctl_overrides")[(("kind", "drain"), ("source", "runtime"))] == 1


def test_an_unjudged_path_has_every_state_series_at_zero() -> None:
    j = judge(lab_policy(), seconds=0.1)  # one probe each: nothing judged yet
    m = Metrics()
    _export(m, j)
    values = _samples(m, "bgpctl_path_state")
    assert len(values) == 4 * len(j.controller.keys)
    assert set(values.values()) == {0.0}


def test_announced_routes_count_per_peer_and_zero_for_a_peer_holding_none() -> None:
    j = judge(lab_policy())
    m = Metrics()
    attrs = RouteAttrs(next_hop="198.18.1.1", as_path=(65000,))
    _export(m, j, {"edge": {RouteKey("203.0.113.0/25"): attrs, RouteKey("203.0.113.128/25"): attrs}})
    assert _samples(m, "bgpctl_announced_routes") == {
        (("peer", "edge"),): 2.0,
        (("peer", "tgw-use1"),): 0.0,
        (("peer", "tgw-usw2"),): 0.0,
    }
    _export(m, j, {})  # the edge's session went down: it holds nothing now
    assert _samples(m, "bgpctl_announced_routes")[(("peer", "edge"),)] == 0.0


def test_override_counts_cover_every_kind_and_source_from_the_file_and_at_runtime() -> None:
    policy_ov = Overrides(
        drain=[Drain(region="use1"), Drain(region="usw2", path="interconnect")],
        pin={"api": "usw2"},
        weights={"media": {"use1": 80, "usw2": 20}},
    )
    j = judge(lab_policy())
    runtime, _, _ = apply(
        j.controller.policy, j.controller.health, (), "freeze", {"reason": "change window"}, by=BY, now=j.now
    )
    weight = {"service": "signalling", "weights": {"use1": 95, "usw2": 5}, "reason": "canary"}
    runtime, _, _ = apply(j.controller.policy, j.controller.health, runtime, "weight", weight, by=BY, now=j.now)
    assert override_counts(policy_ov, runtime) == {
        ("drain", "policy"): 2,
        ("drain", "runtime"): 0,
        ("pin", "policy"): 1,
        ("pin", "runtime"): 0,
        ("freeze", "policy"): 0,
        ("freeze", "runtime"): 1,
        ("weight", "policy"): 1,
        ("weight", "runtime"): 1,
    }
    assert set(override_counts(Overrides(), ()).values()) == {0}


def test_reload_success_gauge_starts_at_one() -> None:
    # the reload-failed alert fires on 0: a daemon that never reloaded must not look like a failed reload
    assert _samples(Metrics(), "bgpctl_policy_last_reload_successful") == {(): 1.0}


def test_the_path_gauges_are_set_at_most_once_per_throttle_interval() -> None:
    """The loop measures on every pass; the gauges follow at most every 0.25 s of the throttle's clock, and the
    first pass is always exported."""
    now = [100.0]
    m = Metrics()
    sink = MetricsSink(m, Throttle(0.25, clock=lambda: now[0]))
    key = PathKey("media", "use1", "interconnect")

    def stats(rtt: float) -> dict[PathKey, PathStats]:
        return {key: PathStats(10, 0, 0, rtt, rtt, 0.1, 4.4)}

    def p50() -> float:
        (value,) = _samples(m, "bgpctl_path_rtt_p50_ms").values()
        return value

    sink.measured(stats(10.0))
    assert p50() == 10.0
    now[0] += 0.1
    sink.measured(stats(20.0))  # within 0.25 s: not exported
    assert p50() == 10.0
    now[0] += 0.2
    sink.measured(stats(30.0))
    assert p50() == 30.0
    unthrottled = MetricsSink(m)
    unthrottled.measured(stats(40.0))
    assert p50() == 40.0
