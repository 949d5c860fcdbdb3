"""Wire format of the call-quality meter: one G.711 20 ms RTP packet, probe or echo.

Every packet is 172 bytes of UDP payload, the size of a real voice packet: a 12-byte RTP header
(version 2, payload type 0 = PCMU, per-flow sequence and 8 kHz timestamp, an SSRC per flow)
followed by a 160-byte body that carries the meter's own fields, zero-padded::

    magic "BGPM" | version | kind | flow | run nonce | sequence | send ns | echo rx ns | echo tx ns | region

The responder answers a probe with an echo of the same size, filling in its region and its own
receive/transmit times (nanoseconds on its realtime clock). Anything else is ignored, so a responder
never answers random traffic and never sends more bytes than it received.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import IntEnum

RTP_HEADER = struct.Struct("!BBHII")  # V/P/X/CC, M/PT, sequence, timestamp, SSRC
BODY = struct.Struct("!4sBBHIIQQQ16s")
MAGIC = b"BGPM"
VERSION = 1
PAYLOAD_BYTES = 160  # G.711 at 8 kHz, 20 ms
PACKET_SIZE = RTP_HEADER.size + PAYLOAD_BYTES  # 172
_PAD = bytes(PAYLOAD_BYTES - BODY.size)
_RTP_V2 = 0x80
_PT_PCMU = 0
_SAMPLES_PER_PACKET = 160
REGION_RE = re.compile(r"^[A-Za-z0-9._-]{1,16}$")


class Kind(IntEnum):
    PROBE = 1
    ECHO = 2


@dataclass(frozen=True, slots=True)
class MeterPacket:
    """The decoded fields of one meter packet."""

    kind: Kind
    flow: int
    nonce: int
    seq: int
    send_ns: int
    echo_rx_ns: int = 0
    echo_tx_ns: int = 0
    region: str = ""
    flow_seq: int = 0  # the RTP sequence of this packet within its flow (16 bits on the wire)


def valid_region(region: str) -> bool:
    return REGION_RE.fullmatch(region) is not None


def encode(p: MeterPacket) -> bytes:
    """Serialise a packet to exactly PACKET_SIZE bytes."""
    region = p.region.encode("ascii")
    if p.region and not valid_region(p.region):
        raise ValueError(f"region {p.region!r} must be 1-16 characters of A-Z a-z 0-9 . _ -")
    ssrc = (p.nonce ^ (p.flow * 0x9E3779B1)) & 0xFFFFFFFF
    head = RTP_HEADER.pack(
        _RTP_V2, _PT_PCMU, p.flow_seq & 0xFFFF, (p.flow_seq * _SAMPLES_PER_PACKET) & 0xFFFFFFFF, ssrc
    )
    body = BODY.pack(MAGIC, VERSION, int(p.kind), p.flow, p.nonce, p.seq, p.send_ns, p.echo_rx_ns, p.echo_tx_ns, region)
    return head + body + _PAD


def decode(data: bytes) -> MeterPacket | None:
    """The packet, or None when ``data`` is not a meter packet of this version (wrong size, magic, kind)."""
    if len(data) != PACKET_SIZE:
        return None
    _, _, flow_seq, _, _ = RTP_HEADER.unpack_from(data, 0)
    magic, version, kind, flow, nonce, seq, send_ns, erx, etx, region = BODY.unpack_from(data, RTP_HEADER.size)
    if magic != MAGIC or version != VERSION or kind not in (Kind.PROBE, Kind.ECHO):
        return None
    try:
        name = region.rstrip(b"\0").decode("ascii")
    except UnicodeDecodeError:
        return None
    return MeterPacket(Kind(kind), flow, nonce, seq, send_ns, erx, etx, name, flow_seq)


def echo_of(probe: MeterPacket, *, region: str, rx_ns: int, tx_ns: int) -> bytes:
    """The responder's answer to ``probe``: same identity and size, with its region and times."""
    return encode(
        MeterPacket(Kind.ECHO, probe.flow, probe.nonce, probe.seq, probe.send_ns, rx_ns, tx_ns, region, probe.flow_seq)
    )
