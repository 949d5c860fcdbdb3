"""TCP connect-time probes for API endpoints: one non-blocking connect per probe.

The RTT is the kernel's own measurement of SYN -> SYN-ACK (``tcpi_rtt`` from TCP_INFO, microseconds),
so ``received = sent + tcpi_rtt``; when the SYN had to be retransmitted (Karn: no RTT sample) the time
the connect completed, as seen by the event loop, is used instead. Each connection is closed with an RST
(SO_LINGER 0) so that fast probing leaves no TIME_WAIT sockets behind. A refused or failed connection
counts as lost (:attr:`Problem.REFUSED`): the API is not answering on that path.
"""

from __future__ import annotations

import asyncio
import errno
import select
import socket
import struct
import time

from bgpctl.policy.model import ProbeProtocol
from bgpctl.probe.netns import entered
from bgpctl.probe.protocol import BadCallback, ProbeResult, Problem, ResultCallback
from bgpctl.probe.sockopt import family_of, set_dscp

_TCPI_RTT_OFFSET = 68  # struct tcp_info: u32 tcpi_rtt (microseconds)
_TCPI_TOTAL_RETRANS_OFFSET = 100
_TCP_INFO_LEN = 104


def rtt_from_tcp_info(info: bytes) -> float | None:
    """Pure: the SYN RTT in seconds from a struct tcp_info, or None if the kernel has no clean sample."""
    if len(info) < _TCP_INFO_LEN:
        return None
    (rtt_us,) = struct.unpack_from("=I", info, _TCPI_RTT_OFFSET)
    (total_retrans,) = struct.unpack_from("=I", info, _TCPI_TOTAL_RETRANS_OFFSET)
    if rtt_us == 0 or total_retrans != 0:
        return None
    return float(rtt_us) / 1e6


class TcpConnectProbe:
    kind = ProbeProtocol.TCP

    def __init__(
        self, *, source: str, target: str, port: int, dscp: int = 0, timeout_s: float = 1.0, netns: str | None = None
    ) -> None:
        self.source, self.target, self.port, self.dscp = source, target, port, dscp
        self.timeout_s, self.netns = timeout_s, netns
        self._family = family_of(target)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_result: ResultCallback | None = None
        self._on_bad: BadCallback | None = None
        self._pending: dict[int, tuple[socket.socket, asyncio.TimerHandle, float]] = {}  # seq -> (sock, timer, sent)

    def open(self, on_result: ResultCallback, on_bad: BadCallback, *, watch: bool = True) -> None:
        # Connections always complete through the event loop (one writer per connect): ``watch`` is moot.
        self._loop = asyncio.get_running_loop()
        self._on_result, self._on_bad = on_result, on_bad

    def poll(self) -> None:
        """Report every connect that has completed (or failed) and not been reported yet: the event loop
        does it as well when it gets round to it, but an evaluation must see all the evidence now."""
        if not self._pending:
            return
        poller = select.poll()
        fds = {}
        for seq, (sock, _timer, _sent) in self._pending.items():
            poller.register(sock.fileno(), select.POLLOUT | select.POLLERR | select.POLLHUP)
            fds[sock.fileno()] = seq
        for fd, _mask in poller.poll(0):
            seq = fds[fd]
            entry = self._pending.get(seq)
            if entry is not None:
                self._connected(seq, entry[2])

    def send(self, seq: int) -> float:
        loop = self._loop
        assert loop is not None, "open() first"
        with entered(self.netns):
            sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.bind((self.source, 0))
            set_dscp(sock, self.dscp)
            sent = time.time()
            err = sock.connect_ex((self.target, self.port))
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, f"connect to {self.target}:{self.port} failed: {errno.errorcode.get(err)}")
        except BaseException:
            sock.close()
            raise
        timer = loop.call_later(self.timeout_s, self._abandon, seq)
        self._pending[seq] = (sock, timer, sent)
        loop.add_writer(sock.fileno(), self._connected, seq, sent)
        return sent

    def close(self) -> None:
        for seq in list(self._pending):
            self._drop(seq)

    def _drop(self, seq: int) -> socket.socket | None:
        entry = self._pending.pop(seq, None)
        if entry is None:
            return None
        sock, timer, _sent = entry
        timer.cancel()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_writer(sock.fileno())
        sock.close()
        return sock

    def _abandon(self, seq: int) -> None:
        self._drop(seq)  # the scheduler counts it as lost at its own timeout

    def _connected(self, seq: int, sent: float) -> None:
        now = time.time()
        entry = self._pending.get(seq)
        assert entry is not None and self._on_result is not None and self._on_bad is not None
        sock = entry[0]
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        info = b"" if err else sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_LEN)
        self._drop(seq)
        if err:
            self._on_bad(Problem.REFUSED)
            return
        rtt = rtt_from_tcp_info(info)
        self._on_result(ProbeResult(seq, now if rtt is None else sent + rtt))
