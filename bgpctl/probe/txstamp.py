"""Kernel transmit timestamps for the datagram probes (pure: no I/O, no clock).

A user-space send time, taken before the send system call, carries every delay between that moment and
the packet leaving: a preemption by another task, the system call itself, the qdisc. Under CPU load that
delay is milliseconds and varies from probe to probe, so it shows up as RTT and jitter the network does
not have (issue 12). The kernel can instead report when the packet was handed to the device driver
(``SOF_TIMESTAMPING_TX_SOFTWARE``: ``skb_tx_timestamp()`` in the driver's transmit routine, which veth
and loopback call too). The report comes back on the socket's error queue (``recvmsg(MSG_ERRQUEUE)``)
as two control messages:

* ``SCM_TIMESTAMPING`` (SOL_SOCKET): three ``struct timespec``; the first is the software stamp,
  CLOCK_REALTIME, the clock of the receive stamps (SO_TIMESTAMPNS);
* ``IP_RECVERR`` / ``IPV6_RECVERR``: a ``struct sock_extended_err`` with ``ee_errno`` ENOMSG,
  ``ee_origin`` SO_EE_ORIGIN_TIMESTAMPING, ``ee_info`` the stamp kind (SCM_TSTAMP_SND) and, with
  ``SOF_TIMESTAMPING_OPT_ID``, ``ee_data``: the socket's count of packets sent before this one (32 bits,
  from 0 when the option was switched on).

:func:`parse_tx_stamp` reads those messages; :class:`TxBook` pairs the counter with probe sequence
numbers. A probe whose stamp has not come (a kernel or device without software transmit stamps, a
full error queue) keeps its user-space send time, and the probe counts it
(:attr:`~bgpctl.probe.protocol.Problem.USER_TX_STAMP`).
"""

from __future__ import annotations

import errno
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

# include/uapi/asm-generic/socket.h, linux/net_tstamp.h, linux/errqueue.h, linux/in.h, linux/in6.h
SO_TIMESTAMPING = 37  # = SCM_TIMESTAMPING ("old" variant: 64-bit time_t on 64-bit architectures)
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
SOF_TIMESTAMPING_OPT_RX_FILTER = 1 << 17
TX_STAMP_FLAGS = (
    SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY
)
"""Software transmit stamps, numbered (OPT_ID), without a copy of the packet (OPT_TSONLY)."""
TX_STAMP_FLAGS_RX_FILTERED = TX_STAMP_FLAGS | SOF_TIMESTAMPING_OPT_RX_FILTER
"""The same, and no SCM_TIMESTAMPING on received packets (their SO_TIMESTAMPNS stamp is read): kernels
6.12 and later; older ones refuse the flag."""
IP_RECVERR = 11
IPV6_RECVERR = 25
SO_EE_ORIGIN_TIMESTAMPING = 4
SCM_TSTAMP_SND = 0

_SCM_TIMESTAMPING = struct.Struct("@qqqqqq")  # struct scm_timestamping: ts[3]
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # ee_errno, ee_origin, ee_type, ee_code, ee_pad, ee_info, ee_data
_KEY_MOD = 1 << 32


def tx_ancillary_space() -> int:
    """Buffer size for recvmsg(MSG_ERRQUEUE): SCM_TIMESTAMPNS, SCM_TIMESTAMPING and the extended error
    with the largest offender address (sockaddr_in6)."""
    timespec, sockaddr_in6 = 16, 28
    return (
        socket.CMSG_SPACE(timespec)
        + socket.CMSG_SPACE(_SCM_TIMESTAMPING.size)
        + socket.CMSG_SPACE(_EXTENDED_ERR.size + sockaddr_in6)
    )


@dataclass(frozen=True, slots=True)
class TxStamp:
    """One software transmit stamp: the packet's OPT_ID number and when it went to the driver."""

    key: int
    at: float  # CLOCK_REALTIME seconds


def _is_extended_error(level: int, kind: int) -> bool:
    return (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR))


def parse_tx_stamp(ancdata: Iterable[tuple[int, int, bytes]]) -> TxStamp | None:
    """Pure: the software transmit stamp in one error-queue message's control messages, or None if the
    message is something else (an ICMP error, a stamp of another kind, an empty software stamp)."""
    at: float | None = None
    key: int | None = None
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(data) >= _SCM_TIMESTAMPING.size:
            sec, nsec = _SCM_TIMESTAMPING.unpack_from(data)[:2]
            if sec or nsec:
                at = sec + nsec / 1e9
        elif _is_extended_error(level, kind) and len(data) >= _EXTENDED_ERR.size:
            ee_errno, origin, _, _, _, info, ee_data = _EXTENDED_ERR.unpack_from(data)
            if ee_errno == errno.ENOMSG and origin == SO_EE_ORIGIN_TIMESTAMPING and info == SCM_TSTAMP_SND:
                key = ee_data
    if at is None or key is None:
        return None
    return TxStamp(key, at)


class TxBook:
    """Pure: which probe each numbered transmit stamp belongs to, and the stamps received.

    The kernel numbers the packets a socket sends from 0 (OPT_ID); :meth:`sent` is told of every
    successful send in order, so the n-th one is packet n. A failed send may or may not have used a
    number, so the caller switches the numbering off and on again (the kernel restarts it at 0) and
    calls :meth:`restart`. A stamp is taken only if it is no earlier than the probe's user-space send
    time (read before the send, on the same clock): a stale number from before a restart cannot pass as
    the stamp of a probe sent after it was taken.
    """

    def __init__(self, ring: int = 4096) -> None:
        self._ring = ring
        self._next_key = 0
        self._by_key: list[tuple[int, int]] = [(-1, -1)] * ring  # key % ring -> (key, seq)
        self._by_seq: list[tuple[int, float, float | None]] = [(-1, 0.0, None)] * ring  # -> (seq, user, kernel)
        self.unmatched = 0  # stamps that matched no probe (stale, or numbered before a restart)

    def sent(self, seq: int, user_at: float) -> None:
        """Probe ``seq`` went out (the send call succeeded); ``user_at`` is its user-space send time."""
        key = self._next_key
        self._next_key = (key + 1) % _KEY_MOD
        self._by_key[key % self._ring] = (key, seq)
        self._by_seq[seq % self._ring] = (seq, user_at, None)

    def restart(self) -> None:
        """The socket's numbering was switched off and on: the next packet is number 0 again."""
        self._next_key = 0
        self._by_key = [(-1, -1)] * self._ring

    def stamped(self, stamp: TxStamp) -> int | None:
        """Record ``stamp``; returns the probe's sequence number, or None if it matched none."""
        key, seq = self._by_key[stamp.key % self._ring]
        known, user_at, _ = self._by_seq[seq % self._ring] if seq >= 0 else (-1, 0.0, None)
        if key != stamp.key or known != seq or stamp.at < user_at:
            self.unmatched += 1
            return None
        self._by_seq[seq % self._ring] = (seq, user_at, stamp.at)
        return seq

    def knows(self, seq: int) -> bool:
        """Probe ``seq`` was sent by this socket, recently enough to be remembered."""
        return self._by_seq[seq % self._ring][0] == seq

    def kernel_at(self, seq: int) -> float | None:
        """The kernel's transmit time of probe ``seq``, if its stamp has come."""
        known, _, at = self._by_seq[seq % self._ring]
        return at if known == seq else None
