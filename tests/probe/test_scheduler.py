"""SeqBook: the scheduler's pure bookkeeping (timeouts, duplicates, reordering, settled order)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bgpctl.core.types import Sample
from bgpctl.probe.protocol import ProbeResult, Problem
from bgpctl.probe.scheduler import SeqBook


def _book(n: int, timeout: float = 0.2) -> SeqBook:
    b = SeqBook(timeout)
    for seq in range(n):
        b.sent(seq, 100.0 + seq * 0.02)
    return b


def test_in_order_answers_settle_in_order() -> None:
    b = _book(3)
    for seq in range(3):
        b.reply(ProbeResult(seq, 100.0 + seq * 0.02 + 0.001))
    assert [s.seq for s in b.take_settled()] == [0, 1, 2]
    assert b.counters["answered"] == 3 and b.counters["lost"] == 0


def test_reordered_answer_is_used_counted_and_emitted_in_sequence_order() -> None:
    b = _book(2)
    b.reply(ProbeResult(1, 100.03))
    assert b.take_settled() == []  # 0 is still outstanding: 1 waits behind it
    b.reply(ProbeResult(0, 100.031))
    assert b.take_settled() == [Sample(0, 100.0, 100.031), Sample(1, 100.02, 100.03)]
    assert b.counters[Problem.REORDERED] == 1


def test_duplicate_unknown_late() -> None:
    b = _book(3)
    b.reply(ProbeResult(0, 100.001))
    b.reply(ProbeResult(0, 100.002))
    assert b.counters[Problem.DUPLICATE] == 1
    b.reply(ProbeResult(7, 100.1))  # never sent
    b.reply(ProbeResult(-5, 100.1))  # before the first
    assert b.counters[Problem.UNKNOWN_SEQ] == 2
    b.reply(ProbeResult(1, 100.02 + 0.25))  # kernel time says: after the 200 ms timeout
    b.expire(2)
    b.reply(ProbeResult(2, 100.05))  # after its expiry fired
    assert b.counters[Problem.LATE] == 2
    assert b.take_settled() == [Sample(0, 100.0, 100.001), Sample(1, 100.02, None), Sample(2, 100.04, None)]
    assert (b.counters["answered"], b.counters["lost"]) == (1, 2)


def test_expire_after_answer_changes_nothing() -> None:
    b = _book(1)
    b.reply(ProbeResult(0, 100.001))
    b.expire(0)
    assert b.take_settled() == [Sample(0, 100.0, 100.001)]
    assert b.counters["lost"] == 0


def test_send_failure_is_a_lost_sample() -> None:
    b = SeqBook(0.2)
    b.send_failed(0, 5.0)
    assert b.take_settled() == [Sample(0, 5.0, None)]
    assert b.counters[Problem.SEND_FAILED] == 1


def test_old_replies_beyond_the_horizon_are_unknown() -> None:
    b = SeqBook(0.2, horizon=4)
    for seq in range(20):
        b.sent(seq, float(seq))
        b.reply(ProbeResult(seq, seq + 0.001))
    b.take_settled()
    b.reply(ProbeResult(2, 30.0))
    assert b.counters[Problem.UNKNOWN_SEQ] == 1


events = st.lists(st.tuples(st.sampled_from(["reply", "expire", "dup", "junk"]), st.integers(0, 29),
                            st.floats(0, 0.4)), max_size=200)


@given(events)
def test_every_probe_settles_once_in_order_whatever_happens(evs: list[tuple[str, int, float]]) -> None:
    n = 30
    b = _book(n)
    emitted: list[Sample] = []
    for kind, seq, delay in evs:
        if kind in ("reply", "dup"):
            b.reply(ProbeResult(seq, 100.0 + seq * 0.02 + delay))
        elif kind == "expire":
            b.expire(seq)
        else:
            b.reply(ProbeResult(n + seq, 1.0))
        emitted += b.take_settled()
    for seq in range(n):
        b.expire(seq)
    emitted += b.take_settled()
    assert [s.seq for s in emitted] == list(range(n))
    for s in emitted:
        assert s.received is None or 0 <= s.received - s.sent <= 0.2
    assert b.counters["answered"] + b.counters["lost"] == n
    assert b.counters["answered"] == sum(1 for s in emitted if s.received is not None)
