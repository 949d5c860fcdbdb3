"""Table-driven tests for decide(): one scenario per rule of bgpctl.core.decide's docstring.

Each scenario feeds one path (media/use1/interconnect of policies/lab.yaml, SLA class ``voice``)
a timed sequence of window statistics and checks the health after every call. ``voice``:
degraded {rtt 150 ms, jitter 30 ms, loss 1 %, mos < 4.0}, down {rtt 400, jitter 80, loss 10, mos < 3.1};
hysteresis: down_after_lost 5, min_samples 20, rise_s 10, recovery_margin 20 %, hold_down 15 s,
min_dwell 5 s (patched per row where a row needs other values).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from bgpctl.core.decide import decide, path_keys, recovery_bound
from bgpctl.core.types import Decision, Health, PathHealth, PathKey, PathStats
from bgpctl.policy.model import Policy
from tests.core.plans.support import TWO_PATHS, deep_merge, lab_policy
from tests.core.windows import BAND, BLACKHOLE, DEAD_SOFT, DEGR, EDGE_CLEAN, GOOD, HALF, NOISE, PINNED, win

UNK, UP, DEG, DOWN = Health.UNKNOWN, Health.UP, Health.DEGRADED, Health.DOWN
KEY = PathKey("media", "use1", "interconnect")


LAB = lab_policy(PINNED)


def voice(**hysteresis: Any) -> Policy:
    """The pinned lab policy with the voice SLA class's hysteresis patched (validated by the loader)."""
    if not hysteresis:
        return LAB
    return lab_policy(deep_merge(PINNED, {"sla_classes": {"voice": {"hysteresis": hysteresis}}}))


def every(
    start: float, stop: float, step: float, stats: PathStats | None, health: Health
) -> list[tuple[float, PathStats | None, Health]]:
    """Calls at start, start+step, ... < stop, all expecting ``health``."""
    out = []
    n = 0
    while start + n * step < stop - 1e-9:
        out.append((round(start + n * step, 6), stats, health))
        n += 1
    return out


@dataclass
class Case:
    name: str
    steps: Sequence[tuple[float, PathStats | None, Health]]
    policy: Policy = field(default_factory=lambda: LAB)
    reasons: Iterable[str] = ()  # texts expected among the last step's reasons
    metrics: Iterable[str] = ()  # Reason.metric values expected among the last step's reasons


CASES = [
    Case(
        "too few samples: UNKNOWN stays UNKNOWN, no data too",
        [(0, win(samples=10), UNK), (1, None, UNK), (2, win(samples=19), UNK)],
        reasons=["19 settled samples < min_samples 20: not judged, unknown kept"],
    ),
    Case(
        "first judgement UP at once when min_samples is reached",
        [(0, win(samples=10), UNK), (0.2, win(samples=20), UP)],
        metrics=["samples"],
    ),
    Case("first judgement DEGRADED at once", [(0, DEGR, DEG)], reasons=["loss_pct 2.0% > degraded 1.0%"]),
    Case(
        "first judgement DOWN at once, arms the hold-down",
        [(0, DEAD_SOFT, DOWN), (14.9, GOOD, DOWN)],
        reasons=["hold-down: 0.1 s left of hold_down_s 15 s"],
    ),
    Case(
        "hard failure with few samples: DOWN from UNKNOWN at once",
        [(0, win(samples=5, loss=100, consecutive=5), DOWN)],
        reasons=["consecutive_lost 5 >= down_after_lost 5"],
    ),
    Case(
        "hard failure from UP at once, whatever the dwell",
        [(0, GOOD, UP), (0.1, BLACKHOLE, DOWN)],
        metrics=["consecutive_lost"],
    ),
    Case("one lost probe short of the hard failure is noise", [(0, GOOD, UP), (0.1, win(loss=0.4, consecutive=4), UP)]),
    Case(
        "worsening at once: UP -> DEGRADED -> DOWN in consecutive calls",
        [(0, GOOD, UP), (0.1, DEGR, DEG), (0.2, DEAD_SOFT, DOWN)],
        reasons=["loss_pct 12.0% > down 10.0%"],
    ),
    Case(
        "DEGRADED -> UP once clean for rise_s",
        [(0, DEGR, DEG), *every(1, 11, 0.5, GOOD, DEG), (10.99, GOOD, DEG), (11, GOOD, UP)],
        reasons=[
            "clean for 10.0 s >= rise_s 10 s: degraded -> up",
            "loss_pct 0.0% <= 0.8% (degraded 1.0% less 20% margin)",
        ],
    ),
    Case(
        "rise interrupted by one window inside the band starts over",
        [
            (0, DEGR, DEG),
            *every(1, 6.5, 0.5, GOOD, DEG),
            (6.5, BAND, DEG),
            *every(7, 17, 0.5, GOOD, DEG),
            (17, GOOD, UP),
        ],
    ),
    Case(
        "rise interrupted by one window crossing again starts over",
        [(0, DEGR, DEG), *every(1, 9, 1, GOOD, DEG), (9, DEGR, DEG), *every(10, 20, 1, GOOD, DEG), (20, GOOD, UP)],
    ),
    Case(
        "min_dwell_s holds an improvement even when rise_s is 0",
        [(0, DEGR, DEG), (1, GOOD, DEG), (4.9, GOOD, DEG), (5, GOOD, UP)],
        policy=voice(rise_s=0),
        metrics=["rise", "loss_pct"],
    ),
    Case(
        "min_dwell_s reason while held",
        [(0, DEGR, DEG), (1, GOOD, DEG)],
        policy=voice(rise_s=0),
        reasons=["1.0 s in degraded < min_dwell_s 5 s"],
    ),
    Case(
        "hold-down keeps DOWN after rise_s and dwell are met",
        [(0, BLACKHOLE, DOWN), *every(1, 15, 0.5, GOOD, DOWN), (14.99, GOOD, DOWN), (15, GOOD, UP)],
        policy=voice(rise_s=1, min_dwell_s=0),
    ),
    Case(
        "hold-down re-armed while the path is still seen dead",
        [(0, BLACKHOLE, DOWN), (10, BLACKHOLE, DOWN), *every(11, 25, 1, GOOD, DOWN), (25, GOOD, UP)],
        policy=voice(rise_s=1, min_dwell_s=0),
    ),
    Case(
        "inside the recovery band a DEGRADED path stays DEGRADED",
        [(0, DEGR, DEG), *every(1, 61, 1, BAND, DEG), *every(61, 71, 1, EDGE_CLEAN, DEG), (71, EDGE_CLEAN, UP)],
    ),
    Case(
        "band reason names the recovery bound",
        [(0, DEGR, DEG), (1, BAND, DEG)],
        reasons=["loss_pct 0.9% > 0.8% (degraded 1.0% less 20% margin): inside the hysteresis band"],
    ),
    Case("noise exactly on every degraded threshold keeps UP", [(0, GOOD, UP), *every(1, 100, 1, NOISE, UP)]),
    Case(
        "noise inside the down thresholds keeps DEGRADED",
        [(0, DEGR, DEG), *every(1, 100, 1, win(loss=10, p95=400, jitter=80, mos=3.1), DEG)],
    ),
    Case(
        "DOWN -> DEGRADED when only the down thresholds are cleared, after the hold-down",
        [(0, DEAD_SOFT, DOWN), *every(1, 15, 1, HALF, DOWN), (15, HALF, DEG), *every(16, 40, 1, HALF, DEG)],
        metrics=["loss_pct"],
    ),
    Case(
        "DOWN -> UP in one step when UP was clean for the whole rise",
        [(0, DEAD_SOFT, DOWN), *every(1, 15, 1, GOOD, DOWN), (15, GOOD, UP)],
    ),
    Case(
        "DOWN -> DEGRADED -> UP when the UP-clean run started later",
        [
            (0, DEAD_SOFT, DOWN),
            *every(1, 5, 1, HALF, DOWN),
            *every(5, 15, 1, GOOD, DOWN),
            (15, GOOD, DEG),
            *every(16, 25, 1, GOOD, DEG),
            (25, GOOD, UP),
        ],
    ),
    Case(
        "no data keeps a judged state (fail-static); the hard failure still acts",
        [
            (0, GOOD, UP),
            *every(1, 50, 7, None, UP),
            (60, win(samples=3), UP),
            (61, BLACKHOLE, DOWN),
            (200, None, DOWN),
            (201, win(samples=3), DOWN),
        ],
    ),
    Case(
        "no data stops the rise clock",
        [(0, DEGR, DEG), *every(1, 6, 1, GOOD, DEG), (6, None, DEG), *every(7, 17, 1, GOOD, DEG), (17, GOOD, UP)],
    ),
    Case(
        "rtt is judged on the p95",
        [(0, win(p95=160.0, p50=20.0), DEG)],
        reasons=["rtt_ms p95 160.0 ms > degraded 150.0 ms"],
    ),
    Case("jitter crosses down", [(0, win(jitter=90.0), DOWN)], reasons=["jitter_ms 90.0 ms > down 80.0 ms"]),
    Case("mos crosses down", [(0, win(mos=3.0), DOWN)], reasons=["mos 3.00 < down 3.10"]),
    Case(
        "mos recovers at threshold + 20% of the headroom to 4.5 (4.10), not before",
        [
            (0, win(mos=3.9), DEG),
            *every(1, 30, 1, win(mos=4.09), DEG),
            *every(30, 40, 1, win(mos=4.10), DEG),
            (40, win(mos=4.10), UP),
        ],
        reasons=["mos 4.10 >= 4.10 (degraded 4.00 plus 20% of the headroom to 4.5)"],
    ),
    Case(
        "every probe lost below down_after_lost: DOWN by loss, and no answer crosses rtt",
        [(0, win(samples=100, loss=100, consecutive=100), DOWN)],
        policy=voice(down_after_lost=1000),
        metrics=["loss_pct", "rtt_ms"],
    ),
    Case(
        "recovery margin 0: clean as soon as under the threshold",
        [(0, DEGR, DEG), *every(1, 11, 1, BAND, DEG), (11, BAND, UP)],
        policy=voice(recovery_margin_pct=0),
    ),
]


def run(policy: Policy, steps: Sequence[tuple[float, PathStats | None, Health]]) -> list[Decision]:
    previous: dict[PathKey, PathHealth] = {}
    out = []
    for i, (now, stats, expected) in enumerate(steps):
        d = decide(policy, {KEY: stats} if stats is not None else {}, previous, now)
        got = d.health[KEY]
        assert got.health is expected, f"step {i} at t={now}: {got.health} != {expected}; reasons {got.reasons}"
        changed = got.health is not previous.get(KEY, PathHealth()).health
        assert [t.key for t in d.transitions] == ([KEY] if changed else [])
        for t in d.transitions:
            assert t.reasons == got.reasons and t.reasons, "every change says why"
            assert t.at == now and t.new is got.health
        previous = d.health
        out.append(d)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_decide_scenarios(case: Case) -> None:
    decisions = run(case.policy, case.steps)
    last = decisions[-1].health[KEY]
    texts = [r.text for r in last.reasons]
    for want in case.reasons:
        assert want in texts, f"{want!r} not in {texts}"
    metrics = {r.metric for r in last.reasons}
    for m in case.metrics:
        assert m in metrics, f"{m!r} not in {metrics}"


# ------------------------------------------------------------------------------------------
# state fields


def test_hard_failure_sets_down_until_and_keeps_since_while_down() -> None:
    d1 = decide(LAB, {KEY: BLACKHOLE}, {}, 100.0)
    h1 = d1.health[KEY]
    assert (h1.health, h1.since, h1.down_until) == (DOWN, 100.0, 115.0)
    d2 = decide(LAB, {KEY: BLACKHOLE}, d1.health, 104.0)
    h2 = d2.health[KEY]
    assert (h2.health, h2.since, h2.down_until) == (DOWN, 100.0, 119.0)
    assert d2.transitions == ()


def test_clean_since_tracks_the_clean_run() -> None:
    d = decide(LAB, {KEY: DEGR}, {}, 0.0)
    d = decide(LAB, {KEY: GOOD}, d.health, 3.0)
    assert (d.health[KEY].clean_since, d.health[KEY].clean_level) == (3.0, UP)
    d = decide(LAB, {KEY: GOOD}, d.health, 4.0)
    assert d.health[KEY].clean_since == 3.0
    d = decide(LAB, {KEY: BAND}, d.health, 5.0)
    assert (d.health[KEY].clean_since, d.health[KEY].clean_level) == (None, None)


def test_reason_fields_name_metric_value_and_threshold() -> None:
    h = decide(LAB, {KEY: DEAD_SOFT}, {}, 0.0).health[KEY]
    [r] = [r for r in h.reasons if r.metric == "loss_pct"]
    assert (r.value, r.threshold, str(r)) == (12.0, 10.0, "loss_pct 12.0% > down 10.0%")


def test_every_key_of_the_policy_is_judged_and_others_dropped() -> None:
    stale = PathKey("gone", "use1", "interconnect")
    d = decide(LAB, {KEY: GOOD}, {stale: PathHealth(health=UP)}, 0.0)
    assert list(d.health) == path_keys(LAB)
    assert d.health[KEY].health is UP
    assert all(h.health is UNK for k, h in d.health.items() if k != KEY)
    assert [t.key for t in d.transitions] == [KEY]


def test_other_sla_class_uses_its_own_thresholds() -> None:
    api = PathKey("api", "use1", "interconnect")
    # api: degraded loss 2 %, down 20 %, min_samples 10, down_after_lost 3
    d = decide(LAB, {api: win(loss=3, samples=100), KEY: win(loss=3, samples=100)}, {}, 0.0)
    assert d.health[api].health is DEG
    assert d.health[KEY].health is DEG
    d = decide(LAB, {api: win(samples=10, loss=30, consecutive=3)}, {}, 0.0)
    assert d.health[api].health is DOWN


def test_path_keys_lab_order() -> None:
    assert [str(k) for k in path_keys(LAB)] == [
        "media/use1/interconnect",
        "media/usw2/interconnect",
        "signalling/use1/interconnect",
        "signalling/usw2/interconnect",
        "api/use1/interconnect",
        "api/usw2/interconnect",
    ]


def test_path_keys_two_paths_per_region_and_missing_targets() -> None:
    two = lab_policy(deep_merge(PINNED, TWO_PATHS))
    keys = path_keys(two)
    assert [str(k) for k in keys if k.service == "media"] == [
        "media/use1/interconnect",
        "media/use1/vpn",
        "media/usw2/interconnect",
        "media/usw2/vpn",
    ]
    assert len(keys) == 12 and len(set(keys)) == 12


def test_recovery_bound() -> None:
    assert recovery_bound(150.0, 20.0, True) == pytest.approx(120.0)
    assert recovery_bound(4.0, 20.0, False) == pytest.approx(4.1)
    assert recovery_bound(3.1, 0.0, False) == pytest.approx(3.1)
