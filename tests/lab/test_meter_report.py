"""The meter's report maths (pure) and its wire format, on synthetic streams with known answers."""

from __future__ import annotations

import itertools
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.errors import ProbeError
from bgpctl_lab.meter import settings_for
from bgpctl_lab.meter_packet import PACKET_SIZE, RTP_HEADER, Kind, MeterPacket, decode, echo_of, encode
from bgpctl_lab.meter_report import (
    EchoPacket,
    SentPacket,
    build_report,
    percentile,
    rfc3550_jitter_ns,
)
from tests.lab.meter_synth import MS, S, synthetic_report, synthetic_settings, synthetic_stream


def test_a_perfect_stream() -> None:
    r = synthetic_report(1000, flows=4)
    assert (r.sent, r.received, r.lost, r.loss_pct, r.duplicates, r.reordered) == (1000, 1000, 0, 0.0, 0, 0)
    assert r.longest_gap_ms == 2.0 and r.longest_gap_raw_ms == 2.0
    assert r.rtt is not None and r.rtt.p50_ms == r.rtt.max_ms == 1.0
    assert r.jitter_ms == 0.0
    assert [(s.second, s.sent, s.lost) for s in r.per_second_loss] == [(0, 500, 0), (1, 500, 0)]
    assert r.regions["use1"].answered == 1000
    assert r.regions["use1"].first_s == pytest.approx(0.001)
    assert r.regions["use1"].last_s == pytest.approx(999 * 0.002 + 0.001)
    assert [f.sent for f in r.flows] == [250] * 4 and all(f.longest_gap_ms == 8.0 for f in r.flows)


def test_per_second_loss_bins_by_the_scheduled_second_when_the_sender_is_late() -> None:
    # the last 40 packets of a 1 s stream were sent 150 ms late (a starved sender, as under CPU load):
    # they belong to second 0 of the schedule, not to a second 1 that the stream never had
    r = synthetic_report(500, late={i: 150_000_000 for i in range(460, 500)})
    assert [(s.second, s.sent, s.lost) for s in r.per_second_loss] == [(0, 500, 0)]


def test_a_lost_block_in_the_middle_is_the_longest_gap() -> None:
    r = synthetic_report(500, lost=set(range(100, 150)))
    assert r.lost == 50 and r.loss_pct == 10.0
    assert r.longest_gap_ms == pytest.approx(51 * 2.0)
    assert (r.longest_gap.after_seq, r.longest_gap.before_seq) == (99, 150)
    assert r.longest_gap.start_s == pytest.approx(99 * 0.002 + 0.001)
    assert [s.lost for s in r.per_second_loss] == [50]


def test_a_silenced_flow_shows_in_the_worst_flow_gap_not_the_all_flows_gap() -> None:
    # flow 1 of 4 loses 100 ms worth of its packets (its path failed); the others carry on
    r = synthetic_report(1000, flows=4, lost={i for i in range(400, 450) if i % 4 == 1})
    assert r.longest_gap_ms == pytest.approx(2 * 2.0)
    assert r.longest_flow_gap_flow == 1
    assert r.longest_flow_gap_ms == pytest.approx((453 - 397) * 2.0)  # its last echo before, first after
    assert [f.longest_gap_ms for f in r.flows if f.flow != 1] == [8.0, 8.0, 8.0]


def test_lost_head_and_tail_count_from_when_the_echo_was_due() -> None:
    head = synthetic_report(200, lost=set(range(30)))
    assert head.longest_gap_ms == pytest.approx(30 * 2.0) and head.longest_gap.after_seq is None
    tail = synthetic_report(200, lost=set(range(160, 200)))
    assert tail.longest_gap_ms == pytest.approx(40 * 2.0) and tail.longest_gap.before_seq is None


def test_nothing_back_is_one_long_silence() -> None:
    r = synthetic_report(50, lost=set(range(50)))
    assert r.received == 0 and r.loss_pct == 100.0 and r.rtt is None and r.jitter_ms is None and r.mos is None
    assert r.longest_gap_ms == pytest.approx(49 * 2.0)
    assert r.regions == {}


def test_a_late_sender_is_not_a_network_gap() -> None:
    # the sender stalled 10 ms at packet 300 and caught up: five packets left late, in a burst
    late = {300: 10 * MS, 301: 8 * MS, 302: 6 * MS, 303: 4 * MS, 304: 2 * MS}
    r = synthetic_report(600, late=late)
    assert r.longest_gap_raw_ms == pytest.approx(12.0)
    assert r.longest_gap_ms == pytest.approx(2.0)
    assert r.send_late_max_ms == pytest.approx(10.0)
    assert r.rtt is not None and r.rtt.max_ms == 1.0  # rtt is measured from the actual send


def test_a_sender_held_between_its_clock_read_and_the_transmit_is_not_a_network_gap() -> None:
    # the sender read its clock for packet 300 on time, then was off the CPU 6 ms before the packet left;
    # 301 and 302 were read late and caught up. The kernel's transmit stamps say when each really left.
    r = synthetic_report(600, held={300: 6 * MS}, late={301: 4 * MS, 302: 2 * MS})
    assert r.longest_gap_raw_ms == pytest.approx(8.0)
    assert r.longest_gap_ms == pytest.approx(2.0)
    assert r.longest_flow_gap_ms == pytest.approx(2.0) and r.jitter_ms == pytest.approx(0.0)
    assert r.user_tx_stamps == 0
    assert r.rtt is not None and r.rtt.max_ms == pytest.approx(1.0)  # from the transmit, not the clock read
    assert r.send_late_max_ms == pytest.approx(4.0)  # lateness is of the clock read (the schedule's view)
    assert r.tx_delay_max_ms == pytest.approx(6.0)


def test_without_a_transmit_stamp_the_user_space_send_time_stands_in_and_is_counted() -> None:
    # the same stall, but no stamp came for packet 300: its 6 ms before the transmit reads as network
    # delay, so on the network timeline 300 arrives 6 ms late, after 301 and 302: a 4 ms hole where it was due
    r = synthetic_report(600, held={300: 6 * MS}, late={301: 4 * MS, 302: 2 * MS}, unstamped={300})
    assert r.user_tx_stamps == 1 and r.tx_delay_max_ms == pytest.approx(0.0)
    assert r.longest_gap_ms == pytest.approx(4.0) and r.longest_gap.after_seq == 299
    assert r.rtt is not None and r.rtt.max_ms == pytest.approx(7.0)
    # only answered probes count: a lost one has no place on the timeline
    assert synthetic_report(10, unstamped={3, 4}, lost={4}).user_tx_stamps == 1
    assert synthetic_report(10, unstamped=set(range(10))).tx_delay_max_ms is None


def test_a_slow_responder_is_not_a_network_gap_but_stays_in_the_rtt() -> None:
    # the responder was off the CPU for 7 ms when probe 300 came: it and the next three waited
    r = synthetic_report(600, server={300: 7 * MS, 301: 5 * MS, 302: 3 * MS, 303: 1 * MS})
    assert r.longest_gap_raw_ms == pytest.approx(9.0)
    assert r.longest_gap_ms == pytest.approx(2.0)
    assert r.rtt is not None and r.rtt.max_ms == pytest.approx(8.0)


def test_duplicates_and_reordering_within_a_flow() -> None:
    sent, echoes = synthetic_stream(40, flows=2)
    e4 = next(e for e in echoes if e.seq == 4)
    e6 = next(e for e in echoes if e.seq == 6)
    # 6 arrives before 4 (same flow 0): one reordered; 5 (flow 1) overtaking 4 is not reordering
    swapped = [
        EchoPacket(4, 0, e6.rx_ns + 1, "use1", 0),
        EchoPacket(6, 0, e4.rx_ns, "use1", 0),
        EchoPacket(5, 1, e4.rx_ns - 1, "use1", 0),
    ]
    rest = [e for e in echoes if e.seq not in (4, 5, 6)]
    dup = [EchoPacket(10, 0, echoes[-1].rx_ns + MS, "use1", 0)]
    r = build_report(synthetic_settings(2, 40), sent, sorted(rest + swapped, key=lambda e: e.rx_ns) + dup)
    assert r.received == 40 and r.duplicates == 1 and r.lost == 0
    assert r.reordered == 1 and [f.reordered for f in r.flows] == [1, 0]


def test_regions_over_time_and_per_flow() -> None:
    sent, a = synthetic_stream(100, flows=2, region="use1")
    b = [EchoPacket(e.seq, e.flow, e.rx_ns, "usw2", 0) for e in a if e.seq >= 60]
    echoes = [e for e in a if e.seq < 60] + b
    r = build_report(synthetic_settings(2, 100), sent, echoes)
    assert r.regions["use1"].answered == 60 and r.regions["usw2"].answered == 40
    assert r.regions["use1"].last_s < r.regions["usw2"].first_s
    assert r.flows[0].regions == {"use1": 30, "usw2": 20}


def test_send_errors_are_sent_and_lost() -> None:
    sent, echoes = synthetic_stream(10)
    sent = [SentPacket(p.seq, p.flow, p.send_ns, 0, "ENETUNREACH" if p.seq >= 5 else None) for p in sent]
    r = build_report(synthetic_settings(1, 10), sent, [e for e in echoes if e.seq < 5])
    assert r.send_errors == 5 and r.lost == 5


def test_mos_gets_mean_rtt_jitter_and_loss() -> None:
    seen: list[tuple[float, float, float]] = []

    def mos(rtt: float, jitter: float, loss: float) -> float:
        seen.append((rtt, jitter, loss))
        return 4.0

    sent, echoes = synthetic_stream(100, lost={5})
    r = build_report(synthetic_settings(1, 100), sent, echoes, mos=mos)
    assert r.mos == 4.0 and seen == [(1.0, 0.0, 1.0)]


def test_rfc3550_jitter_follows_the_recurrence() -> None:
    # transit alternates 0 / 1 ms: |D| = 1 ms every time, so J_n = 1 - (15/16)^n ms
    arrivals = [(i * S, i * S + (MS if i % 2 else 0)) for i in range(21)]
    j = rfc3550_jitter_ns(arrivals)
    assert j == pytest.approx(MS * (1 - (15 / 16) ** 20))
    assert rfc3550_jitter_ns(arrivals[:1]) is None


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=200), st.integers(1, 99))
def test_percentile_is_the_inclusive_quantile(values: list[float], q: int) -> None:
    expected = statistics.quantiles(values, n=100, method="inclusive")[q - 1]
    assert percentile(sorted(values), q) == pytest.approx(expected, rel=1e-9, abs=1e-6)


@given(st.lists(st.booleans(), min_size=1, max_size=300), st.integers(1, 5))
def test_longest_gap_is_the_longest_run_of_loss(received: list[bool], flows: int) -> None:
    n = len(received)
    lost = {i for i, ok in enumerate(received) if not ok}
    r = synthetic_report(n, flows=flows, lost=lost)
    got = [i for i, ok in enumerate(received) if ok]
    if not got:
        expected = (n - 1) * S
    else:
        runs = [got[0] * S, (n - 1 - got[-1]) * S] + [(b - a) * S for a, b in itertools.pairwise(got)]
        expected = max(runs)
    assert r.longest_gap_ms == pytest.approx(expected / MS)
    assert r.lost == len(lost) == r.sent - r.received
    assert sum(s.lost for s in r.per_second_loss) == r.lost
    assert sum(f.lost for f in r.flows) == r.lost


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 63),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**63),
    st.integers(0, 70000),
    st.from_regex(r"[A-Za-z0-9._-]{1,16}", fullmatch=True),
)
def test_packets_round_trip(nonce: int, flow: int, seq: int, send_ns: int, flow_seq: int, region: str) -> None:
    p = MeterPacket(Kind.PROBE, flow, nonce, seq, send_ns, flow_seq=flow_seq)
    data = encode(p)
    assert len(data) == PACKET_SIZE == 172
    v_pt = RTP_HEADER.unpack_from(data)
    assert v_pt[0] >> 6 == 2 and v_pt[1] == 0 and v_pt[2] == flow_seq & 0xFFFF  # RTP v2, PCMU
    got = decode(data)
    assert (
        got is not None
        and got.kind == Kind.PROBE
        and (got.flow, got.nonce, got.seq, got.send_ns) == (flow, nonce, seq, send_ns)
    )
    echo = echo_of(got, region=region, rx_ns=5, tx_ns=9)
    assert len(echo) == len(data)
    back = decode(echo)
    assert back is not None and back.kind == Kind.ECHO and back.region == region
    assert (back.seq, back.nonce, back.send_ns, back.echo_rx_ns, back.echo_tx_ns) == (seq, nonce, send_ns, 5, 9)


def test_foreign_packets_do_not_decode() -> None:
    good = encode(MeterPacket(Kind.PROBE, 1, 2, 3, 4))
    assert decode(good) is not None
    assert decode(good[:-1]) is None and decode(good + b"\0") is None
    assert decode(good[:12] + b"XXXX" + good[16:]) is None  # magic
    assert decode(good[:16] + b"\x02" + good[17:]) is None  # version
    assert decode(good[:17] + b"\x07" + good[18:]) is None  # kind
    assert decode(bytes(172)) is None
    with pytest.raises(ValueError, match="region"):
        echo_of(MeterPacket(Kind.PROBE, 1, 2, 3, 4), region="us east 1", rx_ns=0, tx_ns=0)


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"flows": 0}, "flows=0"),
        ({"rate_pps": 5000.0}, "rate 5000"),
        ({"seconds": 0.0}, "bounded"),
        ({"seconds": 7200.0}, "bounded"),
        ({"count": 0}, "count=0"),
        ({"fine": True, "seconds": 3600.0}, "at most 400000"),
        ({"dscp": 64}, "DSCP"),
    ],
)
def test_unbounded_or_bad_settings_are_refused(kw: dict[str, float], needle: str) -> None:
    args: dict[str, object] = {
        "rate_pps": 50.0,
        "fine": False,
        "flows": 4,
        "seconds": 10.0,
        "count": None,
        "dscp": 46,
        "drain_s": 1.0,
    }
    args.update(kw)
    with pytest.raises(ProbeError, match=needle):
        settings_for(None, "203.0.113.10", 9000, **args)  # type: ignore[arg-type]


def test_settings_bound_by_seconds_and_count() -> None:
    s = settings_for(
        None, "203.0.113.10", 9000, rate_pps=50.0, fine=False, flows=4, seconds=10.0, count=None, dscp=46, drain_s=1.0
    )
    assert (s.count, s.spacing_ms) == (500, 20.0)
    f = settings_for(
        None, "2001:db8::1", 9000, rate_pps=50.0, fine=True, flows=4, seconds=3.0, count=100, dscp=46, drain_s=1.0
    )
    assert (f.count, f.spacing_ms, f.rate_pps) == (100, 2.0, 500.0)
    with pytest.raises(ProbeError, match="not an IP address"):
        settings_for(
            None,
            "connect.example",
            9000,
            rate_pps=50.0,
            fine=False,
            flows=1,
            seconds=1.0,
            count=None,
            dscp=46,
            drain_s=1.0,
        )


def test_each_flow_lists_its_silences_on_the_streams_timeline() -> None:
    # flow 1 of 4 loses two blocks (200 ms and 120 ms of its packets), flow 2 one short one (below the minimum)
    lost = {i for i in range(400, 500) if i % 4 == 1} | {i for i in range(1500, 1560) if i % 4 == 1}
    lost |= {i for i in range(2000, 2040) if i % 4 == 2}
    r = synthetic_report(3000, flows=4, lost=lost)
    assert r.flow_gap_min_ms == 100.0  # 5 intervals of a flow (8 ms) are less than the 100 ms floor
    f1 = r.flows[1]
    assert [(g.after_seq, g.before_seq) for g in f1.gaps] == [(397, 501), (1497, 1561)]
    assert [g.ms for g in f1.gaps] == [pytest.approx(104 * 2.0), pytest.approx(64 * 2.0)]
    assert f1.gaps[0].start_s == pytest.approx(397 * 0.002 + 0.001)  # since the stream's first send
    assert max(g.ms for g in f1.gaps) == pytest.approx(f1.longest_gap_ms)
    assert r.flows[2].gaps == [] and r.flows[0].gaps == []


def test_a_flow_with_nothing_back_is_one_silence_and_the_list_is_bounded() -> None:
    r = synthetic_report(400, flows=2, lost={i for i in range(400) if i % 2 == 0})
    (g,) = r.flows[0].gaps
    assert (g.after_seq, g.before_seq, g.start_s) == (None, None, 0.0)
    every_other_block = {i for i in range(20_000) if (i // 200) % 2 == 0 and i >= 200}
    r = synthetic_report(20_000, lost=every_other_block)  # 49 silences of 400 ms in one flow
    assert len(r.flows[0].gaps) == 20  # the longest FLOW_GAPS_KEPT
    assert [g.start_s for g in r.flows[0].gaps] == sorted(g.start_s for g in r.flows[0].gaps)
