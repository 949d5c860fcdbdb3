"""STAMP packet encoding (RFC 8762, unauthenticated): pure functions, checked against the RFC layout."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.probe import stamp
from bgpctl.probe.icmp import ECHO6_REPLY, build_echo, checksum, checksum6, icmp6_filter, parse_reply, parse_reply6
from bgpctl.probe.protocol import Problem
from bgpctl.probe.udp import widen_seq

u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
u16 = st.integers(0, 2**16 - 1)


def test_sender_layout_matches_rfc_8762_section_4_2_1() -> None:
    data = stamp.encode_sender(stamp.SenderPacket(seq=0x01020304, timestamp=0x1112131415161718, error_estimate=0x8001))
    assert len(data) == 44
    assert data[:4] == bytes.fromhex("01020304")
    assert data[4:12] == bytes.fromhex("1112131415161718")
    assert data[12:14] == bytes.fromhex("8001")
    assert data[14:] == bytes(30)  # MBZ


def test_reflector_layout_matches_rfc_8762_section_4_3_1() -> None:
    pkt = stamp.ReflectorPacket(
        seq=7,
        timestamp=0xA0A0A0A0A0A0A0A0,
        error_estimate=0x0001,
        receive_timestamp=0xB0B0B0B0B0B0B0B0,
        sender_seq=9,
        sender_timestamp=0xC0C0C0C0C0C0C0C0,
        sender_error_estimate=0x0002,
        sender_ttl=61,
    )
    data = stamp.encode_reflector(pkt)
    assert len(data) == 44
    assert struct.unpack("!I", data[0:4])[0] == 7
    assert data[4:12] == bytes([0xA0] * 8)
    assert data[12:14] == b"\x00\x01" and data[14:16] == b"\0\0"
    assert data[16:24] == bytes([0xB0] * 8)
    assert struct.unpack("!I", data[24:28])[0] == 9
    assert data[28:36] == bytes([0xC0] * 8)
    assert data[36:38] == b"\x00\x02" and data[38:40] == b"\0\0"
    assert data[40] == 61 and data[41:44] == b"\0\0\0"


@given(seq=u32, ts=u64, ee=u16, pad=st.integers(0, 1400))
def test_sender_round_trip(seq: int, ts: int, ee: int, pad: int) -> None:
    data = stamp.encode_sender(stamp.SenderPacket(seq, ts, ee), 44 + pad)
    assert len(data) == 44 + pad
    assert stamp.decode_sender(data) == stamp.SenderPacket(seq, ts, ee)


@given(
    seq=u32, ts=u64, ee=u16, rx=u64, tx=u64, ttl=st.integers(0, 255), pad=st.integers(0, 1400), own_seq=st.none() | u32
)
def test_reflect_echoes_the_sender_and_keeps_the_size(
    seq: int, ts: int, ee: int, rx: int, tx: int, ttl: int, pad: int, own_seq: int | None
) -> None:
    probe = stamp.encode_sender(stamp.SenderPacket(seq, ts, ee), 44 + pad)
    answer = stamp.reflect(probe, received_ntp=rx, sent_ntp=tx, ttl=ttl, seq=own_seq)
    assert len(answer) == len(probe)  # symmetric size
    r = stamp.decode_reflector(answer)
    assert (r.sender_seq, r.sender_timestamp, r.sender_error_estimate, r.sender_ttl) == (seq, ts, ee, ttl)
    assert (r.receive_timestamp, r.timestamp) == (rx, tx)
    assert r.seq == (seq if own_seq is None else own_seq)  # stateless mode copies the sender's number
    f = stamp.reply_fields(answer)
    assert (f.sender_seq, f.sender_timestamp, f.receive_timestamp, f.timestamp) == (seq, ts, rx, tx)


def test_round_trip_takes_out_the_reflectors_residence_time_when_it_is_sane() -> None:
    t2 = stamp.ntp_from_unix_ns(1_763_700_000_000_000_000)

    def fields(residence_ns: int) -> stamp.ReplyFields:
        return stamp.ReplyFields(1, 0, t2, stamp.ntp_from_unix_ns(1_763_700_000_000_000_000 + residence_ns))

    assert stamp.round_trip_s(10.0, 10.010, fields(3_000_000)) == pytest.approx(0.007, abs=1e-9)
    assert stamp.round_trip_s(10.0, 10.010, fields(0)) == pytest.approx(0.010, abs=1e-9)
    assert stamp.round_trip_s(10.0, 10.010, fields(-1_000_000)) == pytest.approx(0.010)  # T3 before T2
    assert stamp.round_trip_s(10.0, 10.010, fields(20_000_000)) == pytest.approx(0.010)  # longer than it all
    empty = stamp.ReplyFields(1, 0, 0, 0)  # a reflector that fills neither
    assert stamp.round_trip_s(10.0, 10.010, empty) == pytest.approx(0.010)


@pytest.mark.parametrize("n", [0, 1, 20, 43])
def test_short_packets_are_refused_with_a_message(n: int) -> None:
    with pytest.raises(stamp.StampFormatError, match="truncated"):
        stamp.decode_reflector(bytes(n))
    with pytest.raises(stamp.StampFormatError, match="truncated"):
        stamp.decode_sender(bytes(n))
    with pytest.raises(stamp.StampFormatError, match="at least 44"):
        stamp.encode_sender(stamp.SenderPacket(1, 2), n)


def test_ntp_conversion_known_values_and_round_trip() -> None:
    assert stamp.ntp_from_unix_ns(0) == stamp.NTP_UNIX_OFFSET_S << 32
    assert stamp.ntp_from_unix_ns(1_500_000_000) == ((stamp.NTP_UNIX_OFFSET_S + 1) << 32) | (1 << 31)
    for ns in (0, 1, 999_999_999, 1_763_700_000_123_456_789):
        assert abs(stamp.unix_ns_from_ntp(stamp.ntp_from_unix_ns(ns)) - ns) <= 1  # 2^-32 s resolution


@given(short=u32, last=st.integers(0, 2**40), back=st.integers(0, 2**31))
def test_widen_seq_recovers_recent_numbers_across_wraps(short: int, last: int, back: int) -> None:
    seq = last - back
    if seq >= 0:
        assert widen_seq(seq % 2**32, last, 2**32) == seq
    assert widen_seq(short, last, 2**32) <= last


# ---- ICMP echo (pure helpers)


def _ip_header(src: str, payload_len: int) -> bytes:
    return struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + payload_len,
        0,
        0,
        64,
        1,
        0,
        IPv4Address(src).packed,
        IPv4Address("198.18.200.1").packed,
    )


def _as_reply(echo: bytes) -> bytes:
    body = b"\0" + echo[1:2] + b"\0\0" + echo[4:]
    csum = checksum(body)
    return body[:2] + struct.pack("!H", csum) + body[4:]


@given(ident=u16, seq=st.integers(0, 2**63), payload=st.integers(8, 1000))
def test_icmp_echo_round_trip(ident: int, seq: int, payload: int) -> None:
    echo = build_echo(ident, seq, payload)
    assert checksum(echo) == 0
    reply = _as_reply(echo)
    packet = _ip_header("203.0.113.10", len(reply)) + reply
    assert parse_reply(packet, identifier=ident, target=IPv4Address("203.0.113.10"), payload_len=payload) == (None, seq)


def test_icmp_bad_replies_are_named() -> None:
    target = IPv4Address("203.0.113.10")
    reply = _as_reply(build_echo(77, 5, 56))

    def parse(pkt: bytes, ident: int = 77) -> tuple[Problem | None, int | None]:
        return parse_reply(pkt, identifier=ident, target=target, payload_len=56)

    assert parse(_ip_header("203.0.113.10", 64) + reply) == (None, 5)
    assert parse(_ip_header("203.0.113.10", 64) + reply, ident=78) == (None, None)  # not ours: ignored
    assert parse(_ip_header("203.0.113.99", 64) + reply) == (Problem.WRONG_SOURCE, None)
    assert parse(_ip_header("203.0.113.10", 12) + reply[:12]) == (Problem.TRUNCATED, None)
    longer = _as_reply(build_echo(77, 5, 64))
    assert parse(_ip_header("203.0.113.10", 72) + longer) == (Problem.WRONG_SIZE, None)
    corrupt = reply[:20] + bytes([reply[20] ^ 0xFF]) + reply[21:]
    assert parse(_ip_header("203.0.113.10", 64) + corrupt) == (Problem.MALFORMED, None)


TARGET6, LOCAL6 = IPv6Address("2001:db8:113::10"), IPv6Address("2001:db8:200::1")


def _as_reply6(echo: bytes, src: IPv6Address = TARGET6, dst: IPv6Address = LOCAL6) -> bytes:
    """The reply the target's kernel sends: type 129, the checksum over the pseudo-header (src -> dst)."""
    body = bytes([ECHO6_REPLY]) + echo[1:2] + b"\0\0" + echo[4:]
    return body[:2] + struct.pack("!H", checksum6(body, src, dst)) + body[4:]


@given(ident=u16, seq=st.integers(0, 2**63), payload=st.integers(8, 1000))
def test_icmpv6_echo_round_trip(ident: int, seq: int, payload: int) -> None:
    echo = build_echo(ident, seq, payload, v6=True)
    assert echo[0] == 128 and echo[2:4] == b"\0\0"  # the kernel fills in the checksum
    reply = _as_reply6(echo)
    assert checksum6(reply, TARGET6, LOCAL6) == 0
    got = parse_reply6(reply, str(TARGET6), identifier=ident, target=TARGET6, local=LOCAL6, payload_len=payload)
    assert got == (None, seq)


def test_icmpv6_bad_replies_are_named() -> None:
    reply = _as_reply6(build_echo(77, 5, 56, v6=True))

    def parse(msg: bytes, sender: str = str(TARGET6), ident: int = 77) -> tuple[Problem | None, int | None]:
        return parse_reply6(msg, sender, identifier=ident, target=TARGET6, local=LOCAL6, payload_len=56)

    assert parse(reply) == (None, 5)
    assert parse(reply, sender="2001:db8:113::10%eth1") == (None, 5)  # a scope on the sender: the same address
    assert parse(reply, ident=78) == (None, None)  # another pinger's: ignored
    assert parse(bytes([1]) + reply[1:]) == (None, None)  # not an echo reply (destination unreachable): ignored
    assert parse(reply, sender="2001:db8:113::99") == (Problem.WRONG_SOURCE, None)
    assert parse(reply, sender="not an address") == (Problem.WRONG_SOURCE, None)
    assert parse(reply[:7]) == (Problem.TRUNCATED, None)
    assert parse(reply[:12]) == (Problem.TRUNCATED, None)
    assert parse(_as_reply6(build_echo(77, 5, 64, v6=True))) == (Problem.WRONG_SIZE, None)
    corrupt = reply[:20] + bytes([reply[20] ^ 0xFF]) + reply[21:]
    assert parse(corrupt) == (Problem.MALFORMED, None)
    # a reply whose checksum was made for another destination (not to our probe source) does not pass
    assert parse(_as_reply6(build_echo(77, 5, 56, v6=True), dst=IPv6Address("2001:db8:200::2"))) == (
        Problem.MALFORMED,
        None,
    )
    coded = bytes([ECHO6_REPLY, 1]) + reply[2:]
    assert parse(coded) == (Problem.MALFORMED, None)


def test_the_icmpv6_filter_passes_only_echo_replies() -> None:
    words = struct.unpack("=8I", icmp6_filter(ECHO6_REPLY))
    blocked = {kind for kind in range(256) if words[kind >> 5] >> (kind & 31) & 1}
    assert blocked == set(range(256)) - {ECHO6_REPLY}
