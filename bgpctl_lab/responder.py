"""The meter's echo responder: answers meter probes, says which region answered, and stops by itself.

It answers only well-formed meter probes (``meter_packet``: right size, magic, version, kind), with an
echo of the same size sent back to the prober from the address the probe was sent to (an anycast
address on ``lo`` answers as itself). The echo carries the responder's region name and its kernel
receive stamp and transmit time. ``hold_ms`` holds every echo for a fixed time before sending it: a
calibrated delay, to check that the meter measures a known round trip right.

The responder runs for ``seconds`` at most (and ends early when ``stop`` is set), then returns a
summary of what it answered, with the kernel times of the first and last probe it answered.
"""

from __future__ import annotations

import heapq
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from bgpctl.errors import ProbeError
from bgpctl_lab.meter_packet import Kind, MeterPacket, decode, echo_of, valid_region
from bgpctl_lab.meter_socket import Received, realtime, receive, reply, responder_sockets

MAX_SECONDS = 7 * 24 * 3600.0
MAX_HOLD_MS = 10_000.0
MAX_HELD = 100_000  # probes waiting out their hold; beyond this, new probes are dropped (and counted)
POLL_S = 0.2  # how often the loop looks at ``stop`` when nothing arrives


class ResponderSummary(BaseModel):
    """What one responder run answered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str
    port: int
    binds: list[str]
    hold_ms: float
    answered: int
    ignored: int
    dropped_full: int
    send_errors: int
    first_rx_unix_ns: int | None  # kernel receive stamp of the first probe answered
    last_rx_unix_ns: int | None  # ... and of the last
    ran_s: float
    realtime_sched: bool


@dataclass(order=True)
class _Held:
    due_ns: int
    order: int
    sock: socket.socket = field(compare=False)
    got: Received = field(compare=False)
    probe: MeterPacket = field(compare=False)


@dataclass
class _State:
    region: str
    hold_ns: int
    answered: int = 0
    ignored: int = 0
    dropped_full: int = 0
    send_errors: int = 0
    first_rx: int | None = None
    last_rx: int | None = None
    order: int = 0
    held: list[_Held] = field(default_factory=list)

    def probe(self, s: socket.socket, got: Received) -> None:
        p = decode(got.data)
        if p is None or p.kind != Kind.PROBE:
            self.ignored += 1
            return
        if self.hold_ns <= 0:
            self._answer(s, got, p)
            return
        if len(self.held) >= MAX_HELD:
            self.dropped_full += 1
            return
        self.order += 1
        heapq.heappush(
            self.held, _Held(time.monotonic_ns() - (time.time_ns() - got.rx_ns) + self.hold_ns, self.order, s, got, p)
        )

    def release(self) -> int | None:
        """Send every echo whose hold is over; the monotonic ns of the next one due (None: none held)."""
        while self.held:
            now = time.monotonic_ns()
            if self.held[0].due_ns > now:
                return self.held[0].due_ns
            h = heapq.heappop(self.held)
            self._answer(h.sock, h.got, h.probe)
        return None

    def _answer(self, s: socket.socket, got: Received, p: MeterPacket) -> None:
        try:
            reply(s, echo_of(p, region=self.region, rx_ns=got.rx_ns, tx_ns=time.time_ns()), got)
        except OSError:  # no route back right now (a fault being drilled): that echo is lost
            self.send_errors += 1
            return
        self.answered += 1
        if self.first_rx is None:
            self.first_rx = got.rx_ns
        self.last_rx = got.rx_ns


def _check_responder_args(region: str, *, port: int, seconds: float, hold_ms: float, binds: tuple[str, ...]) -> None:
    if not valid_region(region):
        raise ProbeError(f"region {region!r}: give 1-16 characters of A-Z a-z 0-9 . _ - (e.g. use1)")
    if not 1 <= port <= 65535:
        raise ProbeError(f"port {port} is not a UDP port; give 1-65535")
    if not 0 < seconds <= MAX_SECONDS:
        raise ProbeError(f"seconds={seconds:g}: a responder is bounded; give more than 0 and at most {MAX_SECONDS:g}")
    if not 0 <= hold_ms <= MAX_HOLD_MS:
        raise ProbeError(f"hold_ms={hold_ms:g}: give 0-{MAX_HOLD_MS:g}")
    if not binds:
        raise ProbeError("give at least one address to bind (0.0.0.0 for every IPv4 address)")


def _serve(sel: selectors.BaseSelector, state: _State, *, end: float, stop: threading.Event) -> None:
    """Answer (or hold, then answer) every probe until ``end`` (monotonic) or ``stop``."""
    while not stop.is_set():
        now = time.monotonic()
        if now >= end:
            return
        timeout = min(POLL_S, end - now)
        due = state.release()
        if due is not None:
            timeout = min(timeout, max(0.0, (due - time.monotonic_ns()) / 1e9))
        for key, _ in sel.select(timeout):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            while (got := receive(sock)) is not None:
                state.probe(sock, got)
        state.release()


def run_responder(
    region: str,
    *,
    port: int = 9000,
    binds: tuple[str, ...] = ("0.0.0.0",),
    seconds: float = 3600.0,
    hold_ms: float = 0.0,
    netns: str | None = None,
    stop: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    realtime_sched: bool = True,
) -> ResponderSummary:
    """Answer meter probes on ``port`` for at most ``seconds``; ``on_ready()`` is called once listening."""
    _check_responder_args(region, port=port, seconds=seconds, hold_ms=hold_ms, binds=binds)
    stop = stop or threading.Event()
    socks = responder_sockets(netns, list(binds), port)
    state = _State(region=region, hold_ns=round(hold_ms * 1_000_000))
    began = time.monotonic()
    try:
        with realtime(realtime_sched) as rt, selectors.SelectSelector() as sel:
            for s in socks:
                sel.register(s, selectors.EVENT_READ)
            if on_ready is not None:
                on_ready()
            _serve(sel, state, end=began + seconds, stop=stop)
    finally:
        for s in socks:
            s.close()
    return ResponderSummary(
        region=region,
        port=port,
        binds=list(binds),
        hold_ms=hold_ms,
        answered=state.answered,
        ignored=state.ignored,
        dropped_full=state.dropped_full,
        send_errors=state.send_errors,
        first_rx_unix_ns=state.first_rx,
        last_rx_unix_ns=state.last_rx,
        ran_s=time.monotonic() - began,
        realtime_sched=rt,
    )
