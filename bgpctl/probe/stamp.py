"""STAMP (RFC 8762) test packets, unauthenticated mode: pure encode/decode, no I/O.

Both packet kinds are 44 octets (RFC 8762 sections 4.2.1 and 4.3.1); TWAMP-light reflectors use the
same layout, so routers' own reflectors can answer bgpctl's probes.

Session-Sender test packet::

    Sequence Number (4) | Timestamp (8, NTP) | Error Estimate (2) | MBZ (30)

Session-Reflector test packet::

    Sequence Number (4) | Timestamp (8) | Error Estimate (2) | MBZ (2) | Receive Timestamp (8) |
    Session-Sender Sequence Number (4) | Session-Sender Timestamp (8) |
    Session-Sender Error Estimate (2) | MBZ (2) | Ses-Sender TTL (1) | MBZ (3)

Timestamps are 64-bit NTP (32-bit seconds since 1900 + 32-bit fraction). A packet longer than 44 octets
carries padding (or, per RFC 8972, TLVs this module ignores); the reflector answers with the same length.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bgpctl.errors import ProbeError

PACKET_LEN = 44
"""Length of both unauthenticated STAMP test packets, in octets (without padding)."""

DEFAULT_PORT = 862
NTP_UNIX_OFFSET_S = 2_208_988_800
"""Seconds from 1900-01-01 (NTP era 0) to 1970-01-01 (Unix epoch)."""

DEFAULT_ERROR_ESTIMATE = 0x0001
"""S=0 (clock not known to be synchronised), Z=0 (NTP format), Scale=0, Multiplier=1 (must not be 0)."""

_SENDER = struct.Struct("!IQH30x")
_REFLECTOR = struct.Struct("!IQH2xQIQH2xB3x")
assert _SENDER.size == PACKET_LEN and _REFLECTOR.size == PACKET_LEN


class StampFormatError(ProbeError):
    """A datagram is not a STAMP test packet this module can read."""


@dataclass(frozen=True, slots=True)
class SenderPacket:
    seq: int
    timestamp: int  # NTP 64-bit
    error_estimate: int = DEFAULT_ERROR_ESTIMATE


@dataclass(frozen=True, slots=True)
class ReflectorPacket:
    seq: int
    timestamp: int  # NTP 64-bit: when the reflector sent this packet
    error_estimate: int
    receive_timestamp: int  # NTP 64-bit: when the reflector received the sender's packet
    sender_seq: int
    sender_timestamp: int
    sender_error_estimate: int
    sender_ttl: int


def ntp_from_unix_ns(ns: int) -> int:
    """Unix time in nanoseconds -> 64-bit NTP timestamp (era 0 wraps in 2036: the value is taken mod 2^64)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    fraction = (rest << 32) // 1_000_000_000
    return (((seconds + NTP_UNIX_OFFSET_S) & 0xFFFFFFFF) << 32) | fraction


def unix_ns_from_ntp(ntp: int) -> int:
    """64-bit NTP timestamp -> Unix time in nanoseconds (era 0, i.e. before 2036-02-07)."""
    seconds = (ntp >> 32) - NTP_UNIX_OFFSET_S
    fraction_ns = ((ntp & 0xFFFFFFFF) * 1_000_000_000 + (1 << 31)) >> 32
    return seconds * 1_000_000_000 + fraction_ns


def _padded(body: bytes, length: int) -> bytes:
    if length < PACKET_LEN:
        raise StampFormatError(
            f"a STAMP packet is at least {PACKET_LEN} octets, not {length}: "
            f"choose a padding length of {PACKET_LEN} or more"
        )
    return body + bytes(length - PACKET_LEN)


def encode_sender(packet: SenderPacket, length: int = PACKET_LEN) -> bytes:
    """The Session-Sender packet, zero-padded to ``length`` octets."""
    return _padded(_SENDER.pack(packet.seq & 0xFFFFFFFF, packet.timestamp, packet.error_estimate), length)


def decode_sender(data: bytes) -> SenderPacket:
    if len(data) < PACKET_LEN:
        raise StampFormatError(f"truncated STAMP sender packet: {len(data)} octets, need {PACKET_LEN}")
    seq, timestamp, error_estimate = _SENDER.unpack_from(data)
    return SenderPacket(seq, timestamp, error_estimate)


_REPLY_FIELDS = struct.Struct("!4xQ4xQIQ")  # Timestamp, Receive Timestamp, Session-Sender Seq/Timestamp


@dataclass(frozen=True, slots=True)
class ReplyFields:
    """What the Session-Sender needs from a reflector packet (the fast path of its checks)."""

    sender_seq: int
    sender_timestamp: int  # T1 as the sender sent it (NTP)
    receive_timestamp: int  # T2: when the reflector received the probe (reflector's clock, NTP)
    timestamp: int  # T3: when the reflector sent the answer (reflector's clock, NTP)

    @property
    def residence_s(self) -> float:
        """T3 - T2: time the probe spent in the reflector (one clock, so clock offsets cancel)."""
        diff = (self.timestamp - self.receive_timestamp) % (1 << 64)  # across an NTP era wrap too
        if diff >= 1 << 63:
            diff -= 1 << 64
        return diff / 2**32


def reply_fields(data: bytes) -> ReplyFields:
    if len(data) < PACKET_LEN:
        raise StampFormatError(f"truncated STAMP reflector packet: {len(data)} octets, need {PACKET_LEN}")
    timestamp, receive_timestamp, sender_seq, sender_timestamp = _REPLY_FIELDS.unpack_from(data)
    return ReplyFields(sender_seq, sender_timestamp, receive_timestamp, timestamp)


def round_trip_s(sent: float, received: float, fields: ReplyFields) -> float:
    """RFC 8762 round trip: (T4 - T1) - (T3 - T2), the reflector's residence time taken out.

    A reflector that leaves T2/T3 empty, or reports a residence that is negative or not shorter than the
    whole round trip, is not trusted: the plain T4 - T1 is returned.
    """
    raw = received - sent
    residence = fields.residence_s
    if fields.receive_timestamp == 0 or fields.timestamp == 0 or not 0.0 <= residence < raw:
        return raw
    return raw - residence


def encode_reflector(packet: ReflectorPacket, length: int = PACKET_LEN) -> bytes:
    return _padded(
        _REFLECTOR.pack(
            packet.seq & 0xFFFFFFFF,
            packet.timestamp,
            packet.error_estimate,
            packet.receive_timestamp,
            packet.sender_seq & 0xFFFFFFFF,
            packet.sender_timestamp,
            packet.sender_error_estimate,
            packet.sender_ttl & 0xFF,
        ),
        length,
    )


def decode_reflector(data: bytes) -> ReflectorPacket:
    if len(data) < PACKET_LEN:
        raise StampFormatError(f"truncated STAMP reflector packet: {len(data)} octets, need {PACKET_LEN}")
    return ReflectorPacket(*_REFLECTOR.unpack_from(data))


def reflect(
    data: bytes,
    *,
    received_ntp: int,
    sent_ntp: int,
    ttl: int,
    seq: int | None = None,
    error_estimate: int = DEFAULT_ERROR_ESTIMATE,
) -> bytes:
    """The reflector's answer to the sender packet ``data``, as long as ``data`` (symmetric size).

    ``seq=None`` is stateless mode (RFC 8762 section 4.3: copy the sender's sequence number); a stateful
    reflector passes its own per-session counter.
    """
    sender = decode_sender(data)
    answer = ReflectorPacket(
        seq=sender.seq if seq is None else seq,
        timestamp=sent_ntp,
        error_estimate=error_estimate,
        receive_timestamp=received_ntp,
        sender_seq=sender.seq,
        sender_timestamp=sender.timestamp,
        sender_error_estimate=sender.error_estimate,
        sender_ttl=ttl,
    )
    return encode_reflector(answer, len(data))
