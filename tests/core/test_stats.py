"""PathWindow: unit cases, and equality with a naive recomputation on random streams."""

from __future__ import annotations

import itertools
import math
import statistics
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.core.mos import estimate_mos
from bgpctl.core.stats import PathWindow, percentile
from bgpctl.core.types import Sample
from bgpctl.errors import ProbeError


def answered(seq: int, sent: float, rtt_ms: float) -> Sample:
    return Sample(seq, sent, sent + rtt_ms / 1000.0)


def lost(seq: int, sent: float) -> Sample:
    return Sample(seq, sent, None)


# ------------------------------------------------------------------------------------------
# the naive oracle: recompute everything from the list of samples the window should hold


def naive_jitter(rtts: list[float]) -> float | None:
    """RFC 3550 6.4.1 written out: J = J + (|D(i-1,i)| - J)/16, from J = 0."""
    if len(rtts) < 2:
        return None
    j = 0.0
    for a, b in itertools.pairwise(rtts):
        j = j + (abs(b - a) - j) / 16
    return j


@dataclass
class Naive:
    window_s: float
    cutoff: float = -math.inf

    def __post_init__(self) -> None:
        self.kept: dict[int, Sample] = {}

    def add(self, s: Sample) -> None:
        if s.sent >= self.cutoff and s.seq not in self.kept:
            self.kept[s.seq] = s

    def stats(self, now: float) -> dict[str, object]:
        self.cutoff = max(self.cutoff, now - self.window_s)
        self.kept = {k: v for k, v in self.kept.items() if v.sent >= self.cutoff}
        by_seq = [self.kept[k] for k in sorted(self.kept)]
        rtts = sorted((s.received - s.sent) * 1000 for s in by_seq if s.received is not None)
        tail = 0
        for s in reversed(by_seq):
            if s.received is not None:
                break
            tail += 1
        n_lost = sum(1 for s in by_seq if s.received is None)
        p50: float | None = None
        p95: float | None = None
        if len(rtts) >= 2:
            cuts = statistics.quantiles(rtts, n=100, method="inclusive")
            p50, p95 = cuts[49], cuts[94]
        elif rtts:
            p50 = p95 = rtts[0]
        jitter = naive_jitter([(s.received - s.sent) * 1000 for s in by_seq if s.received is not None])
        return {
            "samples": len(by_seq),
            "lost": n_lost,
            "consecutive_lost": tail,
            "p50": p50,
            "p95": p95,
            "jitter": jitter,
            "loss_pct": 100 * n_lost / len(by_seq) if by_seq else None,
        }


def close(a: float | None, b: object) -> bool:
    if a is None or b is None:
        return a is b
    assert isinstance(b, float | int)
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# ------------------------------------------------------------------------------------------
# unit cases


def test_empty_window() -> None:
    s = PathWindow(5).stats(100.0)
    assert (s.samples, s.lost, s.consecutive_lost, s.rtt_p50_ms, s.rtt_p95_ms, s.jitter_ms, s.mos, s.loss_pct) == (
        0,
        0,
        0,
        None,
        None,
        None,
        None,
        None,
    )


def test_consecutive_lost_counts_the_lost_tail_in_sequence_order() -> None:
    w = PathWindow(10)
    for s in [answered(1, 0.0, 10), lost(2, 0.1), answered(3, 0.2, 10), lost(4, 0.3), lost(5, 0.4), lost(6, 0.5)]:
        w.add(s)
    st_ = w.stats(1.0)
    assert (st_.samples, st_.lost, st_.consecutive_lost) == (6, 4, 3)
    w.add(answered(7, 0.6, 10))
    assert w.stats(1.0).consecutive_lost == 0


def test_a_late_answer_with_a_lower_seq_does_not_end_the_lost_tail() -> None:
    w = PathWindow(10)
    for s in [answered(1, 0.0, 10), lost(3, 0.2), lost(4, 0.3), answered(2, 0.1, 150)]:
        w.add(s)
    assert w.stats(1.0).consecutive_lost == 2


def test_all_lost_window() -> None:
    w = PathWindow(10)
    for i in range(7):
        w.add(lost(i, i * 0.1))
    s = w.stats(1.0)
    assert (s.samples, s.lost, s.consecutive_lost, s.rtt_p95_ms, s.jitter_ms, s.loss_pct) == (7, 7, 7, None, None, 100)
    assert s.mos == pytest.approx(estimate_mos(0, 0, 100))
    assert s.mos == pytest.approx(1.165, abs=0.001)  # R = 93.2 - 0.48 - 95*100/125.1 = 16.78


def test_duplicates_by_seq_are_ignored_first_wins() -> None:
    w = PathWindow(10)
    w.add(answered(1, 0.0, 10))
    w.add(answered(1, 0.0, 90))  # a duplicated reply, later
    w.add(lost(1, 0.0))
    s = w.stats(1.0)
    assert (s.samples, s.lost) == (1, 0)
    assert s.rtt_p50_ms == pytest.approx(10)


def test_eviction_by_sent_time_and_cutoff_never_moves_back() -> None:
    w = PathWindow(1.0)
    for i in range(10):
        w.add(answered(i, i * 0.5, 10 + i))
    assert w.stats(4.5).samples == 3  # sent 3.5, 4.0, 4.5 are >= 4.5 - 1.0
    assert w.stats(0.0).samples == 3  # an earlier "now" brings nothing back
    w.add(answered(100, 3.0, 10))  # sent before the cutoff (3.5): ignored
    assert len(w) == 3
    assert w.stats(0.0).samples == 3
    w.add(answered(101, 3.6, 10))
    assert w.stats(4.5).samples == 4


def test_eviction_exact_boundary_is_inclusive() -> None:
    w = PathWindow(2.0)
    w.add(answered(1, 1.0, 10))
    assert w.stats(3.0).samples == 1  # sent == now - window_s stays
    assert w.stats(3.0001).samples == 0


def test_percentiles_linear_between_ranks() -> None:
    w = PathWindow(100)
    for i, r in enumerate([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]):
        w.add(answered(i, i * 0.1, r))
    s = w.stats(2.0)
    assert s.rtt_p50_ms == pytest.approx(55.0)
    assert s.rtt_p95_ms == pytest.approx(95.5)


def test_percentile_helper_edges() -> None:
    assert percentile([7.0], 95) == 7.0
    assert percentile([1.0, 2.0], 100) == 2.0
    assert percentile([1.0, 2.0], 0) == 1.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_jitter_rfc3550_by_hand() -> None:
    # RTTs 10, 20, 10, 10 ms: D = 10, 10, 0 -> J = 10/16; J += (10 - J)/16; J += (0 - J)/16
    w = PathWindow(10)
    for i, r in enumerate([10, 20, 10, 10]):
        w.add(answered(i, i * 0.02, r))
    j1 = 10 / 16
    j2 = j1 + (10 - j1) / 16
    j3 = j2 + (0 - j2) / 16
    assert w.stats(1.0).jitter_ms == pytest.approx(j3)


def test_jitter_uses_sequence_order_not_arrival_order() -> None:
    in_order, shuffled = PathWindow(10), PathWindow(10)
    samples = [answered(i, i * 0.02, r) for i, r in enumerate([10, 30, 12, 50, 11, 13])]
    for s in samples:
        in_order.add(s)
    for i in [3, 0, 5, 1, 4, 2]:
        shuffled.add(samples[i])
    assert shuffled.stats(1.0).jitter_ms == pytest.approx(in_order.stats(1.0).jitter_ms)


def test_jitter_forgets_with_the_window() -> None:
    w = PathWindow(1.0)
    for i in range(50):  # a jittery second (sent 0.00 .. 0.98), then a calm one (1.00 .. 1.98)
        w.add(answered(i, i * 0.02, 10 if i % 2 else 60))
    jittery = w.stats(0.98).jitter_ms
    assert jittery == pytest.approx(naive_jitter([10 if i % 2 else 60 for i in range(50)]))
    assert jittery is not None and jittery > 40
    for i in range(50, 100):
        w.add(answered(i, i * 0.02, 10))
    assert w.stats(2.0).jitter_ms == 0.0  # cutoff 1.0: only the calm second is left


def test_mos_uses_median_rtt_jitter_and_loss() -> None:
    w = PathWindow(10)
    for i in range(9):
        w.add(answered(i, i * 0.02, 100))
    w.add(lost(9, 0.18))
    s = w.stats(1.0)
    assert s.mos == pytest.approx(estimate_mos(100, 0, 10))


@pytest.mark.parametrize(
    "sample",
    [Sample(1, 1.0, 0.5), Sample(1, math.nan, None), Sample(1, 0.0, math.nan)],
    ids=["answered-before-sent", "nan-sent", "nan-received"],
)
def test_bad_samples_are_refused_with_a_hint(sample: Sample) -> None:
    with pytest.raises(ProbeError, match="clock"):
        PathWindow(5).add(sample)


@pytest.mark.parametrize("window", [0, -1, math.inf, math.nan])
def test_bad_window_refused(window: float) -> None:
    with pytest.raises(ProbeError, match="window_s"):
        PathWindow(window)


# ------------------------------------------------------------------------------------------
# property: the window equals the naive recomputation, whatever the order and duplicates


@st.composite
def streams(draw: st.DrawFn) -> tuple[float, list[tuple[str, object]]]:
    """A window length and a list of operations: ("add", Sample) / ("stats", now)."""
    window = draw(st.sampled_from([0.2, 0.5, 1.0, 3.0]))
    n = draw(st.integers(min_value=0, max_value=120))
    # probes send in seq order; a broken prober (or a restarted seq counter) might not: cover both
    spread = draw(st.sampled_from([0.01, 0.5]))
    samples: list[Sample] = []
    for seq in range(n):
        sent = seq * 0.02 + draw(st.floats(min_value=0, max_value=spread))
        if draw(st.integers(0, 9)) < draw(st.integers(0, 4)):  # loss rate itself varies by stream
            samples.append(lost(seq, sent))
        else:
            rtt = draw(st.one_of(st.floats(min_value=0, max_value=400), st.sampled_from([5.0, 20.0])))
            samples.append(answered(seq, sent, rtt))
    # reorder: each sample settles with a random delay (late replies, timeouts), plus duplicates
    order = draw(st.permutations(range(n))) if draw(st.booleans()) else list(range(n))
    dups = draw(st.lists(st.integers(0, max(0, n - 1)), max_size=n // 3)) if n else []
    ops: list[tuple[str, object]] = []
    now = 0.0
    for idx in [*order, *dups]:
        ops.append(("add", samples[idx]))
        if draw(st.integers(0, 5)) == 0:
            now += draw(st.floats(min_value=-0.1, max_value=0.3))  # a caller's "now" may even step back
            ops.append(("stats", now))
    ops.append(("stats", now + draw(st.floats(min_value=0, max_value=1))))
    return window, ops


@given(streams())
def test_window_equals_naive_recomputation(case: tuple[float, list[tuple[str, object]]]) -> None:
    window, ops = case
    w, naive = PathWindow(window), Naive(window)
    for op, arg in ops:
        if op == "add":
            assert isinstance(arg, Sample)
            w.add(arg)
            naive.add(arg)
            continue
        assert isinstance(arg, float)
        got, want = w.stats(arg), naive.stats(arg)
        assert got.samples == want["samples"]
        assert got.lost == want["lost"]
        assert got.consecutive_lost == want["consecutive_lost"]
        assert close(got.loss_pct, want["loss_pct"])
        assert close(got.rtt_p50_ms, want["p50"])
        assert close(got.rtt_p95_ms, want["p95"])
        assert close(got.jitter_ms, want["jitter"]), (got.jitter_ms, want["jitter"])
        assert len(w) == want["samples"]
