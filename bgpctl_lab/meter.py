"""The call-quality meter's sender: a bounded voice-like UDP stream to an echo responder.

``run_meter(netns, target, port)`` sends RTP-sized probes (see ``meter_packet``) at a fixed spacing
(20 ms = 50 packets/s by default; 2 ms in fine mode, for measuring gaps), round-robin over ``flows``
sockets with distinct source ports so that ECMP load sharing shows, and collects the echoes. It stops
after ``seconds`` or ``count`` packets, whichever comes first, waits a bounded drain time for the last
echoes, and returns a ``MeterReport`` (see ``meter_report`` for what each figure means).

Timing: sends are scheduled on absolute deadlines (packet i at start + i x spacing, so there is no
drift), waited for with ``select`` until ~200 µs before the deadline and then by spinning, in a thread
raised to SCHED_FIFO when allowed. Echo arrival times are kernel receive stamps, so reading them late
costs nothing. The one thread both sends and reads: no lock or GIL hand-off sits between a deadline and
its send.

Send times: each socket asks the kernel for numbered software transmit stamps (``SO_TIMESTAMPING``, the
product's :mod:`bgpctl.probe.txstamp`), read from the socket's error queue without waiting, right after
each send and whenever the socket is readable; a probe's send time is its stamp (when the packet went to
the driver), so a sender held off the CPU between its clock read and the transmit is not counted as
network time. A probe whose stamp never came keeps the user-space time and is counted
(``user_tx_stamps``).

Even so, on a loaded 2-core VM whose kernel is built with ``preempt=none``, a woken SCHED_FIFO thread
can wait several milliseconds for the CPU (measured: up to 10-30 ms late, about once per few thousand
sends, with other engineers' tests running), and so can the responder. The meter therefore records
how late it sent each packet and the responder reports how long it held each one, and the report's
``longest_gap_ms`` and jitter take both out (the "network timeline", see ``meter_report``); the plain
gap between receive stamps stays in the report as ``longest_gap_raw_ms``, next to ``send_late_*``.

Run it in its own thread or process when something else must happen meanwhile (a failover drill):
it blocks for the whole stream.
"""

from __future__ import annotations

import dataclasses
import errno
import math
import secrets
import selectors
import socket
import time
from dataclasses import dataclass, field

from bgpctl.core.mos import estimate_mos
from bgpctl.errors import ProbeError
from bgpctl.probe.sockopt import enable_transmit_stamps, read_tx_stamps, restart_transmit_stamps
from bgpctl.probe.txstamp import TxBook
from bgpctl_lab.meter_packet import Kind, MeterPacket, decode, encode
from bgpctl_lab.meter_report import EchoPacket, MeterReport, MeterSettings, SentPacket, build_report
from bgpctl_lab.meter_socket import family_of, realtime, receive, sender_sockets

FINE_SPACING_MS = 2.0
DEFAULT_RATE_PPS = 50.0
MAX_RATE_PPS = 1000.0
MAX_FLOWS = 256  # a weighted split is judged on >= 100 flows (one socket each)
MAX_SECONDS = 3600.0
MAX_COUNT = 400_000  # the meter keeps every packet for its report: ~13 min in fine mode, 2 h at 50/s
MAX_DRAIN_S = 5.0
START_DELAY_NS = 20_000_000  # first deadline: time to settle after opening sockets
SPIN_NS = 200_000  # spin (rather than sleep) for the last 200 µs before a deadline


@dataclass
class _Run:
    """Mutable state of one stream while it runs (only the sender thread touches it)."""

    socks: list[socket.socket]
    nonce: int
    flows: int
    sent: list[SentPacket] = field(default_factory=list)
    echoes: list[EchoPacket] = field(default_factory=list)
    answered: set[int] = field(default_factory=set)
    max_rtt_ns: int = 0
    kernel_stamps: bool = True
    tx_on: list[bool] = field(default_factory=list)  # per flow: the kernel gives transmit stamps
    books: list[TxBook] = field(default_factory=list)  # per flow: stamp numbers <-> sequence numbers
    tx_ns: dict[int, int] = field(default_factory=dict)  # seq -> kernel transmit stamp

    def start_tx_stamps(self) -> None:
        self.tx_on = [enable_transmit_stamps(s) for s in self.socks]
        self.books = [TxBook() for _ in self.socks]

    def sent_ok(self, flow: int, seq: int, send_ns: int) -> None:
        """Probe ``seq`` left on ``flow``'s socket: number it, and take its stamp if it is there already."""
        if self.tx_on[flow]:
            self.books[flow].sent(seq, send_ns / 1e9)
            self.stamps(flow, once=True)

    def send_failed(self, flow: int) -> None:
        """A failed send may have used a stamp number: read what is queued, then number from 0 again."""
        if self.tx_on[flow]:
            self.stamps(flow)
            self.tx_on[flow] = restart_transmit_stamps(self.socks[flow])
            self.books[flow].restart()

    def stamps(self, flow: int, *, once: bool = False) -> None:
        """Read ``flow``'s error queue without waiting; keep each stamp that matches a probe."""
        book = self.books[flow]
        for seq in read_tx_stamps(self.socks[flow], book, once=once):
            at = book.kernel_at(seq) if seq is not None else None
            if seq is not None and at is not None:
                self.tx_ns[seq] = round(at * 1e9)

    def stamped_sent(self) -> list[SentPacket]:
        """``sent`` with the kernel transmit stamps that came (read what is still queued first)."""
        for flow in range(len(self.books)):
            self.stamps(flow)
        return [dataclasses.replace(p, tx_ns=self.tx_ns.get(p.seq)) for p in self.sent]

    def take(self, s: socket.socket) -> None:
        """Read every datagram waiting on ``s`` and keep the echoes of this run; read its transmit stamps."""
        if self.books:
            self.stamps(self.socks.index(s))
        while (got := receive(s)) is not None:
            p = decode(got.data)
            if (
                p is None
                or p.kind != Kind.ECHO
                or p.nonce != self.nonce
                or not 0 <= p.seq < len(self.sent)
                or p.flow != p.seq % self.flows
            ):
                continue
            self.kernel_stamps &= got.kernel_stamp
            self.echoes.append(
                EchoPacket(
                    seq=p.seq,
                    flow=p.flow,
                    rx_ns=got.rx_ns,
                    region=p.region,
                    server_ns=max(0, p.echo_tx_ns - p.echo_rx_ns),
                )
            )
            self.answered.add(p.seq)
            self.max_rtt_ns = max(self.max_rtt_ns, got.rx_ns - self.sent[p.seq].send_ns)


def settings_for(
    netns: str | None,
    target: str,
    port: int,
    *,
    rate_pps: float,
    fine: bool,
    flows: int,
    seconds: float,
    count: int | None,
    dscp: int,
    drain_s: float,
) -> MeterSettings:
    """Check the bounds of a run; the error says which value to change."""
    family_of(target)
    if not 1 <= port <= 65535:
        raise ProbeError(f"port {port} is not a UDP port; give 1-65535")
    if not 1 <= flows <= MAX_FLOWS:
        raise ProbeError(f"flows={flows}: give 1-{MAX_FLOWS} flows")
    if not fine and not 1.0 <= rate_pps <= MAX_RATE_PPS:
        raise ProbeError(f"rate {rate_pps:g} packets/s is out of bounds; give 1-{MAX_RATE_PPS:g} (or --fine)")
    if not 0 < seconds <= MAX_SECONDS:
        raise ProbeError(f"seconds={seconds:g}: every stream is bounded; give more than 0 and at most {MAX_SECONDS:g}")
    if count is not None and not 1 <= count <= MAX_COUNT:
        raise ProbeError(f"count={count}: give 1-{MAX_COUNT} packets")
    if not 0 <= dscp <= 63:
        raise ProbeError(f"dscp={dscp}: a DSCP is 0-63 (46 = EF, voice)")
    if not 0 <= drain_s <= MAX_DRAIN_S:
        raise ProbeError(f"drain_s={drain_s:g}: give 0-{MAX_DRAIN_S:g} s")
    spacing_ms = FINE_SPACING_MS if fine else 1000.0 / rate_pps
    by_time = max(1, math.floor(seconds * 1000.0 / spacing_ms + 1e-9))
    total = min(by_time, count) if count is not None else by_time
    if total > MAX_COUNT:
        raise ProbeError(
            f"{seconds:g} s at {1000.0 / spacing_ms:g} packets/s is {total} packets; the meter keeps "
            f"every packet for its report, so give at most {MAX_COUNT} (fewer seconds, a lower "
            f"rate, or --count)"
        )
    return MeterSettings(
        netns=netns,
        target=target,
        port=port,
        flows=flows,
        spacing_ms=spacing_ms,
        rate_pps=1000.0 / spacing_ms,
        fine=fine,
        dscp=dscp,
        seconds=seconds,
        count=total,
        drain_s=drain_s,
    )


def run_meter(
    netns: str | None,
    target: str,
    port: int = 9000,
    *,
    rate_pps: float = DEFAULT_RATE_PPS,
    fine: bool = False,
    flows: int = 4,
    seconds: float = 10.0,
    count: int | None = None,
    dscp: int = 46,
    drain_s: float = 1.0,
    realtime_sched: bool = True,
) -> MeterReport:
    """Send one bounded stream from namespace ``netns`` (None: this one) to ``target``:``port``; report it.

    After the last send it waits ``drain_s`` (longer if twice the largest RTT seen is longer, up to
    MAX_DRAIN_S) or until every packet is answered; whatever has not come back by then is lost.
    """
    settings = settings_for(
        netns,
        target,
        port,
        rate_pps=rate_pps,
        fine=fine,
        flows=flows,
        seconds=seconds,
        count=count,
        dscp=dscp,
        drain_s=drain_s,
    )
    socks = sender_sockets(netns, target, flows, dscp)
    try:
        ports = [int(s.getsockname()[1]) for s in socks]
        run = _Run(socks=socks, nonce=secrets.randbits(32), flows=flows)
        run.start_tx_stamps()
        with realtime(realtime_sched) as rt:
            _stream(run, settings)
        sent = run.stamped_sent()
    finally:
        for s in socks:
            s.close()
    return build_report(
        settings,
        sent,
        run.echoes,
        source_ports=ports,
        realtime_sched=rt,
        kernel_rx_timestamps=run.kernel_stamps,
        mos=estimate_mos,
    )


def _stream(run: _Run, settings: MeterSettings) -> None:
    spacing_ns = round(settings.spacing_ms * 1_000_000)
    dest = (settings.target, settings.port)
    flow_seq = [0] * run.flows
    with selectors.SelectSelector() as sel:  # select(2) waits in µs; epoll/poll round up to whole ms
        for s in run.socks:
            sel.register(s, selectors.EVENT_READ)
        start = time.monotonic_ns() + START_DELAY_NS
        for i in range(settings.count):
            deadline = start + i * spacing_ns
            _wait_until(deadline, sel, run)
            late = time.monotonic_ns() - deadline
            send_ns = time.time_ns()
            flow = i % run.flows
            data = encode(MeterPacket(Kind.PROBE, flow, run.nonce, i, send_ns, flow_seq=flow_seq[flow]))
            flow_seq[flow] += 1
            error: str | None = None
            try:
                run.socks[flow].sendto(data, dest)
            except OSError as e:  # no route / refused by a filter / buffer full: the packet is lost
                error = errno.errorcode.get(e.errno or 0, str(e))
                run.send_failed(flow)
            else:
                run.sent_ok(flow, i, send_ns)
            run.sent.append(SentPacket(seq=i, flow=flow, send_ns=send_ns, late_ns=late, error=error))
        last = time.monotonic_ns()
        while len(run.answered) < len(run.sent):
            drain_ns = min(max(settings.drain_s * 1e9, 2 * run.max_rtt_ns), MAX_DRAIN_S * 1e9)
            left = last + drain_ns - time.monotonic_ns()
            if left <= 0:
                break
            for key, _ in sel.select(left / 1e9):
                run.take(_sock(key))


def _wait_until(deadline: int, sel: selectors.BaseSelector, run: _Run) -> None:
    """Read echoes while waiting for ``deadline`` (monotonic ns); spin through its last SPIN_NS."""
    while True:
        left = deadline - time.monotonic_ns()
        if left <= SPIN_NS:
            break
        for key, _ in sel.select((left - SPIN_NS) / 1e9):
            run.take(_sock(key))
    while time.monotonic_ns() < deadline:
        pass


def _sock(key: selectors.SelectorKey) -> socket.socket:
    s = key.fileobj
    assert isinstance(s, socket.socket)
    return s
