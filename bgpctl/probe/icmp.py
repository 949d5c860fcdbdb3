"""ICMP echo probes over a raw socket bound to the path's probe source address: ICMP over IPv4, ICMPv6 over
IPv6 (RFC 4443 echo, types 128/129), the family being the addresses'.

Packets are built and checked by the pure helpers below. The payload carries the full 64-bit sequence
number (the ICMP header holds only its low 16 bits), padded to ``size`` octets like ping's 56.

IPv4: the raw socket hands us the whole datagram (IP header included); we compute and check the RFC 1071
checksum. IPv6: the socket hands us the ICMPv6 message only, the source address comes with recvmsg(); the
kernel fills in the checksum of what we send (it covers a pseudo-header with both addresses, RFC 4443 2.3),
and we check a reply's ourselves over the same pseudo-header (target -> our probe source).
"""

from __future__ import annotations

import random
import socket
import struct
import time
from ipaddress import IPv4Address, IPv6Address, ip_address

from bgpctl.errors import ProbeError
from bgpctl.policy.model import ProbeProtocol
from bgpctl.probe.datagram import Address, Ancillary, DatagramProbe
from bgpctl.probe.protocol import ProbeResult, Problem
from bgpctl.probe.sockopt import parse_ancillary

ECHO_REPLY, ECHO_REQUEST = 0, 8
ECHO6_REQUEST, ECHO6_REPLY = 128, 129
DEFAULT_PAYLOAD = 56
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_SEQ = struct.Struct("!Q")
SOL_RAW, ICMP_FILTER = 255, 1
ICMP6_FILTER = 1  # at level IPPROTO_ICMPV6: struct icmp6_filter, 256 bits, a set bit blocks that type
_ICMP6_FILTER = struct.Struct("=8I")
_PSEUDO6 = struct.Struct("!16s16sI3xB")  # source, destination, upper-layer length, zero, next header


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def build_echo(identifier: int, seq: int, payload_len: int = DEFAULT_PAYLOAD, *, v6: bool = False) -> bytes:
    """An ICMP echo request (header + payload) carrying ``seq`` in full in its first 8 payload octets. For
    ICMPv6 (``v6``) the checksum is left 0: the kernel computes it over the pseudo-header."""
    if payload_len < _SEQ.size:
        raise ProbeError(f"ICMP probe payload must be at least {_SEQ.size} octets, not {payload_len}")
    payload = _SEQ.pack(seq) + bytes(payload_len - _SEQ.size)
    kind = ECHO6_REQUEST if v6 else ECHO_REQUEST
    header = _HEADER.pack(kind, 0, 0, identifier, seq & 0xFFFF)
    if v6:
        return header + payload
    csum = checksum(header + payload)
    return _HEADER.pack(kind, 0, csum, identifier, seq & 0xFFFF) + payload


def checksum6(message: bytes, source: IPv6Address, destination: IPv6Address) -> int:
    """The RFC 1071 sum of an ICMPv6 message over its RFC 8200 8.1 pseudo-header: 0 for an intact one."""
    pseudo = _PSEUDO6.pack(source.packed, destination.packed, len(message), socket.IPPROTO_ICMPV6)
    return checksum(pseudo + message)


def icmp6_filter(*passed: int) -> bytes:
    """struct icmp6_filter that blocks every ICMPv6 type but ``passed`` (Linux: a set bit blocks)."""
    words = [0xFFFFFFFF] * 8
    for kind in passed:
        words[kind >> 5] &= ~(1 << (kind & 31)) & 0xFFFFFFFF
    return _ICMP6_FILTER.pack(*words)


def parse_reply6(
    message: bytes, sender: str, *, identifier: int, target: IPv6Address, local: IPv6Address, payload_len: int
) -> tuple[Problem | None, int | None]:
    """Check one ICMPv6 message from ``sender`` (as recvmsg() gave it: no IP header) as an echo reply to us,
    with :func:`parse_reply`'s answers."""
    if len(message) < _HEADER.size:
        return Problem.TRUNCATED, None
    kind, code, _, ident, short_seq = _HEADER.unpack_from(message)
    if kind != ECHO6_REPLY or ident != identifier:
        return None, None
    try:
        source = IPv6Address(sender.partition("%")[0])
    except ValueError:
        return Problem.WRONG_SOURCE, None
    if source != target:
        return Problem.WRONG_SOURCE, None
    if len(message) < _HEADER.size + _SEQ.size:
        return Problem.TRUNCATED, None
    if len(message) != _HEADER.size + payload_len:
        return Problem.WRONG_SIZE, None
    if code != 0 or checksum6(message, source, local) != 0:
        return Problem.MALFORMED, None
    (seq,) = _SEQ.unpack_from(message, _HEADER.size)
    if seq & 0xFFFF != short_seq:
        return Problem.MALFORMED, None
    return None, seq


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
        target_ip, source_ip = ip_address(target), ip_address(source)
        if target_ip.version != source_ip.version:
            raise ProbeError(
                f"ICMP probe from {source} to {target}: the probe source and the target must be of one family"
            )
        super().__init__()
        self.source, self.target, self.dscp, self.payload_len = source, target, dscp, payload_len
        self.netns = netns
        self.identifier = random.SystemRandom().randrange(1, 0x10000) if identifier is None else identifier
        self._v6 = target_ip.version == 6
        self._target_ip = target_ip
        self._local_ip = source_ip

    def _new_socket(self) -> socket.socket:
        family, proto = (socket.AF_INET6, socket.IPPROTO_ICMPV6) if self._v6 else (socket.AF_INET, socket.IPPROTO_ICMP)
        try:
            return socket.socket(family, socket.SOCK_RAW, proto)
        except PermissionError:
            raise ProbeError("ICMP probes need a raw socket: run as root or with CAP_NET_RAW") from None

    def _configure(self, sock: socket.socket) -> None:
        # Only echo replies wake us up: the filters are bit masks of the ICMP types to block.
        if self._v6:
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, icmp6_filter(ECHO6_REPLY))
        else:
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("I", ~(1 << ECHO_REPLY) & 0xFFFFFFFF))

    def send(self, seq: int) -> float:
        assert self._sock is not None, "open() first"
        packet = build_echo(self.identifier, seq, self.payload_len, v6=self._v6)
        return self._transmit(seq, packet, (self.target, 0), time.time_ns())

    def _judge(
        self, data: bytes, flags: int, addr: Address, anc: Ancillary
    ) -> tuple[Problem | None, ProbeResult | None]:
        if isinstance(self._target_ip, IPv6Address):
            assert isinstance(self._local_ip, IPv6Address)
            problem, seq = parse_reply6(
                data,
                str(addr[0]),
                identifier=self.identifier,
                target=self._target_ip,
                local=self._local_ip,
                payload_len=self.payload_len,
            )
        else:
            problem, seq = parse_reply(
                data, identifier=self.identifier, target=self._target_ip, payload_len=self.payload_len
            )
        if problem is not None or seq is None:
            return problem, None
        at = parse_ancillary(anc).at
        return None, ProbeResult(seq, time.time() if at is None else at)
