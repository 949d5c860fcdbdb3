"""The call-quality meter's report, computed from what was sent and what came back. Pure: no I/O.

Definitions (times are nanoseconds on the sender's realtime clock; receive times are kernel stamps):

* lost: a sent packet with no echo by the end of the drain time. ``duplicates`` are extra copies of an
  echo; ``reordered`` counts echoes that arrive after a later packet *of the same flow* (flows may take
  different paths, so order across flows means nothing to a call).
* send time: when the probe left, the kernel's software transmit stamp (``SO_TIMESTAMPING``
  TX_SOFTWARE: the moment the packet was handed to the device driver, on the receive stamps' clock,
  :mod:`bgpctl.probe.txstamp`). A probe whose stamp did not come keeps its user-space send time (the
  clock read just before ``sendto``, which also carries any delay before the transmit: a preemption,
  the system call) and is counted in ``user_tx_stamps`` (answered probes only: the ones on the timeline).
  ``tx_delay_max_ms`` is the longest such delay a stamp revealed (clock read to transmit stamp).
* longest gap: the largest interval between consecutive echo arrivals, across all flows: the silence
  a call would hear. It is measured on the *network timeline*: each echo's arrival is placed at its
  scheduled send time + its round trip without the responder's holding time (kernel receive stamp -
  responder's tx/rx difference - send time as above). That removes the meter's own delays (a sender
  late on its schedule or held off the CPU between its clock read and the transmit, a responder slow
  to wake up) and keeps everything the network did. The responder's hold runs from its kernel receive
  stamp to its user-space clock read before its reply's ``sendmsg`` (a stamp taken after the send cannot
  travel in the echo), so a responder held off the CPU in that last window still shows as network
  time. The plain interval between kernel receive stamps is reported too, as ``longest_gap_raw_ms``.
  The stream's edges count: if the first (or last) packets are lost, the gap runs from when the first
  echo was due (first send + median RTT) to the first arrival (or from the last arrival to when the
  last echo was due). With no echo at all, the gap is the whole stream.
* longest flow gap: the same, per flow (one 5-tuple, so one path under ECMP: one call), worst flow.
  When flows share paths unevenly, a path failure silences only some flows: the all-flows gap stays
  short while the worst flow's gap shows the failover as a call on that path heard it.
* rtt: receive time of the echo minus send time of the probe (as above; the responder's hold, if any,
  included).
* flow silences (``flows[].gaps``): every silence of one flow at least ``flow_gap_min_ms`` long (the
  longer of :data:`FLOW_GAP_MIN_MS` and 5 packet intervals of the flow), on the network timeline as the
  longest gap, seconds since the first send; the longest :data:`FLOW_GAPS_KEPT` of a flow, in time order.
  What a picture of the drill draws per flow (:mod:`bgpctl_lab.plot`).
* jitter: RFC 3550 interarrival jitter (J += (|D| - J) / 16, D the change in transit time between
  consecutive arrivals; transit on the network timeline), per flow as RTP defines it per SSRC; the
  report's figure is the worst flow's.
* per-second loss: packets are binned by the second (since the first packet's scheduled send) in which
  they were scheduled, so a sender late under load does not move them into a next second.
* regions: which responder region answered, how often, and when first and last (seconds since start).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
FLOW_GAP_MIN_MS = 100.0
"""A flow's silence is listed when at least this long (or 5 of the flow's packet intervals, if longer)."""
FLOW_GAPS_KEPT = 20


@dataclass(frozen=True, slots=True)
class SentPacket:
    seq: int
    flow: int
    send_ns: int
    late_ns: int  # how long after its scheduled time the sender sent it
    error: str | None = None  # sendto failed (e.g. no route during a failover): counted as sent and lost
    tx_ns: int | None = None  # the kernel's transmit stamp; None: none came, ``send_ns`` stands in

    @property
    def left_ns(self) -> int:
        """When the probe left: the kernel's transmit stamp, else the user-space send time."""
        return self.send_ns if self.tx_ns is None else self.tx_ns


@dataclass(frozen=True, slots=True)
class EchoPacket:
    seq: int
    flow: int
    rx_ns: int
    region: str
    server_ns: int  # time the responder held the probe (its tx - rx stamps)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MeterSettings(_Model):
    netns: str | None
    target: str
    port: int
    flows: int
    spacing_ms: float
    rate_pps: float
    fine: bool
    dscp: int
    seconds: float
    count: int
    drain_s: float


class RttStats(_Model):
    min_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float
    mean_ms: float


class Gap(_Model):
    ms: float
    start_s: float  # seconds since the first send
    end_s: float
    after_seq: int | None  # the last echo before the gap (None: the gap opens the stream)
    before_seq: int | None  # the first echo after it (None: the gap closes the stream)


class SecondLoss(_Model):
    second: int
    sent: int
    lost: int
    loss_pct: float


class RegionSeen(_Model):
    answered: int
    first_s: float
    last_s: float


class FlowReport(_Model):
    flow: int
    source_port: int | None
    sent: int
    received: int
    lost: int
    reordered: int
    longest_gap_ms: float
    jitter_ms: float | None
    regions: dict[str, int]
    gaps: list[Gap] = []  # silences of at least the report's flow_gap_min_ms, seconds since the first send


class MeterReport(_Model):
    settings: MeterSettings
    started_unix: float  # realtime seconds of the first send
    duration_s: float  # first send to last send
    sent: int
    received: int
    lost: int
    loss_pct: float
    duplicates: int
    reordered: int
    send_errors: int
    longest_gap_ms: float  # on the network timeline (see the module's docstring)
    longest_gap: Gap
    longest_gap_raw_ms: float  # between kernel receive stamps, the meter's own delays included
    longest_flow_gap_ms: float  # the worst single flow's longest gap (a call on one path)
    longest_flow_gap_flow: int | None
    flow_gap_min_ms: float = FLOW_GAP_MIN_MS  # a flow's silence this long or longer is in flows[].gaps
    per_second_loss: list[SecondLoss]
    rtt: RttStats | None
    server_hold_ms_p50: float | None
    jitter_ms: float | None
    mos: float | None
    regions: dict[str, RegionSeen]
    flows: list[FlowReport]
    send_late_p99_ms: float
    send_late_max_ms: float
    user_tx_stamps: int  # answered probes timed by the user-space clock (no kernel transmit stamp came)
    tx_delay_max_ms: float | None  # worst clock read (before sendto) to kernel transmit stamp; None: no stamp
    realtime_sched: bool
    kernel_rx_timestamps: bool


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of already sorted values (numpy's default method)."""
    if not sorted_values:
        raise ValueError("percentile of nothing")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def rfc3550_jitter_ns(arrivals: Sequence[tuple[int, int]]) -> float | None:
    """Interarrival jitter of (send_ns, rx_ns) pairs in arrival order; None below two packets."""
    if len(arrivals) < 2:
        return None
    j = 0.0
    prev_s, prev_r = arrivals[0]
    for s, r in arrivals[1:]:
        d = (r - prev_r) - (s - prev_s)
        j += (abs(d) - j) / 16.0
        prev_s, prev_r = s, r
    return j


@dataclass(frozen=True, slots=True)
class _Point:
    at_ns: int  # when the echo arrived, on the timeline in use
    seq: int
    rtt_ns: int  # arrival minus send, on the same timeline


def longest_gap(
    arrivals_ns: Sequence[int],
    seqs: Sequence[int],
    first_due_ns: int | None,
    last_due_ns: int | None,
    stream: tuple[int, int],
) -> tuple[int, int, int | None, int | None]:
    """(start_ns, end_ns, after_seq, before_seq) of the longest silence.

    ``arrivals_ns``/``seqs``: first copies of echoes in arrival order. ``first_due_ns``/``last_due_ns``:
    when the first/last echo was due (None when unknown). ``stream``: first and last send time, the gap
    when nothing came back.
    """
    if not arrivals_ns:
        return stream[0], stream[1], None, None
    best: tuple[int, int, int | None, int | None] = (arrivals_ns[0], arrivals_ns[0], seqs[0], seqs[0])
    if first_due_ns is not None and first_due_ns < arrivals_ns[0]:
        best = (first_due_ns, arrivals_ns[0], None, seqs[0])
    for i in range(1, len(arrivals_ns)):
        if arrivals_ns[i] - arrivals_ns[i - 1] > best[1] - best[0]:
            best = (arrivals_ns[i - 1], arrivals_ns[i], seqs[i - 1], seqs[i])
    if last_due_ns is not None and last_due_ns - arrivals_ns[-1] > best[1] - best[0]:
        best = (arrivals_ns[-1], last_due_ns, seqs[-1], None)
    return best


def _gap(points: Sequence[_Point], stream: tuple[int, int], t0: int) -> Gap:
    """The longest silence on one timeline; an echo was due at its send time + the median RTT."""
    ordered = sorted(points, key=lambda p: p.at_ns)
    p50 = int(percentile(sorted(float(p.rtt_ns) for p in ordered), 50)) if ordered else 0
    g0, g1, after, before = longest_gap(
        [p.at_ns for p in ordered], [p.seq for p in ordered], stream[0] + p50, stream[1] + p50, stream
    )
    return Gap(
        ms=(g1 - g0) / NS_PER_MS,
        start_s=(g0 - t0) / NS_PER_S,
        end_s=(g1 - t0) / NS_PER_S,
        after_seq=after,
        before_seq=before,
    )


def silences(
    points: Sequence[_Point], stream: tuple[int, int], t0: int, min_ns: int, keep: int = FLOW_GAPS_KEPT
) -> list[Gap]:
    """Every silence of at least ``min_ns`` on one timeline (the longest ``keep``, in time order), with the
    stream's edges counted as :func:`longest_gap` counts them; times in seconds since ``t0``."""
    ordered = sorted(points, key=lambda p: p.at_ns)
    found: list[tuple[int, int, int | None, int | None]]
    if not ordered:
        found = [(stream[0], stream[1], None, None)]
    else:
        p50 = int(percentile(sorted(float(p.rtt_ns) for p in ordered), 50))
        found = [(stream[0] + p50, ordered[0].at_ns, None, ordered[0].seq)]
        found += [(a.at_ns, b.at_ns, a.seq, b.seq) for a, b in itertools.pairwise(ordered)]
        found.append((ordered[-1].at_ns, stream[1] + p50, ordered[-1].seq, None))
    long = sorted((g for g in found if g[1] - g[0] >= min_ns), key=lambda g: g[0] - g[1])[:keep]
    return [
        Gap(
            ms=(g1 - g0) / NS_PER_MS,
            start_s=(g0 - t0) / NS_PER_S,
            end_s=(g1 - t0) / NS_PER_S,
            after_seq=a,
            before_seq=b,
        )
        for g0, g1, a, b in sorted(long)
    ]


def _raw(e: EchoPacket, p: SentPacket) -> _Point:
    return _Point(at_ns=e.rx_ns, seq=e.seq, rtt_ns=e.rx_ns - p.left_ns)


def _net(e: EchoPacket, p: SentPacket) -> _Point:
    """The echo on the network timeline: scheduled send + round trip without the responder's hold."""
    net_rtt = e.rx_ns - e.server_ns - p.left_ns
    return _Point(at_ns=p.send_ns - p.late_ns + net_rtt, seq=e.seq, rtt_ns=net_rtt)


def build_report(
    settings: MeterSettings,
    sent: Sequence[SentPacket],
    echoes: Sequence[EchoPacket],
    *,
    source_ports: Sequence[int] = (),
    realtime_sched: bool = False,
    kernel_rx_timestamps: bool = True,
    mos: Callable[[float, float, float], float] | None = None,
) -> MeterReport:
    """The report for one run. ``sent`` in send order; ``echoes`` in arrival order, duplicates included.

    ``mos(rtt_ms, jitter_ms, loss_pct)`` estimates the MOS when given (and when anything came back).
    """
    by_seq = {p.seq: p for p in sent}
    t0 = sent[0].send_ns if sent else 0
    t_last = sent[-1].send_ns if sent else 0

    first: list[EchoPacket] = []
    seen: set[int] = set()
    duplicates = 0
    for e in echoes:
        if e.seq not in by_seq:
            continue  # not ours (the sender filters these already)
        if e.seq in seen:
            duplicates += 1
            continue
        seen.add(e.seq)
        first.append(e)
    first.sort(key=lambda e: e.rx_ns)  # kernel stamps; arrival order

    rtts = sorted(float(e.rx_ns - by_seq[e.seq].left_ns) for e in first)
    rtt: RttStats | None = None
    if rtts:
        rtt = RttStats(
            min_ms=rtts[0] / NS_PER_MS,
            p50_ms=percentile(rtts, 50) / NS_PER_MS,
            p95_ms=percentile(rtts, 95) / NS_PER_MS,
            max_ms=rtts[-1] / NS_PER_MS,
            mean_ms=sum(rtts) / len(rtts) / NS_PER_MS,
        )
    holds = sorted(float(e.server_ns) for e in first)

    n_sent = len(sent)
    n_recv = len(first)
    lost = n_sent - n_recv

    sched = (sent[0].send_ns - sent[0].late_ns, sent[-1].send_ns - sent[-1].late_ns) if sent else (0, 0)
    gap = _gap([_net(e, by_seq[e.seq]) for e in first], sched, t0)
    raw_gap = _gap([_raw(e, by_seq[e.seq]) for e in first], (t0, t_last), t0)
    per_second: dict[int, list[int]] = {}
    for p in sent:
        # by the slot it was scheduled for: a sender late under load does not push packets into a next second
        row = per_second.setdefault((p.send_ns - p.late_ns - sched[0]) // NS_PER_S, [0, 0])
        row[0] += 1
        if p.seq not in seen:
            row[1] += 1
    seconds = [
        SecondLoss(second=s, sent=n, lost=lo, loss_pct=100.0 * lo / n) for s, (n, lo) in sorted(per_second.items())
    ]

    regions: dict[str, RegionSeen] = {}
    for e in first:
        at = (e.rx_ns - t0) / NS_PER_S
        r = regions.get(e.region)
        regions[e.region] = (
            RegionSeen(answered=1, first_s=at, last_s=at)
            if r is None
            else RegionSeen(answered=r.answered + 1, first_s=r.first_s, last_s=at)
        )

    gap_min_ns = round(max(FLOW_GAP_MIN_MS, 5 * settings.flows * settings.spacing_ms) * NS_PER_MS)
    flows = [
        _flow_report(f, sent, first, by_seq, source_ports, t0=t0, gap_min_ns=gap_min_ns) for f in range(settings.flows)
    ]
    worst = max(flows, key=lambda f: f.longest_gap_ms, default=None)
    jitters = [f.jitter_ms for f in flows if f.jitter_ms is not None]
    jitter = max(jitters) if jitters else None
    reordered = sum(f.reordered for f in flows)
    loss_pct = 100.0 * lost / n_sent if n_sent else 0.0

    late = sorted(float(p.late_ns) for p in sent) or [0.0]
    tx_delays = [p.tx_ns - p.send_ns for p in sent if p.tx_ns is not None]
    score = None
    if mos is not None and rtt is not None:
        score = mos(rtt.mean_ms, jitter if jitter is not None else 0.0, loss_pct)
    return MeterReport(
        settings=settings,
        started_unix=t0 / NS_PER_S,
        duration_s=(t_last - t0) / NS_PER_S,
        sent=n_sent,
        received=n_recv,
        lost=lost,
        loss_pct=loss_pct,
        duplicates=duplicates,
        reordered=reordered,
        send_errors=sum(1 for p in sent if p.error is not None),
        longest_gap_ms=gap.ms,
        longest_gap=gap,
        longest_gap_raw_ms=raw_gap.ms,
        longest_flow_gap_ms=worst.longest_gap_ms if worst else 0.0,
        longest_flow_gap_flow=worst.flow if worst else None,
        flow_gap_min_ms=gap_min_ns / NS_PER_MS,
        per_second_loss=seconds,
        rtt=rtt,
        server_hold_ms_p50=percentile(holds, 50) / NS_PER_MS if holds else None,
        jitter_ms=jitter,
        mos=score,
        regions=regions,
        flows=flows,
        send_late_p99_ms=percentile(late, 99) / NS_PER_MS,
        send_late_max_ms=late[-1] / NS_PER_MS,
        user_tx_stamps=sum(1 for e in first if by_seq[e.seq].tx_ns is None),
        tx_delay_max_ms=max(tx_delays) / NS_PER_MS if tx_delays else None,
        realtime_sched=realtime_sched,
        kernel_rx_timestamps=kernel_rx_timestamps,
    )


def _flow_report(
    flow: int,
    sent: Sequence[SentPacket],
    first: Sequence[EchoPacket],
    by_seq: dict[int, SentPacket],
    source_ports: Sequence[int],
    *,
    t0: int,
    gap_min_ns: int,
) -> FlowReport:
    mine_sent = [p for p in sent if p.flow == flow]
    mine = [e for e in first if e.flow == flow]
    reordered = 0
    top = -1
    for e in mine:
        if e.seq < top:
            reordered += 1
        top = max(top, e.seq)
    gap_ms = 0.0
    gaps: list[Gap] = []
    net = [_net(e, by_seq[e.seq]) for e in mine]
    if mine_sent:
        stream = (mine_sent[0].send_ns - mine_sent[0].late_ns, mine_sent[-1].send_ns - mine_sent[-1].late_ns)
        gap_ms = _gap(net, stream, stream[0]).ms
        gaps = silences(net, stream, t0, gap_min_ns)
    jitter = rfc3550_jitter_ns([(p.at_ns - p.rtt_ns, p.at_ns) for p in net])
    counts: dict[str, int] = {}
    for e in mine:
        counts[e.region] = counts.get(e.region, 0) + 1
    return FlowReport(
        flow=flow,
        source_port=source_ports[flow] if flow < len(source_ports) else None,
        sent=len(mine_sent),
        received=len(mine),
        lost=len(mine_sent) - len(mine),
        reordered=reordered,
        longest_gap_ms=gap_ms,
        jitter_ms=None if jitter is None else jitter / NS_PER_MS,
        regions=counts,
        gaps=gaps,
    )
