"""ICMP echo probes over a raw socket bound to the path's probe source address (IPv4).

Packets are built and checked by the pure helpers below. The payload carries the full 64-bit sequence
number (the ICMP header holds only its low 16 bits), padded to ``size`` octets like ping's 56.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from ipaddress import IPv4Address, ip_address

from bgpctl.errors import ProbeError
from bgpctl.policy.model import ProbeProtocol
from bgpctl.probe.datagram import Address, Ancillary, DatagramProbe
from bgpctl.probe.protocol import ProbeResult, Problem
from bgpctl.probe.sockopt import parse_ancillary

ECHO_REPLY, ECHO_REQUEST = 0, 8
DEFAULT_PAYLOAD = 56
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_SEQ = struct.Struct("!Q")
SOL_RAW, ICMP_FILTER = 255, 1


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def build_echo(identifier: int, seq: int, payload_len: int = DEFAULT_PAYLOAD) -> bytes:
    """An ICMP echo request (header + payload) carrying ``seq`` in full in its first 8 payload octets."""
    if payload_len < _SEQ.size:
        raise ProbeError(f"ICMP probe payload must be at least {_SEQ.size} octets, not {payload_len}")
    payload = _SEQ.pack(seq) + bytes(payload_len - _SEQ.size)
    header = _HEADER.pack(ECHO_REQUEST, 0, 0, identifier, seq & 0xFFFF)
    csum = checksum(header + payload)
    return _HEADER.pack(ECHO_REQUEST, 0, csum, identifier, seq & 0xFFFF) + payload


def parse_reply(
    packet: bytes, *, identifier: int, target: IPv4Address, payload_len: int
) -> tuple[Problem | None, int | None]:
    """Check one raw IPv4 datagram (IP header included) as an echo reply to us.

    Returns (problem, None) for a reply to be counted and dropped, (None, seq) for a good one, and
    (None, None) for ICMP that is simply not ours (another type, or another pinger's identifier).
    """
    if len(packet) < 20:
        return Problem.TRUNCATED, None
    ihl = (packet[0] & 0x0F) * 4
    icmp = packet[ihl:]
    if len(icmp) < _HEADER.size:
        return Problem.TRUNCATED, None
    kind, code, _, ident, short_seq = _HEADER.unpack_from(icmp)
    if kind != ECHO_REPLY or ident != identifier:
        return None, None
    if IPv4Address(packet[12:16]) != target:
        return Problem.WRONG_SOURCE, None
    if len(icmp) < _HEADER.size + _SEQ.size:
        return Problem.TRUNCATED, None
    if len(icmp) != _HEADER.size + payload_len:
        return Problem.WRONG_SIZE, None
    if code != 0 or checksum(icmp) != 0:
        return Problem.MALFORMED, None
    (seq,) = _SEQ.unpack_from(icmp, _HEADER.size)
    if seq & 0xFFFF != short_seq:
        return Problem.MALFORMED, None
    return None, seq


class IcmpProbe(DatagramProbe):
    kind = ProbeProtocol.ICMP

    def __init__(
        self,
        *,
        source: str,
        target: str,
        dscp: int = 0,
        payload_len: int = DEFAULT_PAYLOAD,
        netns: str | None = None,
        identifier: int | None = None,
    ) -> None:
        if ip_address(target).version != 4 or ip_address(source).version != 4:
            raise ProbeError(
                f"ICMP probes are IPv4 only for now ({source} -> {target}): use protocol udp (STAMP) for IPv6 targets"
            )
        super().__init__()
        self.source, self.target, self.dscp, self.payload_len = source, target, dscp, payload_len
        self.netns = netns
        self.identifier = random.SystemRandom().randrange(1, 0x10000) if identifier is None else identifier
        self._target_ip = IPv4Address(target)

    def _new_socket(self) -> socket.socket:
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        except PermissionError:
            raise ProbeError("ICMP probes need a raw socket: run as root or with CAP_NET_RAW") from None

    def _configure(self, sock: socket.socket) -> None:
        # Only echo replies wake us up: the filter is a bit mask of ICMP types to block.
        sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << ECHO_REPLY) & 0xFFFFFFFF))

    def send(self, seq: int) -> float:
        assert self._sock is not None, "open() first"
        packet = build_echo(self.identifier, seq, self.payload_len)
        return self._transmit(seq, packet, (self.target, 0), time.time_ns())

    def _judge(
        self, data: bytes, flags: int, addr: Address, anc: Ancillary
    ) -> tuple[Problem | None, ProbeResult | None]:
        problem, seq = parse_reply(
            data, identifier=self.identifier, target=self._target_ip, payload_len=self.payload_len
        )
        if problem is not None or seq is None:
            return problem, None
        at = parse_ancillary(anc).at
        return None, ProbeResult(seq, time.time() if at is None else at)
