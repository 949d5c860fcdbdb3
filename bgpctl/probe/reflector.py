"""``bgpctl reflector``: an asyncio STAMP Session-Reflector (RFC 8762, unauthenticated, stateless),
plus optional TCP listeners that accept and close, as targets for TCP connect probes.

Each answer has the length of the packet it answers (symmetric size), leaves from the address the probe
was sent to (IP_PKTINFO, so one wildcard socket serves every target address of a node), carries the
probe's TOS byte (so a DSCP EF probe is answered with EF), the probe's received TTL, and kernel receive
timestamps. Packets shorter than 44 octets are counted and dropped.

A reflector answers whoever writes to it, so it must not become a loop or an amplifier (Loop-DoS,
CVE-2024-2169; docs/design.md, "Threat notes"). Before answering, :class:`Admission` (pure) refuses a
datagram

* from a privileged source port (< 1024: echo 7, chargen 19, time 37, NTP 123, STAMP 862 itself, ...),
  from this reflector's own port, or from a port of another service that answers datagrams
  (:data:`REFLECTING_PORTS`): such a source is a service, never a Session-Sender, and answering it
  makes two services answer each other forever;
* from this host's own addresses (the destination or listen address itself, every address of the
  reflector's network namespace, read over netlink at start and every :data:`ADDRESS_REFRESH_S`, and any
  loopback source), unless ``allow_local`` (default: on when listening on a loopback address, on purpose);
  and from a multicast, broadcast or unspecified source, always;

and :class:`TokenBuckets` limits the answers per source address (``rate`` per second, ``burst`` at once):
a loop with a service this list does not know dies when the bucket runs dry. Each wake-up of the event
loop handles at most ``batch`` datagrams, so timers (``--seconds``) and signals (SIGTERM) run under any
flood. Every refusal is counted per reason (:data:`COUNTERS`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import AsyncIPRoute

from bgpctl.errors import ProbeError
from bgpctl.probe import stamp
from bgpctl.probe.netns import entered
from bgpctl.probe.sockopt import (
    Received,
    ancillary_space,
    enable_receive_info,
    family_of,
    parse_ancillary,
    reply_ancillary,
)

MAX_DATAGRAM = 9000
DEFAULT_RATE = 200.0
"""Answers per second per source address. bgpctl probes every ``interval_ms`` >= 20 ms, i.e. at most 50 a
second per target; 200 leaves room for four targets on one reflector."""
DEFAULT_BURST = 400
"""Answers a source may get at once before the rate applies; also the most a loop can run (about)."""
DEFAULT_BATCH = 64
"""Datagrams handled per wake-up of the event loop before it runs timers and signal handlers."""
MAX_SOURCES = 65536
"""Token buckets kept (least recently used go first): bounds the memory a spoofed-source flood can take."""
ADDRESS_REFRESH_S = 2.0
"""How often the reflector re-reads its namespace's addresses (an address added later is known by then)."""

PRIVILEGED_PORTS_BELOW = 1024
REFLECTING_PORTS: frozenset[int] = frozenset(
    {
        1194,  # OpenVPN
        1434,  # MS-SQL monitor
        1701,  # L2TP
        1900,  # SSDP
        3074,  # Xbox Live
        3283,  # Apple Remote Desktop
        3389,  # RDP (UDP)
        3478,  # STUN / TURN
        3702,  # WS-Discovery
        4500,  # IPsec NAT-T
        5060,  # SIP
        5351,  # NAT-PMP
        5353,  # mDNS
        5683,  # CoAP
        8767,  # TeamSpeak
        10001,  # Ubiquiti discovery
        11211,  # memcached
        17185,  # VxWorks WDB
        26000,  # Quake
        27015,  # Steam / Source engine
        33848,  # Jenkins discovery
        37810,  # DVR discovery
    }
)
"""UDP services at or above port 1024 that answer whatever reaches them (reflection/amplification lists)."""

RECEIVED = "received"
REFLECTED = "reflected"
DROPPED_SHORT = "dropped_short"
DROPPED_LONG = "dropped_long"
SEND_FAILED = "send_failed"
REFUSED_PRIVILEGED_PORT = "refused_privileged_port"
REFUSED_SERVICE_PORT = "refused_service_port"
REFUSED_OWN_ADDRESS = "refused_own_address"
REFUSED_BAD_ADDRESS = "refused_bad_address"
RATE_LIMITED = "rate_limited"
COUNTERS: tuple[str, ...] = (
    RECEIVED,
    REFLECTED,
    DROPPED_SHORT,
    DROPPED_LONG,
    SEND_FAILED,
    REFUSED_PRIVILEGED_PORT,
    REFUSED_SERVICE_PORT,
    REFUSED_OWN_ADDRESS,
    REFUSED_BAD_ADDRESS,
    RATE_LIMITED,
)
"""Every counter a reflector keeps, in the order ``reflector.stopped`` shows them."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _source_address(host: str) -> IPAddress | None:
    """The datagram's source as an address (IPv4-mapped IPv6 as IPv4; a scope id dropped), None if unreadable."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _is_bad_source(addr: IPAddress) -> bool:
    if addr.is_multicast or addr.is_unspecified:
        return True
    return isinstance(addr, ipaddress.IPv4Address) and (addr == ipaddress.IPv4Address("255.255.255.255"))


@dataclass(frozen=True, slots=True)
class Admission:
    """Pure: whether a datagram may be answered at all, and if not, the counter that says why."""

    port: int
    listen: str = "0.0.0.0"
    allow_local: bool = False
    reflecting_ports: frozenset[int] = REFLECTING_PORTS

    def refusal(self, host: str, sport: int, info: Received, own: frozenset[IPAddress] = frozenset()) -> str | None:
        """None to answer ``host``:``sport``, else the refusal counter (one of :data:`COUNTERS`).
        ``own``: this host's addresses."""
        if sport < PRIVILEGED_PORTS_BELOW:
            return REFUSED_PRIVILEGED_PORT
        if sport == self.port or sport in self.reflecting_ports:
            return REFUSED_SERVICE_PORT
        src = _source_address(host)
        if src is None or _is_bad_source(src):
            return REFUSED_BAD_ADDRESS
        if self.allow_local:
            return None
        if src.is_loopback or src in own or self._is_own(src, info.local):
            return REFUSED_OWN_ADDRESS
        return None

    def _is_own(self, src: IPAddress, local: str | None) -> bool:
        mine = [a for a in (_source_address(local) if local else None, _source_address(self.listen)) if a]
        return src in mine


@dataclass(slots=True)
class TokenBuckets:
    """One token bucket per source address: ``rate`` tokens a second, at most ``burst`` banked.

    Pure apart from the clock, which the caller passes. The least recently used bucket is forgotten when
    there are ``max_sources``: a forgotten source starts again with a full bucket."""

    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    max_sources: int = MAX_SOURCES
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # source -> (tokens, at)

    def admit(self, source: str, now: float) -> bool:
        """Take one token of ``source``'s bucket if it has one."""
        tokens, at = self._buckets.pop(source, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate)
        ok = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if ok else tokens, now)  # re-inserted: most recently used last
        if len(self._buckets) > self.max_sources:
            del self._buckets[next(iter(self._buckets))]
        return ok

    def __len__(self) -> int:
        return len(self._buckets)


class _CloseAtOnce(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def is_loopback_listen(listen: str) -> bool:
    addr = _source_address(listen)
    return addr is not None and addr.is_loopback


async def local_addresses(ipr: Any) -> frozenset[IPAddress]:
    """Every address of the namespace ``ipr`` (pyroute2's AsyncIPRoute) talks to: IFA_LOCAL, else
    IFA_ADDRESS (on a point-to-point link IFA_ADDRESS is the peer's)."""
    found: set[IPAddress] = set()
    async for msg in await ipr.get_addr():
        value = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        addr = _source_address(value) if isinstance(value, str) else None
        if addr is not None:
            found.add(addr)
    return frozenset(found)


class Reflector:
    """Listens on ``listen``:``port`` (UDP, STAMP) and on each of ``tcp_ports`` (accept-and-close)."""

    def __init__(
        self,
        listen: str = "0.0.0.0",
        port: int = stamp.DEFAULT_PORT,
        *,
        tcp_ports: tuple[int, ...] = (),
        netns: str | None = None,
        rate: float = DEFAULT_RATE,
        burst: int = DEFAULT_BURST,
        batch: int = DEFAULT_BATCH,
        allow_local: bool | None = None,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0) or burst < 1 or batch < 1:
            raise ProbeError(f"reflector rate {rate}/s, burst {burst} and batch {batch} must be positive")
        self.listen, self.port, self.tcp_ports, self.netns = listen, port, tcp_ports, netns
        self.allow_local = is_loopback_listen(listen) if allow_local is None else allow_local
        self.batch = batch
        self.buckets = TokenBuckets(rate, burst)
        self.admission = Admission(port, listen, self.allow_local)
        self.counters: Counter[str] = Counter()
        self.own: frozenset[IPAddress] = frozenset()
        self._ipr: Any = None
        self._watch: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self._servers: list[asyncio.base_events.Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ancspace = ancillary_space()

    @property
    def udp_port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the reflector is not started")
        return int(self._sock.getsockname()[1])

    def report(self) -> dict[str, int]:
        """Every counter, refusal reasons included, zeros too (for ``reflector.stopped``)."""
        return {name: self.counters[name] for name in COUNTERS} | dict(self.counters)

    async def start(self) -> None:
        family = family_of(self.listen)
        with entered(self.netns):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            tcp_socks: list[socket.socket] = []
            try:
                sock.setblocking(False)
                if family == socket.AF_INET6:  # IPv6 only: an IPv4 reflector may listen on the same port
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((self.listen, self.port))  # no SO_REUSEADDR: a second reflector must fail here
                enable_receive_info(sock, ttl=True, tos=True, pktinfo=True)
                for tcp_port in self.tcp_ports:
                    t = socket.socket(family, socket.SOCK_STREAM)
                    tcp_socks.append(t)
                    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if family == socket.AF_INET6:
                        t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
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
        self.admission = Admission(self.udp_port, self.listen, self.allow_local)  # port 0: the one bound
        if not self.allow_local:
            try:
                await self._open_netlink()
                self.own = await local_addresses(self._ipr)
            except BaseException:
                for t in tcp_socks:
                    t.close()
                self.close()
                raise
            self._watch = asyncio.create_task(self._refresh_addresses())
        self._loop.add_reader(sock.fileno(), self._readable)
        for t in tcp_socks:
            self._servers.append(await self._loop.create_server(_CloseAtOnce, sock=t))

    async def _open_netlink(self) -> None:
        # flags=0: a mistyped namespace must not be created (pyroute2 0.9 defaults to O_CREAT)
        ipr = AsyncIPRoute() if self.netns is None else AsyncIPRoute(netns=self.netns, flags=0)
        try:
            await ipr.setup_endpoint()
        except OSError as e:
            ipr.close()
            where = f"network namespace {self.netns}" if self.netns else "this host"
            raise ProbeError(
                f"reflector cannot read the addresses of {where} over netlink ({e}); it needs them to refuse "
                f"datagrams from its own addresses: check --netns, or give --allow-local"
            ) from None
        self._ipr = ipr

    async def _refresh_addresses(self) -> None:
        while True:
            await asyncio.sleep(ADDRESS_REFRESH_S)
            try:
                self.own = await local_addresses(self._ipr)
            except Exception:  # NetlinkError, OSError, ...: keep the last set; the next round tries again
                self.counters["address_refresh_failed"] += 1

    def answer(
        self, data: bytes, info: Received, addr: tuple[str, int], *, truncated: bool = False, now: float | None = None
    ) -> bytes | None:
        """The answer to one datagram from ``addr``, or None (and the counter of the reason). No I/O."""
        self.counters[RECEIVED] += 1
        refusal = self.admission.refusal(addr[0], addr[1], info, self.own)
        if refusal is None and (len(data) < stamp.PACKET_LEN or truncated):
            refusal = DROPPED_SHORT if len(data) < stamp.PACKET_LEN else DROPPED_LONG
        if refusal is None and not self.buckets.admit(addr[0], time.monotonic() if now is None else now):
            refusal = RATE_LIMITED
        if refusal is not None:
            self.counters[refusal] += 1
            return None
        received_ns = int(info.at * 1e9) if info.at is not None else time.time_ns()
        return stamp.reflect(
            data,
            received_ntp=stamp.ntp_from_unix_ns(received_ns),
            sent_ntp=stamp.ntp_from_unix_ns(time.time_ns()),
            ttl=255 if info.ttl is None else info.ttl,
        )

    def _readable(self) -> None:
        """At most ``batch`` datagrams, then back to the event loop (which calls again while more wait)."""
        sock = self._sock
        assert sock is not None
        for _ in range(self.batch):
            try:
                data, anc, flags, addr = sock.recvmsg(MAX_DATAGRAM, self._ancspace)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # a queued socket error: reported once; the loop calls back for the rest
                return
            info = parse_ancillary(anc)
            answer = self.answer(data, info, (addr[0], addr[1]), truncated=bool(flags & socket.MSG_TRUNC))
            if answer is None:
                continue
            try:
                sock.sendmsg([answer], reply_ancillary(sock.family, local=info.local, tos=info.tos), 0, addr)
            except OSError:
                self.counters[SEND_FAILED] += 1
            else:
                self.counters[REFLECTED] += 1

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._ipr is not None:
            with contextlib.suppress(OSError):
                self._ipr.close()
            self._ipr = None
        for server in self._servers:
            server.close()
        self._servers.clear()
        if self._sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
