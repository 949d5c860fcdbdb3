"""Linux socket options the probes need, and the parsing of what they hand back (ancillary data).

Clock: every timestamp here is CLOCK_REALTIME, in float seconds since the Unix epoch. Receive times are
the kernel's (SO_TIMESTAMPNS: stamped when the packet reached the socket layer, before any wake-up of
this process). Send times of the datagram probes are the kernel's as well where it gives them
(SO_TIMESTAMPING software transmit stamps, see :mod:`bgpctl.probe.txstamp`), else :func:`time.time_ns`
read immediately before the send system call. Both sides of an RTT therefore use one clock; a clock step
between them (NTP slew is harmless, a step is not) shows up as one wrong sample.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from bgpctl.errors import ProbeError
from bgpctl.probe.txstamp import (
    SO_TIMESTAMPING,
    TX_STAMP_FLAGS,
    TX_STAMP_FLAGS_RX_FILTERED,
    TxBook,
    parse_tx_stamp,
    tx_ancillary_space,
)

# Linux values (include/uapi/asm-generic/socket.h, linux/in.h); Python's socket module lacks some of them.
SO_TIMESTAMPNS = 35  # = SCM_TIMESTAMPNS (the "old" 64-bit-time variant on 64-bit architectures)
IP_PKTINFO = 8
IP_RECVTTL = 12
IP_RECVTOS = 13
_TIMESPEC = struct.Struct("@qq")
_IN_PKTINFO = struct.Struct("=I4s4s")  # ifindex, spec_dst, addr
_IN6_PKTINFO = struct.Struct("=16sI")  # addr, ifindex

AncData = list[tuple[int, int, bytes]]


@dataclass(frozen=True, slots=True)
class Received:
    """What the kernel says about one received datagram besides its payload."""

    at: float | None  # kernel receive time, CLOCK_REALTIME seconds; None if the kernel gave none
    ttl: int | None = None  # IPv4 TTL / IPv6 hop limit
    tos: int | None = None  # IPv4 TOS byte / IPv6 traffic class (DSCP << 2 | ECN)
    local: str | None = None  # destination address the datagram was sent to (IP_PKTINFO)


def family_of(address: str | IPv4Address | IPv6Address) -> socket.AddressFamily:
    return socket.AF_INET6 if ip_address(str(address)).version == 6 else socket.AF_INET


def tos_from_dscp(dscp: int) -> int:
    if not 0 <= dscp <= 63:
        raise ProbeError(f"DSCP {dscp} is out of range: use 0-63")
    return dscp << 2


def set_dscp(sock: socket.socket, dscp: int) -> None:
    """Mark every packet the socket sends with ``dscp`` (ECN bits 0)."""
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos_from_dscp(dscp))
    else:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos_from_dscp(dscp))


def enable_receive_info(sock: socket.socket, *, ttl: bool = False, tos: bool = False, pktinfo: bool = False) -> None:
    """Kernel receive timestamps always; TTL, TOS and destination address on request."""
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    v6 = sock.family == socket.AF_INET6
    if ttl:
        sock.setsockopt(
            *((socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT) if v6 else (socket.IPPROTO_IP, IP_RECVTTL)), 1
        )
    if tos:
        sock.setsockopt(*((socket.IPPROTO_IPV6, socket.IPV6_RECVTCLASS) if v6 else (socket.IPPROTO_IP, IP_RECVTOS)), 1)
    if pktinfo:
        sock.setsockopt(*((socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO) if v6 else (socket.IPPROTO_IP, IP_PKTINFO)), 1)


def enable_transmit_stamps(sock: socket.socket) -> bool:
    """Ask for numbered software transmit stamps on the error queue; False if the kernel refuses. Where
    the kernel can, received packets are spared a second (SCM_TIMESTAMPING) receive stamp."""
    for flags in (TX_STAMP_FLAGS_RX_FILTERED, TX_STAMP_FLAGS):
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
        except OSError:
            continue
        return True
    return False


def restart_transmit_stamps(sock: socket.socket) -> bool:
    """Switch the stamps off and on: the kernel numbers the next packet 0 again. False if refused."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, 0)
    except OSError:
        return False
    return enable_transmit_stamps(sock)


def read_tx_stamps(sock: socket.socket, book: TxBook, *, once: bool = False) -> list[int | None]:
    """Read the socket's error queue without waiting (one message, or until it is empty) and hand every
    transmit stamp to ``book``. One entry per message read: the probe sequence number the stamp was
    matched to, or None (not a transmit stamp, or matched no probe)."""
    space = tx_ancillary_space()
    out: list[int | None] = []
    while True:
        try:
            _, anc, _, _ = sock.recvmsg(1, space, socket.MSG_ERRQUEUE)
        except (BlockingIOError, InterruptedError):
            return out
        except OSError:
            return out
        stamp = parse_tx_stamp(anc)
        out.append(None if stamp is None else book.stamped(stamp))
        if once:
            return out


def ancillary_space() -> int:
    """Buffer size for recvmsg() that holds every control message enable_receive_info() can turn on, and
    the SCM_TIMESTAMPING (3 timespecs) the kernel adds to received packets once transmit stamps are on."""
    return (
        socket.CMSG_SPACE(_TIMESPEC.size)
        + socket.CMSG_SPACE(3 * _TIMESPEC.size)
        + 2 * socket.CMSG_SPACE(4)
        + socket.CMSG_SPACE(_IN6_PKTINFO.size)
    )


def parse_ancillary(ancdata: Iterable[tuple[int, int, bytes]]) -> Received:
    """Pure: turn recvmsg()'s control messages into a :class:`Received`."""
    at: float | None = None
    ttl: int | None = None
    tos: int | None = None
    local: str | None = None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            at = sec + nsec / 1e9
        elif level == socket.IPPROTO_IP:
            if kind == socket.IP_TTL and len(data) >= 4:
                ttl = struct.unpack_from("@i", data)[0]
            elif kind == socket.IP_TOS and len(data) >= 1:
                tos = data[0]
            elif kind == IP_PKTINFO and len(data) >= _IN_PKTINFO.size:
                _, _, addr = _IN_PKTINFO.unpack_from(data)
                local = str(IPv4Address(addr))
        elif level == socket.IPPROTO_IPV6:
            if kind == socket.IPV6_HOPLIMIT and len(data) >= 4:
                ttl = struct.unpack_from("@i", data)[0]
            elif kind == socket.IPV6_TCLASS and len(data) >= 4:
                tos = struct.unpack_from("@i", data)[0]
            elif kind == socket.IPV6_PKTINFO and len(data) >= _IN6_PKTINFO.size:
                addr6, _ = _IN6_PKTINFO.unpack_from(data)
                local = str(IPv6Address(addr6))
    return Received(at=at, ttl=ttl, tos=tos, local=local)


def reply_ancillary(family: socket.AddressFamily, *, local: str | None, tos: int | None) -> AncData:
    """Control messages for sendmsg(): send from ``local`` (IP_PKTINFO) with TOS/traffic class ``tos``."""
    out: AncData = []
    if family == socket.AF_INET6:
        if local is not None:
            out.append((socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, _IN6_PKTINFO.pack(IPv6Address(local).packed, 0)))
        if tos is not None:
            out.append((socket.IPPROTO_IPV6, socket.IPV6_TCLASS, struct.pack("@i", tos)))
    else:
        if local is not None:
            out.append((socket.IPPROTO_IP, IP_PKTINFO, _IN_PKTINFO.pack(0, IPv4Address(local).packed, bytes(4))))
        if tos is not None:
            out.append((socket.IPPROTO_IP, socket.IP_TOS, bytes([tos & 0xFF])))
    return out
