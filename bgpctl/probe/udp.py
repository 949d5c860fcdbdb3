"""STAMP Session-Sender (RFC 8762, unauthenticated, stateless): UDP probes any STAMP or TWAMP-light
reflector answers, bgpctl's own (``bgpctl reflector``) included.

The reply's ``received`` time is the kernel's receive time (T4) minus the time the probe spent inside the
reflector (T3 - T2, both on the reflector's clock), so that ``received - sent`` is RFC 8762's round trip
``(T4 - T1) - (T3 - T2)``: the network's share only, without the reflector's scheduling delays. A
reflector that does not fill T2/T3 sensibly gets the plain ``T4 - T1``.

The socket is bound to the path's probe source address (which is what pins it to the path) and left
unconnected, so that replies from anywhere reach it and a spoofed one is counted, not silently dropped.
"""

from __future__ import annotations

import socket
import time
from ipaddress import ip_address

from bgpctl.policy.model import ProbeProtocol
from bgpctl.probe import stamp
from bgpctl.probe.datagram import Address, Ancillary, DatagramProbe
from bgpctl.probe.protocol import ProbeResult, Problem
from bgpctl.probe.sockopt import family_of, parse_ancillary

_RING = 4096  # sent timestamps remembered for the echo check (> timeout / interval for any policy)
_SEQ_MOD = 1 << 32
_MSG_TRUNC = int(socket.MSG_TRUNC)  # a plain int: flag enums are slow on the per-packet path


def widen_seq(short: int, last_sent: int, modulus: int) -> int:
    """The full sequence number whose low bits are ``short``, at or before ``last_sent`` (pure).

    A value "ahead" of ``last_sent`` maps far into the past, where the scheduler reports it as unknown.
    """
    return last_sent - ((last_sent - short) % modulus)


class StampProbe(DatagramProbe):
    """One STAMP session: bound to ``source``, probing ``target``:``port``, marked with ``dscp``."""

    kind = ProbeProtocol.UDP

    def __init__(
        self,
        *,
        source: str,
        target: str,
        port: int = stamp.DEFAULT_PORT,
        dscp: int = 0,
        length: int = stamp.PACKET_LEN,
        netns: str | None = None,
    ) -> None:
        if length < stamp.PACKET_LEN:
            raise stamp.StampFormatError(f"STAMP packets are at least {stamp.PACKET_LEN} octets, not {length}")
        super().__init__()
        self.source, self.target, self.port, self.dscp = source, target, port, dscp
        self.length = length
        self.netns = netns
        self.recv_size = length + 512
        self._target_str = str(ip_address(target))  # the kernel's spelling of the address
        self._last_sent = -1
        self._sent_ntp: list[tuple[int, int]] = [(-1, 0)] * _RING

    @property
    def local_port(self) -> int:
        if self._sock is None:
            raise RuntimeError("the probe is not open")
        return int(self._sock.getsockname()[1])

    def _new_socket(self) -> socket.socket:
        return socket.socket(family_of(self.source), socket.SOCK_DGRAM)

    def send(self, seq: int) -> float:
        assert self._sock is not None, "open() first"
        now_ns = time.time_ns()
        ntp = stamp.ntp_from_unix_ns(now_ns)
        data = stamp.encode_sender(stamp.SenderPacket(seq % _SEQ_MOD, ntp), self.length)
        sent = self._transmit(seq, data, (self.target, self.port), now_ns)
        self._last_sent = max(self._last_sent, seq)
        self._sent_ntp[seq % _RING] = (seq, ntp)
        return sent

    def _judge(
        self, data: bytes, flags: int, addr: Address, anc: Ancillary
    ) -> tuple[Problem | None, ProbeResult | None]:
        return self.check(data, flags, addr, anc)

    def check(
        self, data: bytes, flags: int, addr: Address, anc: Ancillary
    ) -> tuple[Problem | None, ProbeResult | None]:
        """Validate one datagram; pure apart from reading what this probe sent."""
        if addr[0] != self._target_str or addr[1] != self.port:
            return Problem.WRONG_SOURCE, None
        if len(data) < stamp.PACKET_LEN:
            return Problem.TRUNCATED, None
        if len(data) != self.length or flags & _MSG_TRUNC:
            return Problem.WRONG_SIZE, None
        fields = stamp.reply_fields(data)
        seq = widen_seq(fields.sender_seq, self._last_sent, _SEQ_MOD)
        remembered_seq, remembered_ntp = self._sent_ntp[seq % _RING]
        if remembered_seq == seq and remembered_ntp != fields.sender_timestamp:
            return Problem.MALFORMED, None  # right number, but not the packet we sent
        at = parse_ancillary(anc).at
        received = time.time() if at is None else at
        if remembered_seq != seq:
            return None, ProbeResult(seq, received)
        # The sample's RTT becomes RFC 8762's (T4 - T1) - (T3 - T2): network time only. T1 is the kernel's
        # transmit time if it came (the packet carries the user-space one, read before the send).
        kernel_at = self._send_time(seq)
        sent = stamp.unix_ns_from_ntp(remembered_ntp) / 1e9 if kernel_at is None else kernel_at
        received = sent + stamp.round_trip_s(sent, received, fields)
        return None, ProbeResult(seq, received, sent=kernel_at)
