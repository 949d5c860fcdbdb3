"""A sliding window of probe samples per path, and what it says (:class:`~bgpctl.core.types.PathStats`).

Contract: :meth:`PathWindow.add` takes *settled* samples only (answered, or declared lost after
the probe timeout), in any order; :meth:`PathWindow.stats` evicts what fell out of the window
and summarises the rest. Every operation is O(log n) in the window size n (plus, for the rare
answer that arrives out of sequence order, the distance to the nearer end of the window), so a
10-minute recording at 50 samples/s replays in a fraction of a second per path.

Semantics, precisely (``tests/core/test_stats.py`` checks each against a naive recomputation):

- **Window**: the samples with ``sent >= cutoff``, where ``cutoff = now - window_s`` of the
  latest :meth:`stats` call (it never moves back, so an evicted sample never returns). A sample
  added with ``sent`` before the cutoff is ignored: it would be evicted at once.
- **Duplicates**: one sample per sequence number. The first one added wins; later ones with a
  ``seq`` already in the window are ignored (a duplicated reply must not count twice).
- **loss**: ``lost / samples`` over the window (``PathStats.loss_pct``).
- **consecutive_lost**: lost samples after the last answered one *in sequence order* (the lost
  tail of the window); every sample in the window when none was answered.
- **RTT p50/p95**: percentiles of the answered samples' RTTs by linear interpolation between
  closest ranks (the "type 7" estimator: numpy's default, ``statistics.quantiles(...,
  method="inclusive")``), in ms. ``None`` with no answered sample.
- **jitter**: RFC 3550 section 6.4.1's estimator ``J += (|D| - J) / 16`` run over the window's
  answered samples in sequence order, starting from J = 0 at the first one. For echo probes the
  transit-time difference of two packets is ``D(i, j) = (Rj - Ri) - (Sj - Si) = rtt_j - rtt_i``.
  (RFC 3550 runs the filter forever in arrival order; restricting it to the window in sequence
  order makes it forget a cleared fault with the window and makes it independent of how the
  replies happened to be reordered.) ``None`` with fewer than two answered samples.
- **loss_pct_low**: the Wilson score interval's lower bound of the loss ratio (one-sided, z =
  :data:`LOSS_CONFIDENCE_Z`, 99.999 %), in %: the least loss the window's count is compatible with.
  decide() judges a loss threshold *crossed* on this bound, not on the point estimate, so that
  chance alone almost never crosses it (at 0.5 % true loss a 250-sample window counts 3 or more
  losses, a point estimate over 1 %, about one window in eight; the bound needs 10, about one
  window in 1.4 million). The price is patience with small excesses: a path at twice the threshold
  is found in tens of seconds, not at once (docs/false-alarms.md has both, measured).
  ``mos_high`` is the MOS with that loss: the best MOS the window is compatible with. The bound
  counts the window's *holes* (probes unanswered past the adaptive RTO while later ones were
  answered) as lost already: the evidence says so, and waiting for their timeout would delay the
  judgement of a lossy path by the whole timeout.
- **last_rtt_ms**: the RTT of the answered sample with the highest sequence number.
- **MOS**: :func:`bgpctl.core.mos.estimate_mos` of the median RTT (the E-model wants the mean
  delay; the median is its outlier-proof stand-in), the jitter (0 when ``None``) and the loss;
  with no answered sample at all the delay terms are 0, so the MOS reflects the loss alone.
  ``None`` for an empty window.

How the jitter stays incremental: unrolled, the filter is a weighted sum
``J = (1/16) * sum_k g**(m-k) * |D_k|`` with ``g = 15/16`` over the window's m differences in
sequence order. Appending at the newest end is ``T = g*T + |D|``; removing the oldest sample
subtracts its term's weight; an insertion or removal in the middle replaces one or two terms and
re-weights everything older by ``g`` (or ``1/g``), which needs only the partial sum on the nearer
side of the change.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable

from sortedcontainers import SortedList

from bgpctl.core.mos import G711, Codec, estimate_mos
from bgpctl.core.types import PathStats, Sample
from bgpctl.errors import ProbeError

LOSS_CONFIDENCE_Z = 4.265
"""The standard normal quantile of the one-sided 99.999 % bound used for loss (see ``loss_pct_low``)."""
LOSS_CONFIDENCE_PCT = 99.999

JITTER_GAIN = 1.0 / 16.0
"""RFC 3550 6.4.1: the jitter estimator's gain (noise reduction ratio 1/16)."""

_G = 1.0 - JITTER_GAIN


def percentile(sorted_values: SortedList[float] | list[float], p: float) -> float:
    """The ``p``-th percentile (0..100) of non-empty ascending values, linear between closest ranks."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of no values")
    h = (n - 1) * p / 100.0
    lo = math.floor(h)
    if lo >= n - 1:
        return sorted_values[n - 1]
    a = sorted_values[lo]
    return a + (h - lo) * (sorted_values[lo + 1] - a)


def wilson_low(k: int, n: int, z: float = LOSS_CONFIDENCE_Z) -> float:
    """The Wilson score interval's lower bound of the proportion ``k / n`` (0..1); 0 for ``n == 0``."""
    if n <= 0 or k <= 0:
        return 0.0
    p = k / n
    z2n = z * z / n
    centre = p + z2n / 2.0
    spread = z * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    return max(0.0, (centre - spread) / (1.0 + z2n))


def rfc3550_jitter(rtts_ms: Iterable[float]) -> float | None:
    """The RFC 3550 estimator over RTTs (ms) in sequence order, from J = 0. ``None`` below 2 values."""
    j = 0.0
    prev: float | None = None
    count = 0
    for r in rtts_ms:
        if prev is not None:
            j += (abs(r - prev) - j) * JITTER_GAIN
        prev = r
        count += 1
    return j if count >= 2 else None


class PathWindow:
    """The sliding window of one path's settled samples. Not thread-safe; one owner per path."""

    def __init__(
        self, window_s: float, codec: Codec = G711, *, rto_floor_s: float | None = None, rto_cap_s: float | None = None
    ) -> None:
        if not window_s > 0 or math.isinf(window_s):
            raise ProbeError(
                f"window_s must be a positive number of seconds, not {window_s!r}: "
                "take it from the SLA class's hysteresis.window_s"
            )
        self.window_s = float(window_s)
        self.codec = codec
        self.rto_floor_s = rto_floor_s
        self.rto_cap_s = rto_cap_s
        self._outstanding: dict[int, float] = {}  # seq -> sent, probes told by sent() and not settled yet
        self._cutoff = -math.inf
        self._by_seq: dict[int, Sample] = {}
        self._heap: list[tuple[float, int]] = []  # (sent, seq): eviction order
        self._lost: SortedList[int] = SortedList()
        self._answered: SortedList[int] = SortedList()  # seqs of answered samples
        self._rtt_ms: dict[int, float] = {}  # seq -> RTT in ms, answered samples only
        self._rtts: SortedList[float] = SortedList()  # all answered RTTs (ms), ascending
        self._jsum = 0.0  # 16 * J: sum_k g**(m-k) |D_k|

    def __len__(self) -> int:
        return len(self._by_seq)

    # ----------------------------------------------------------------------------------------
    # public contract

    def sent(self, seq: int, at: float) -> None:
        """A probe went out and is not settled yet (the live daemon knows this; replay reads it from the
        recording, or infers it from the samples).

        With ``rto_floor_s`` set, :meth:`stats` counts the probes sent after the last answered one that
        are still unanswered past an adaptive retransmission-style timeout, ``RTO = max(p50 + 4 x
        jitter, the largest RTT in the window)`` (a path that had a 100 ms queueing burst a few seconds
        ago is not suspected for the next one), at least ``rto_floor_s`` (the prober's reply-reading
        granularity) and at most ``rto_cap_s`` (the probe timeout, after which the sample settles as
        lost anyway). decide() makes a path SUSPECT when that many probes in a row are unanswered
        (de-preferred at once, so a dead path moves traffic after ``down_after_lost`` probes without
        waiting for their full timeout), and DOWN only when the timeouts confirm it; the timeout can
        stay generous enough that jitter never turns late answers into loss. "Unanswered" needs
        evidence: samples are passed on as they settle (an answer to a later probe counts at once),
        and the caller reads every reply that arrived before ``now`` first (the daemon polls its
        probe sockets before each evaluation).
        """
        if at >= self._cutoff and seq not in self._by_seq:
            self._outstanding[seq] = at

    def add(self, sample: Sample) -> None:
        """Take one settled sample (answered, or lost after the timeout); see the module docstring."""
        self._outstanding.pop(sample.seq, None)
        if math.isnan(sample.sent) or (sample.received is not None and math.isnan(sample.received)):
            raise ProbeError(
                f"sample seq {sample.seq} has a NaN timestamp: the prober must stamp "
                "sent/received from one monotonic clock"
            )
        if sample.received is not None and sample.received < sample.sent:
            raise ProbeError(
                f"sample seq {sample.seq} was answered {sample.sent - sample.received:.6f} s "
                "before it was sent: sent and received must come from the same monotonic clock"
            )
        if sample.sent < self._cutoff or sample.seq in self._by_seq:
            return
        self._by_seq[sample.seq] = sample
        heapq.heappush(self._heap, (sample.sent, sample.seq))
        if sample.received is None:
            self._lost.add(sample.seq)
        else:
            rtt = (sample.received - sample.sent) * 1000.0
            self._rtt_ms[sample.seq] = rtt
            self._rtts.add(rtt)
            self._insert_answered(sample.seq, rtt)

    def stats(self, now: float) -> PathStats:
        """Evict samples sent before ``now - window_s``, then summarise the window."""
        self._evict(now - self.window_s)
        samples = len(self._by_seq)
        lost = len(self._lost)
        answered = len(self._answered)
        if answered:
            consecutive = lost - self._lost.bisect_right(self._answered[-1])
            p50: float | None = percentile(self._rtts, 50.0)
            p95: float | None = percentile(self._rtts, 95.0)
        else:
            consecutive = lost
            p50 = p95 = None
        jitter = max(0.0, self._jsum * JITTER_GAIN) if answered >= 2 else None
        overdue, holes, rto_ms = self._overdue(now, p50, jitter)
        mos = mos_high = loss_low = None
        if samples:
            # holes are lost as far as the evidence goes (later probes were answered): the bound counts them
            # now rather than at their timeout; the point estimate waits for the timeout
            loss_low = 100.0 * wilson_low(lost + holes, samples + holes)
            mos = estimate_mos(p50 or 0.0, jitter or 0.0, 100.0 * lost / samples, self.codec)
            mos_high = mos if not (lost + holes) else estimate_mos(p50 or 0.0, jitter or 0.0, loss_low, self.codec)
        last_rtt = self._rtt_ms[self._answered[-1]] if answered else None
        return PathStats(
            samples=samples,
            lost=lost,
            consecutive_lost=consecutive,
            rtt_p50_ms=p50,
            rtt_p95_ms=p95,
            jitter_ms=jitter,
            mos=mos,
            overdue=overdue,
            rto_ms=rto_ms,
            loss_pct_low=loss_low,
            mos_high=mos_high,
            last_rtt_ms=last_rtt,
            holes=holes,
        )

    def _overdue(self, now: float, p50_ms: float | None, jitter_ms: float | None) -> tuple[int, int, float | None]:
        """(probes after the last answer unanswered past the RTO, probes before it unanswered past the
        RTO, the RTO in ms)."""
        if self.rto_floor_s is None or not self._outstanding:
            return 0, 0, None
        for seq in [q for q, at in self._outstanding.items() if at < self._cutoff]:
            del self._outstanding[seq]  # evicted with the window: never settled (a prober that gave up)
        rto_s = self.rto_floor_s
        if p50_ms is not None:  # and so the window has an answered RTT
            rto_s = max(rto_s, (p50_ms + 4.0 * (jitter_ms or 0.0)) / 1000.0, self._rtts[-1] / 1000.0)
        if self.rto_cap_s is not None:
            rto_s = min(rto_s, self.rto_cap_s)
        last_answered = self._answered[-1] if self._answered else -1
        overdue = holes = 0
        for seq, at in self._outstanding.items():
            if now - at >= rto_s:
                if seq > last_answered:
                    overdue += 1
                else:
                    holes += 1
        return overdue, holes, rto_s * 1000.0

    # ----------------------------------------------------------------------------------------
    # eviction

    def _evict(self, cutoff: float) -> None:
        self._cutoff = max(self._cutoff, cutoff)
        heap = self._heap
        while heap and heap[0][0] < self._cutoff:
            _, seq = heapq.heappop(heap)
            sample = self._by_seq.pop(seq)
            if sample.received is None:
                self._lost.remove(seq)
            else:
                self._remove_answered(seq)  # needs the RTT still in _rtt_ms
                self._rtts.remove(self._rtt_ms.pop(seq))

    # ----------------------------------------------------------------------------------------
    # incremental RFC 3550 jitter over answered samples in sequence order

    def _diff(self, k: int) -> float:
        """|D_k|: the RTT difference between answered[k-1] and answered[k] (1 <= k <= m)."""
        a = self._answered
        return abs(self._rtt_ms[a[k]] - self._rtt_ms[a[k - 1]])

    def _run(self, first: int, last: int) -> float:
        """sum_{k=first..last} g**(last-k) |D_k| (0 for an empty range), walking the range once."""
        if last < first:
            return 0.0
        acc = 0.0
        rtt = self._rtt_ms
        prev = rtt[self._answered[first - 1]]
        for seq in self._answered.islice(first, last + 1):
            cur = rtt[seq]
            acc = acc * _G + abs(cur - prev)
            prev = cur
        return acc

    def _insert_answered(self, seq: int, rtt: float) -> None:
        a = self._answered
        n = len(a)
        i = a.bisect_left(seq)
        m = n - 1  # differences before the insertion
        if n == 0:
            self._jsum = 0.0
        elif i == n:  # newest: the common case
            self._jsum = _G * self._jsum + abs(rtt - self._rtt_ms[a[-1]])
        elif i == 0:  # older than everything: a new oldest term
            self._jsum += _G**m * abs(self._rtt_ms[a[0]] - rtt)
        else:
            rp, rq = self._rtt_ms[a[i - 1]], self._rtt_ms[a[i]]
            replaced = _G ** (m - i) * abs(rq - rp)  # term i joined a[i-1] and a[i]
            if m - i <= i - 1:
                newer = self._run(i + 1, m)
                older = self._jsum - replaced - newer
            else:
                older = self._run(1, i - 1) * _G ** (m - i + 1)
                newer = self._jsum - replaced - older
            self._jsum = _G * older + _G ** (m + 1 - i) * abs(rtt - rp) + _G ** (m - i) * abs(rq - rtt) + newer
        self._jsum = max(0.0, self._jsum)
        a.add(seq)

    def _remove_answered(self, seq: int) -> None:
        a = self._answered
        n = len(a)
        i = a.index(seq)
        m = n - 1  # differences before the removal
        if n <= 2:
            self._jsum = 0.0
        elif i == 0:  # oldest: the common case (eviction)
            self._jsum -= _G ** (m - 1) * self._diff(1)
        elif i == n - 1:
            self._jsum = (self._jsum - self._diff(m)) / _G
        else:
            rp, rq = self._rtt_ms[a[i - 1]], self._rtt_ms[a[i + 1]]
            replaced = _G ** (m - i) * self._diff(i) + _G ** (m - i - 1) * self._diff(i + 1)
            if m - i - 1 <= i - 1:
                newer = self._run(i + 2, m)
                older_over_g = (self._jsum - replaced - newer) / _G
            else:
                older_over_g = self._run(1, i - 1) * _G ** (m - i)
                newer = self._jsum - replaced - older_over_g * _G
            self._jsum = older_over_g + _G ** (m - 1 - i) * abs(rq - rp) + newer
        self._jsum = max(0.0, self._jsum)
        a.remove(seq)
