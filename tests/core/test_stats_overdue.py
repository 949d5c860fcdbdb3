"""PathWindow.sent(): unanswered probes past the adaptive RTO count towards the hard-failure fast path."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.core.stats import PathWindow
from bgpctl.core.types import Sample

T0 = 1_800_000_000.0
IV = 0.02  # 20 ms probes


def healthy(w: PathWindow, n: int, rtt: float = 0.001) -> float:
    for i in range(n):
        w.add(Sample(i, T0 + i * IV, T0 + i * IV + rtt))
    return T0 + n * IV


def test_without_rto_floor_nothing_is_overdue() -> None:
    w = PathWindow(5)
    now = healthy(w, 50)
    for i in range(50, 60):
        w.sent(i, now + (i - 50) * IV)
    s = w.stats(now + 1)
    assert (s.overdue, s.rto_ms) == (0, None)


def test_unanswered_probes_older_than_the_floor_are_overdue() -> None:
    w = PathWindow(5, rto_floor_s=0.03, rto_cap_s=0.3)
    now = healthy(w, 50)
    for i in range(4):
        w.sent(50 + i, now + i * IV)  # sent at +0, +20, +40, +60 ms
    s = w.stats(now + 0.071)  # ages 71, 51, 31, 11 ms against RTO max(30, 1 + 4 x 0) = 30 ms
    assert s.rto_ms == pytest.approx(30)
    assert (s.consecutive_lost, s.overdue, s.unanswered) == (0, 3, 3)


def test_an_answer_clears_the_outstanding_probe() -> None:
    w = PathWindow(5, rto_floor_s=0.03, rto_cap_s=0.3)
    now = healthy(w, 50)
    w.sent(50, now)
    w.add(Sample(50, now, now + 0.05))  # a late-ish answer, inside the timeout
    assert w.stats(now + 1).overdue == 0


def test_rto_follows_rtt_and_jitter_but_stays_under_the_timeout() -> None:
    w = PathWindow(5, rto_floor_s=0.03, rto_cap_s=0.3)
    for i in range(100):  # RTT alternating 40 / 60 ms: p50 50 ms, RFC 3550 jitter -> ~20 ms
        w.add(Sample(i, T0 + i * IV, T0 + i * IV + (0.04 if i % 2 else 0.06)))
    now = T0 + 100 * IV
    w.sent(100, now)
    s = w.stats(now + 0.1)
    assert s.rto_ms is not None and 100 < s.rto_ms < 140  # 50 + 4 x ~19
    assert s.overdue == 0  # 100 ms old: inside the RTO
    assert w.stats(now + 0.2).overdue == 1
    w2 = PathWindow(5, rto_floor_s=0.03, rto_cap_s=0.05)
    for i in range(100):
        w2.add(Sample(i, T0 + i * IV, T0 + i * IV + (0.04 if i % 2 else 0.06)))
    w2.sent(100, now)
    assert w2.stats(now).rto_ms == pytest.approx(50)  # capped at the timeout


def test_outstanding_probes_before_the_last_answer_do_not_count() -> None:
    w = PathWindow(5, rto_floor_s=0.03, rto_cap_s=0.3)
    now = healthy(w, 50)
    w.sent(60, now)  # a probe whose answer is still missing ...
    w.add(Sample(61, now + IV, now + IV + 0.001))  # ... while a later one was answered: reordering, not silence
    assert w.stats(now + 0.1).overdue == 0


@given(st.lists(st.booleans(), min_size=1, max_size=40), st.floats(0, 0.5))
def test_overdue_never_exceeds_what_is_outstanding(answered: list[bool], wait: float) -> None:
    w = PathWindow(5, rto_floor_s=0.03, rto_cap_s=0.3)
    now = healthy(w, 30)
    for i, ok in enumerate(answered):
        w.sent(100 + i, now + i * IV)
        if ok:
            w.add(Sample(100 + i, now + i * IV, now + i * IV + 0.001))
    s = w.stats(now + len(answered) * IV + wait)
    trailing = len(answered) - (max(i for i, ok in enumerate(answered) if ok) + 1 if any(answered) else 0)
    assert 0 <= s.overdue <= trailing
