"""``bgpctl reflector``: an asyncio STAMP Session-Reflector (RFC 8762, unauthenticated, stateless),
plus optional TCP listeners that accept and close, as targets for TCP connect probes.

Each answer has the length of the packet it answers (symmetric size), leaves from the address the probe
was sent to (IP_PKTINFO, so one wildcard socket serves every target address of a node), carries the
probe's TOS byte (so a DSCP EF probe is answered with EF), the probe's received TTL, and kernel receive
timestamps. Packets shorter than 44 octets are counted and dropped.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter

from bgpctl.errors import ProbeError
from bgpctl.probe import stamp
from bgpctl.probe.netns import entered
from bgpctl.probe.sockopt import (
    ancillary_space,
    enable_receive_info,
    family_of,
    parse_ancillary,
    reply_ancillary,
)

MAX_DATAGRAM = 9000


class _CloseAtOnce(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class Reflector:
    """Listens on ``listen``:``port`` (UDP, STAMP) and on each of ``tcp_ports`` (accept-and-close)."""

    def __init__(
        self,
        listen: str = "0.0.0.0",
        port: int = stamp.DEFAULT_PORT,
        *,
        tcp_ports: tuple[int, ...] = (),
        netns: str | None = None,
    ) -> None:
        self.listen, self.port, self.tcp_ports, self.netns = listen, port, tcp_ports, netns
        self.counters: Counter[str] = Counter()
        self._sock: socket.socket | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ancspace = ancillary_space()

    @property
    def udp_port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the reflector is not started")
        return int(self._sock.getsockname()[1])

    async def start(self) -> None:
        family = family_of(self.listen)
        with entered(self.netns):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            tcp_socks: list[socket.socket] = []
            try:
                sock.setblocking(False)
                sock.bind((self.listen, self.port))  # no SO_REUSEADDR: a second reflector must fail here
                enable_receive_info(sock, ttl=True, tos=True, pktinfo=True)
                for tcp_port in self.tcp_ports:
                    t = socket.socket(family, socket.SOCK_STREAM)
                    tcp_socks.append(t)
                    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    t.bind((self.listen, tcp_port))
                    t.listen(1024)
                    t.setblocking(False)
            except OSError as e:
                sock.close()
                for t in tcp_socks:
                    t.close()
                raise ProbeError(
                    f"reflector cannot listen on {self.listen} port {self.port} "
                    f"(tcp {list(self.tcp_ports)}): {e}; is another reflector running?"
                ) from None
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._readable)
        for t in tcp_socks:
            self._servers.append(await self._loop.create_server(_CloseAtOnce, sock=t))

    def _readable(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                data, anc, flags, addr = sock.recvmsg(MAX_DATAGRAM, self._ancspace)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # a queued socket error: reported once; the loop calls back for the rest
                return
            self.counters["received"] += 1
            if len(data) < stamp.PACKET_LEN or flags & socket.MSG_TRUNC:
                self.counters["dropped_short" if len(data) < stamp.PACKET_LEN else "dropped_long"] += 1
                continue
            info = parse_ancillary(anc)
            received_ns = int(info.at * 1e9) if info.at is not None else time.time_ns()
            answer_anc = reply_ancillary(sock.family, local=info.local, tos=info.tos)
            sent_ntp = stamp.ntp_from_unix_ns(time.time_ns())
            answer = stamp.reflect(
                data,
                received_ntp=stamp.ntp_from_unix_ns(received_ns),
                sent_ntp=sent_ntp,
                ttl=255 if info.ttl is None else info.ttl,
            )
            try:
                sock.sendmsg([answer], answer_anc, 0, addr)
            except OSError:
                self.counters["send_failed"] += 1
            else:
                self.counters["reflected"] += 1

    def close(self) -> None:
        for server in self._servers:
            server.close()
        self._servers.clear()
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
