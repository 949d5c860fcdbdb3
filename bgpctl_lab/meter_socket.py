"""UDP sockets for the meter and its responder: made inside a network namespace, with kernel timestamps.

* A socket keeps the namespace it was created in, so ``udp_sockets(netns, ...)`` switches a short-lived
  thread into the namespace (``setns`` changes only the calling thread), creates and binds the sockets
  there and lets the thread end; the caller's own threads never leave their namespace.
* Receive times come from the kernel (``SO_TIMESTAMPNS``: stamped when the packet reached the socket
  layer), so a busy Python loop that reads a packet late does not make the network look slow.
* The responder learns which local address a probe was sent to (``IP_PKTINFO``/``IPV6_PKTINFO``) and
  answers from that address, so an anycast address on ``lo`` answers as itself.
* ``realtime()`` puts the calling thread under SCHED_FIFO when allowed: on a loaded 2-core machine a
  normal thread can be held off the CPU for several milliseconds, which the meter would report as a gap.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pyroute2 import netns as pr_netns

from bgpctl.errors import ProbeError

# Linux values Python's socket module does not export (asm-generic/socket.h, linux/in.h).
SO_TIMESTAMPNS = 35  # SO_TIMESTAMPNS_OLD: struct timespec of two native longs on 64-bit
IP_PKTINFO = 8
_TIMESPEC = struct.Struct("@qq")
_IN_PKTINFO = struct.Struct("@i4s4s")  # ifindex, spec_dst, addr
_IN6_PKTINFO = struct.Struct("@16si")  # addr, ifindex
# SCM_TIMESTAMPNS, PKTINFO, and the SCM_TIMESTAMPING (3 timespecs) a kernel before 6.12 adds to received
# packets once the meter has turned transmit stamps on (bgpctl.probe.sockopt.enable_transmit_stamps)
_ANC_SPACE = (
    socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_IN6_PKTINFO.size) + socket.CMSG_SPACE(3 * _TIMESPEC.size)
)
RECV_BYTES = 2048
RT_PRIORITY = 10  # low among real-time priorities: above every normal task, below kernel RT threads


@dataclass(frozen=True, slots=True)
class Received:
    """One datagram: its bytes, who sent it, when the kernel got it, and which local address it was for."""

    data: bytes
    peer: tuple[str, int]
    rx_ns: int
    kernel_stamp: bool
    local: bytes | None  # packed local address the datagram was sent to (when PKTINFO is on)
    ifindex: int


def family_of(address: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError as e:
        raise ProbeError(f"{address!r} is not an IP address; give a literal IPv4 or IPv6 address") from e


def _in_netns(
    netns: str | None, make: list[tuple[str, int]], family: socket.AddressFamily, dscp: int | None, pktinfo: bool
) -> list[socket.socket]:
    """Create and bind one UDP socket per (address, port) in ``make``, inside ``netns`` (None: here)."""
    out: list[socket.socket] = []
    error: list[BaseException] = []

    def work() -> None:
        try:
            if netns is not None:
                try:
                    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
                except FileNotFoundError:
                    raise ProbeError(
                        f"network namespace {netns!r} does not exist; start the lab first "
                        f"(`ip netns list` shows what exists)"
                    ) from None
                try:
                    pr_netns.setns(fd)  # an fd: pyroute2 neither creates nor closes it
                finally:
                    os.close(fd)
            for addr, port in make:
                out.append(_make(family, addr, port, dscp, pktinfo))
        except BaseException as e:
            error.append(e)

    t = threading.Thread(target=work, name=f"netns-{netns}", daemon=True)
    t.start()
    t.join()
    if error:
        for s in out:
            s.close()
        e = error[0]
        if isinstance(e, ProbeError):
            raise e
        raise ProbeError(f"cannot open UDP sockets in namespace {netns or '(current)'}: {e}") from e
    return out


def _make(family: socket.AddressFamily, addr: str, port: int, dscp: int | None, pktinfo: bool) -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if dscp is not None:
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, dscp << 2)
            else:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, dscp << 2)
        if pktinfo:
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            else:
                s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((addr, port))
        s.setblocking(False)
    except BaseException:
        s.close()
        raise
    return s


def sender_sockets(netns: str | None, target: str, flows: int, dscp: int) -> list[socket.socket]:
    """``flows`` sockets on distinct ephemeral source ports, in ``netns``, for probes to ``target``."""
    family = family_of(target)
    wildcard = "::" if family == socket.AF_INET6 else "0.0.0.0"
    return _in_netns(netns, [(wildcard, 0)] * flows, family, dscp, pktinfo=False)


def responder_sockets(netns: str | None, binds: list[str], port: int) -> list[socket.socket]:
    """One socket per bind address, in ``netns``, reporting each datagram's local address."""
    out: list[socket.socket] = []
    try:
        for b in binds:
            out.extend(_in_netns(netns, [(b, port)], family_of(b), None, pktinfo=True))
    except BaseException:
        for s in out:
            s.close()
        raise
    return out


def receive(s: socket.socket) -> Received | None:
    """One datagram from a non-blocking socket, or None when nothing is waiting."""
    try:
        data, anc, _flags, peer = s.recvmsg(RECV_BYTES, _ANC_SPACE)
    except (BlockingIOError, InterruptedError):
        return None
    except ConnectionRefusedError:  # an ICMP error queued on the socket: not a datagram
        return None
    rx_ns: int | None = None
    local: bytes | None = None
    ifindex = 0
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(value)
            rx_ns = sec * 1_000_000_000 + nsec
        elif level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= _IN_PKTINFO.size:
            ifindex, _spec, local = _IN_PKTINFO.unpack_from(value)
        elif level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(value) >= _IN6_PKTINFO.size:
            local, ifindex = _IN6_PKTINFO.unpack_from(value)
    stamped = rx_ns is not None
    return Received(
        data, (str(peer[0]), int(peer[1])), rx_ns if rx_ns is not None else time.time_ns(), stamped, local, ifindex
    )


def reply(s: socket.socket, data: bytes, to: Received) -> None:
    """Send ``data`` back to ``to.peer`` from the local address ``to`` was sent to."""
    anc: list[tuple[int, int, bytes]] = []
    if to.local is not None:
        if s.family == socket.AF_INET6:
            anc.append((socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, _IN6_PKTINFO.pack(to.local, to.ifindex)))
        else:
            anc.append((socket.IPPROTO_IP, IP_PKTINFO, _IN_PKTINFO.pack(0, to.local, bytes(4))))
    s.sendmsg([data], anc, 0, to.peer)


@contextlib.contextmanager
def realtime(enabled: bool) -> Iterator[bool]:
    """Run the calling thread under SCHED_FIFO (when ``enabled`` and permitted); yields whether it is."""
    if not enabled:
        yield False
        return
    before = os.sched_getscheduler(0)
    param = os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))
    except OSError:  # not root / no CAP_SYS_NICE / RT bandwidth refused: run as a normal thread
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, before, param)
