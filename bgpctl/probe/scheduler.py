"""The per-path probe loop: absolute send deadlines, sequence numbers, timeouts, settled samples.

* Probe ``k`` is sent at ``start + k * interval`` on the event loop's monotonic clock, so scheduling
  delays never accumulate. If the loop runs more than one interval late, the missed slots are skipped
  (counted as ``skipped``), never sent in a burst.
* A probe is *settled* when it is answered within ``timeout`` (kernel receive time minus send time), or
  when the timeout passes without an answer (lost; a later reply is counted as ``late`` and ignored).
* Settled samples are emitted as they settle, each exactly once: an answer is passed on at once even
  when an earlier probe is still outstanding. (Holding it back until the earlier probe timed out made
  the window count an answered probe as unanswered, so one lost probe looked like a run of them:
  issue 16.) Consumers that want sequence order sort by ``seq``; :class:`~bgpctl.core.stats.PathWindow`
  takes samples in any order.
* Replies for sequence numbers never sent, or older than the remembered horizon, count as
  ``unknown_seq``; second replies as ``duplicate``; answers that arrive after a later probe's answer as
  ``reordered`` (they are used).

:class:`SeqBook` holds that bookkeeping and is pure (no clock, no I/O); :class:`PathProber` drives it.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bgpctl.core.types import PathKey, Sample
from bgpctl.probe.protocol import Counters, Probe, ProbeResult, Problem


class _State(enum.Enum):
    OUTSTANDING = 0
    ANSWERED = 1
    LOST = 2


@dataclass
class SeqBook:
    """Pure bookkeeping of one path's probes; feed it sends, replies and expiries, collect samples.

    ``horizon`` is how many sequence numbers back a settled probe is remembered (for duplicate and late
    detection); older replies count as unknown.
    """

    timeout_s: float
    horizon: int = 4096
    counters: Counters = field(default_factory=Counters)
    _sent: dict[int, float] = field(default_factory=dict)
    _state: dict[int, _State] = field(default_factory=dict)
    _received: dict[int, float] = field(default_factory=dict)
    _fresh: list[int] = field(default_factory=list)  # settled since the last take_settled(), in settle order
    _next_seq: int = 0
    _highest_answered: int = -1
    _outstanding: int = 0
    _oldest: int = 0  # lowest sequence number still remembered

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def outstanding(self) -> int:
        return self._outstanding

    def is_outstanding(self, seq: int) -> bool:
        return self._state.get(seq) is _State.OUTSTANDING

    def sent(self, seq: int, at: float) -> None:
        if seq != self._next_seq:
            raise ValueError(f"sequence numbers are consecutive: expected {self._next_seq}, got {seq}")
        self._next_seq = seq + 1
        self._sent[seq] = at
        self._state[seq] = _State.OUTSTANDING
        self._outstanding += 1
        self.counters.count("sent")

    def send_failed(self, seq: int, at: float) -> None:
        """Probe ``seq`` could not be sent at ``at``: it is lost (numbering stays consecutive)."""
        self.sent(seq, at)
        self.counters.count(Problem.SEND_FAILED)
        self._settle(seq, _State.LOST)

    def reply(self, result: ProbeResult) -> None:
        seq = result.seq
        state = self._state.get(seq)
        if state is None or seq >= self._next_seq:
            self.counters.count(Problem.UNKNOWN_SEQ)
            return
        if state is _State.ANSWERED:
            self.counters.count(Problem.DUPLICATE)
            return
        if state is _State.LOST:
            self.counters.count(Problem.LATE)
            return
        sent = self._sent[seq] if result.sent is None else result.sent
        self._sent[seq] = sent
        if result.received - sent > self.timeout_s:
            self.counters.count(Problem.LATE)
            self._settle(seq, _State.LOST)
            return
        if seq < self._highest_answered:
            self.counters.count(Problem.REORDERED)
        self._highest_answered = max(self._highest_answered, seq)
        self._received[seq] = result.received
        self._settle(seq, _State.ANSWERED)

    def expire(self, seq: int) -> None:
        """The timeout of ``seq`` has passed (the caller's clock): lost, unless answered meanwhile."""
        if self._state.get(seq) is _State.OUTSTANDING:
            self._settle(seq, _State.LOST)

    def _settle(self, seq: int, state: _State) -> None:
        self._state[seq] = state
        self._outstanding -= 1
        self._fresh.append(seq)
        self.counters.count("answered" if state is _State.ANSWERED else "lost")

    def take_settled(self) -> list[Sample]:
        """Samples settled since the last call, in the order they settled, each exactly once."""
        out = [Sample(seq, self._sent[seq], self._received.get(seq)) for seq in self._fresh]
        self._fresh.clear()
        self._forget()
        return out

    def _forget(self) -> None:
        oldest_kept = self._next_seq - self.horizon
        while self._oldest < oldest_kept and self._state.get(self._oldest) is not _State.OUTSTANDING:
            seq = self._oldest
            del self._state[seq]
            self._sent.pop(seq, None)
            self._received.pop(seq, None)
            self._oldest += 1


SampleSink = Callable[[PathKey, Sample], None]
SentSink = Callable[[PathKey, int, float], None]
"""Told of every probe as it goes out (key, seq, send time): what is outstanding, for the fast path."""
BATCH_MAX_INTERVAL_S = 0.05


class PathProber:
    """One probe on one path: ``await prober.run(count)``; samples go to ``sink`` as they settle.

    Several probers with the same interval share one timer loop (:func:`drive`): one wake-up per slot
    sends every path's probe, instead of one wake-up per path and probe.
    """

    def __init__(
        self,
        key: PathKey,
        probe: Probe,
        *,
        interval_s: float,
        timeout_s: float,
        sink: SampleSink,
        on_sent: SentSink | None = None,
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0:
            raise ValueError("interval and timeout must be positive")
        self.key, self.probe, self.sink, self.on_sent = key, probe, sink, on_sent
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.book = SeqBook(timeout_s, horizon=max(64, 2 * math.ceil(timeout_s / interval_s) + 16))
        self._settled = asyncio.Event()
        self._settled.set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Timeouts: deadlines (loop clock) in sequence order, and one timer armed for the earliest
        # deadline of a still-outstanding probe; answered probes never wake the loop up.
        self._deadlines: deque[tuple[float, int]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._watch = True

    @property
    def counters(self) -> Counters:
        return self.book.counters

    def open(self, *, watch: bool = True) -> None:
        """``watch=False`` is the batched mode: the caller calls :meth:`poll` and :meth:`expire_due` once
        per slot, and no timer runs per prober."""
        self._loop = asyncio.get_running_loop()
        self._watch = watch
        self.probe.open(self._on_result, self._on_bad, watch=watch)

    def poll(self) -> None:
        """Read the replies waiting in the probe's socket (the batched mode of :func:`drive`)."""
        self.probe.poll()

    def poll_replies(self) -> None:
        """Read every reply that has arrived and pass on what settled: the evidence up to now, before
        an evaluation. Cheap when nothing waits (one non-blocking read per socket)."""
        if self._loop is None:
            return
        self.probe.poll()
        self._flush()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.probe.close()

    def tick(self) -> None:
        """Send the next probe now and arm its timeout."""
        assert self._loop is not None, "open() first"
        seq = self.book.next_seq
        try:
            sent = self.probe.send(seq)
        except OSError:
            self.book.send_failed(seq, time.time())
            self._flush()
        else:
            self.book.sent(seq, sent)
            if self.on_sent is not None:
                self.on_sent(self.key, seq, sent)
            self._settled.clear()
            self._deadlines.append((self._loop.time() + self.timeout_s, seq))
            if self._watch and self._timer is None:
                self._arm()

    def skipped(self, slots: int) -> None:
        self.book.counters.count(Problem.SKIPPED, slots)

    async def settled(self) -> None:
        """Wait until no probe is outstanding (each is answered or has timed out)."""
        await self._settled.wait()

    def _on_result(self, result: ProbeResult) -> None:
        self.book.reply(result)
        self._flush()

    def _on_bad(self, problem: Problem) -> None:
        self.book.counters.count(problem)

    def _arm(self) -> None:
        assert self._loop is not None
        deadlines = self._deadlines
        while deadlines and not self.book.is_outstanding(deadlines[0][1]):
            deadlines.popleft()
        self._timer = self._loop.call_at(deadlines[0][0], self._fire) if deadlines else None

    def expire_due(self, now: float) -> None:
        """Declare lost every probe whose timeout (loop clock) has passed by ``now``. Reads the socket
        first: a reply that arrived in time but was not read yet must not count as lost."""
        self.probe.poll()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            self.book.expire(deadlines.popleft()[1])
        self._flush()

    def _fire(self) -> None:
        assert self._loop is not None
        self.expire_due(self._loop.time())
        self._arm()

    def _flush(self) -> None:
        for sample in self.book.take_settled():
            self.sink(self.key, sample)
        if self.book.outstanding == 0:
            self._settled.set()

    async def run(self, count: int | None = None, *, start_at: float | None = None) -> Counters:
        """Send ``count`` probes (forever if None), then wait for the last ones to settle."""
        await drive([self], self.interval_s, count, start_at=start_at)
        return self.book.counters


async def drive(
    probers: Sequence[PathProber], interval_s: float, count: int | None = None, *, start_at: float | None = None
) -> None:
    """Tick every prober once per slot ``start + k * interval_s`` (loop clock), ``count`` slots (forever
    if None), then wait until all their probes settled. Opens the probers first, closes them at the end.

    A slot more than one interval late is skipped (counted on every prober), never sent in a burst.

    At intervals up to :data:`BATCH_MAX_INTERVAL_S` (batched mode) replies are not read as they arrive
    but in one batch per slot, just before the slot's sends, and timeouts are declared at the same time:
    receive times are the kernel's and lateness is judged on them, so this costs no accuracy, only up to
    one interval of delay before a sample settles. It saves an event-loop wake-up per reply and per
    timeout (the slot's own wake-up is the only one), which is most of the CPU at 16 paths x 20 ms.
    """
    loop = asyncio.get_running_loop()
    batch = interval_s <= BATCH_MAX_INTERVAL_S
    opened: list[PathProber] = []
    try:
        for p in probers:
            p.open(watch=not batch)
            opened.append(p)
        start = loop.time() if start_at is None else start_at
        slot = sent = 0
        while count is None or sent < count:
            delay = start + slot * interval_s - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > interval_s:
                missed = math.floor(-delay / interval_s)
                for p in probers:
                    p.skipped(missed)
                slot += missed
                continue
            now = loop.time()
            for p in probers:
                if batch:
                    p.expire_due(now)  # polls first
                p.tick()
            slot += 1
            sent += 1
        if batch:
            while not all(p.book.outstanding == 0 for p in probers):
                await asyncio.sleep(interval_s)
                now = loop.time()
                for p in probers:
                    p.expire_due(now)
        await asyncio.gather(*(p.settled() for p in probers))
    finally:
        for p in opened:
            p.close()
