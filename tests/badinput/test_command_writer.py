"""No line injection into ExaBGP: every value that reaches an ExaBGP command or its configuration is
validated by full match, and the command writer refuses any line with a control (or non-ASCII) character
as a second guard. Each bad case asserts the error, its message shape, and that nothing was written.

Table-driven, plus hypothesis properties of the renderer and of :func:`bgpctl.speaker.commands.wire_line`
with a time bound per example."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from bgpctl import events
from bgpctl.core.types import ChangeKind, Rib, RouteAttrs, RouteChange, RouteKey
from bgpctl.errors import SpeakerError
from bgpctl.policy.model import Community, Description, Family, LargeCommunity, Name, Peer, SecretRef
from bgpctl.speaker import Speaker, commands
from bgpctl.speaker.backoff import Backoff
from bgpctl.speaker.config import render_config, render_env
from tests.speaker.lab import LogTap, make_policy

PER_EXAMPLE = timedelta(seconds=2)
POLICY = make_policy()
KEY = RouteKey("203.0.113.0/26")
GOOD = RouteAttrs("198.18.1.11", (65000,), 0, ("65000:100",))
GOOD_LINE = (
    "neighbor 198.18.1.1 announce attributes next-hop 198.18.1.11 med 0 as-path [ 65000 ] community "
    "[ 65000:100 ] origin igp nlri 203.0.113.0/26"
)
WIRE_ERROR = re.compile(
    r"refusing to write a command to ExaBGP: (control|non-ASCII) character U\+[0-9A-F]{4,6} at column \d+ "
    r"of '.*'; nothing was written \(a value slipped past validation: report it\)",
    re.S,
)


def _attrs(**kw: object) -> RouteAttrs:
    base: dict[str, object] = {
        "next_hop": GOOD.next_hop,
        "as_path": GOOD.as_path,
        "med": GOOD.med,
        "communities": GOOD.communities,
        "large_communities": (),
    }
    base.update(kw)
    return RouteAttrs(**base)  # type: ignore[arg-type]


# (why, attributes, fragment of the SpeakerError)
BAD_VALUES: list[tuple[str, RouteAttrs, str]] = [
    ("community with a trailing newline", _attrs(communities=("7224:7300\n",)), "is not a standard community"),
    (
        "community carrying a second command",
        _attrs(communities=("7224:7300\nneighbor 198.18.1.1 announce route 0.0.0.0/0 next-hop self",)),
        "is not a standard community",
    ),
    ("community with a carriage return", _attrs(communities=("7224:7300\r",)), "is not a standard community"),
    ("community with a NUL", _attrs(communities=("7224:7300\x00",)), "is not a standard community"),
    ("community with a space", _attrs(communities=("7224:7300 7224:1",)), "is not a standard community"),
    ("community closing the list", _attrs(communities=("7224:7300 ]",)), "is not a standard community"),
    ("community with Arabic-Indic digits", _attrs(communities=("\u0667\u0662:1",)), "is not a standard community"),
    ("community with U+2028", _attrs(communities=("7224:7300\u2028",)), "is not a standard community"),
    ("well-known name with a newline", _attrs(communities=("no-export\n",)), "is not a standard community"),
    ("community part over 65535", _attrs(communities=("65536:1",)), "is not a standard community"),
    ("community without a value", _attrs(communities=("7224:",)), "is not a standard community"),
    ("empty community", _attrs(communities=("",)), "is not a standard community"),
    ("large community with a newline", _attrs(large_communities=("1:2:3\n",)), "is not a large community"),
    ("large community with a space", _attrs(large_communities=("1:2:3 4",)), "is not a large community"),
    ("large community over 2^32", _attrs(large_communities=("4294967296:1:1",)), "is not a large community"),
    ("next hop with a newline", _attrs(next_hop="198.18.1.11\n"), "is not an IP address"),
    ("next hop self with a newline", _attrs(next_hop="self\n"), "is not an IP address"),
    ("next hop with a scope id", _attrs(next_hop="198.18.1.11%eth0"), "is not an IP address"),
    ("MED of 2^32", _attrs(med=2**32), "MED 4294967296 is not 0..4294967295"),
    ("ASN 0 in the path", _attrs(as_path=(65000, 0)), "holds an ASN outside"),
    ("weight 0 (FRR reads bandwidth 0 as none)", _attrs(weight=0), "weight 0 is not 1..1000"),
    ("negative weight", _attrs(weight=-80), "weight -80 is not 1..1000"),
    ("weight past 1000 (inexact as a float)", _attrs(weight=1001), "weight 1001 is not 1..1000"),
    ("weight as text carrying a command", _attrs(weight="80 ]\nneighbor 198.18.1.1 teardown 2"), "is not 1..1000"),
    ("weight as a boolean", _attrs(weight=True), "weight True is not 1..1000"),
    ("weight as a float", _attrs(weight=80.5), "weight 80.5 is not 1..1000"),
]


@pytest.mark.parametrize(("why", "attrs", "fragment"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_renderer_refuses_the_value(why: str, attrs: RouteAttrs, fragment: str) -> None:
    with pytest.raises(SpeakerError) as err:
        commands.announce_line(POLICY, "edge", KEY, attrs)
    message = str(err.value)
    assert fragment in message and message.startswith("route 203.0.113.0/26 to edge: ")
    assert "\n" not in message.replace("\\n", "")  # the value is shown escaped, the message is one line


KEY6 = RouteKey("2001:db8:100::/48")
# the edge with MP-BGP IPv6 unicast over its IPv4 session (docs/dualstack.md)
MP_POLICY = POLICY.model_copy(
    update={
        "peers": [
            POLICY.peers[0].model_copy(update={"families": [Family.IPV4_UNICAST, Family.IPV6_UNICAST]}),
            *POLICY.peers[1:],
        ]
    }
)

# (why, peer, next hop, fragment of the SpeakerError) for an IPv6 route
BAD_V6: list[tuple[str, str, str, str]] = [
    ("next-hop self over the IPv4 session", "edge", "self", "would reach the peer as next hop 0.0.0.0"),
    ("link-local next hop", "edge", "fe80::11", "is not a global IPv6 address (link-local)"),
    ("link-local next hop on the IPv6 session", "edge6", "fe80::11", "is not a global IPv6 address (link-local)"),
    ("IPv4-mapped next hop", "edge", "::ffff:198.18.1.11", "is not a global IPv6 address (IPv4-mapped)"),
    ("IPv4 next hop", "edge", "198.18.1.11", "is IPv4 but the prefix is IPv6"),
    ("next hop with a zone", "edge6", "2001:db8:1::11%eth0", "is not an IP address without a zone"),
    ("zone carrying a second command", "edge", "2001:db8:1::11%x origin igp", "is not an IP address"),
    ("next hop with a newline", "edge", "2001:db8:1::11\n", "is not an IP address"),
    ("route to a peer that carries no IPv6", "tgw-use1", "2001:db8:1::11", "the session only carries ipv4-unicast"),
]


@pytest.mark.parametrize(("why", "peer", "next_hop", "fragment"), BAD_V6, ids=[c[0] for c in BAD_V6])
def test_renderer_refuses_the_ipv6_route(why: str, peer: str, next_hop: str, fragment: str) -> None:
    with pytest.raises(SpeakerError) as err:
        commands.announce_line(MP_POLICY, peer, KEY6, _attrs(next_hop=next_hop))
    message = str(err.value)
    assert fragment in message and message.startswith(f"route 2001:db8:100::/48 to {peer}")
    assert "\n" not in message.replace("\\n", "")


def test_ipv6_routes_render_over_either_session() -> None:
    """MP-BGP over the IPv4 session with the explicit IPv6 next hop; over the IPv6 session 'self' is its address."""
    line = commands.announce_line(MP_POLICY, "edge", KEY6, _attrs(next_hop="2001:db8:1:0:0::11", communities=()))
    assert line == (
        "neighbor 198.18.1.1 announce attributes next-hop 2001:db8:1::11 med 0 as-path [ 65000 ] origin "
        "igp nlri 2001:db8:100::/48"
    )
    line = commands.announce_line(MP_POLICY, "edge6", KEY6, _attrs(next_hop="self", communities=()))
    assert line == (
        "neighbor 2001:db8:1::1 announce attributes next-hop self med 0 as-path [ 65000 ] origin igp "
        "nlri 2001:db8:100::/48"
    )


class _Relay:
    """The ExaBGP side of a real API connection: records every line, answers ``done``."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            self.lines.append(line)
            writer.write(b"done\n")
            await writer.drain()


async def _connected(sp: Speaker, body: Callable[[_Relay], Awaitable[None]], relay: _Relay | None = None) -> _Relay:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_unix_connection(sock=ours)
    client = asyncio.create_task(sp._on_client(reader, writer))
    relay_reader, relay_writer = await asyncio.open_unix_connection(sock=theirs)
    relay_writer.write(b"bgpctl-relay 1 4242\n")
    await relay_writer.drain()
    await asyncio.wait_for(sp._connected.wait(), 10)
    relay = relay or _Relay()
    serving = asyncio.create_task(relay.serve(relay_reader, relay_writer))
    try:
        await body(relay)
    finally:
        relay_writer.close()
        await asyncio.wait_for(client, 10)
        serving.cancel()
    return relay


@pytest.mark.parametrize(("why", "attrs", "fragment"), BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_speaker_refuses_the_rib_and_writes_nothing(tmp_path: Path, why: str, attrs: RouteAttrs, fragment: str) -> None:
    """The RIB is refused whole (the previous one stays); the next good sync's line is the first thing
    ExaBGP ever receives."""
    tap = LogTap()
    sp = Speaker(POLICY, tmp_path / "run", tap.log, ack_timeout_s=10)

    async def body(relay: _Relay) -> None:
        with pytest.raises(SpeakerError, match=re.escape(fragment)):
            await sp.sync({"edge": {KEY: attrs}})
        assert sp._desired == {} and not sp._pending
        good: Rib = {"edge": {KEY: GOOD}}
        await asyncio.wait_for(sp.sync(good), 10)

    relay = asyncio.run(_connected(sp, body))
    assert relay.lines == [GOOD_LINE.encode() + b"\n"]
    assert sp.counters["rib_refused"] == 1 and sp.counters["commands_sent"] == 1
    assert [e["event"] for e in tap.events("speaker.rib_refused")] == ["speaker.rib_refused"]


# ------------------------------------------------------------------------------- the second guard

BAD_LINES: list[tuple[str, str, str]] = [
    ("newline", GOOD_LINE + "\nneighbor 198.18.1.1 withdraw route 203.0.113.0/26", "control character U+000A"),
    ("carriage return", GOOD_LINE + "\r", "control character U+000D"),
    ("NUL", GOOD_LINE.replace(" origin", "\x00 origin"), "control character U+0000"),
    ("tab", GOOD_LINE.replace(" ", "\t", 1), "control character U+0009"),
    ("escape", "\x1b[2J" + GOOD_LINE, "control character U+001B at column 1"),
    ("DEL", GOOD_LINE + "\x7f", "control character U+007F"),
    ("C1 NEL", GOOD_LINE + "\x85", "control character U+0085"),
    ("line separator", GOOD_LINE + "\u2028", "control character U+2028"),
    ("paragraph separator", GOOD_LINE + "\u2029", "control character U+2029"),
    ("non-ASCII letter", GOOD_LINE.replace("igp", "ïgp"), "non-ASCII character U+00EF"),
    ("non-ASCII digit", GOOD_LINE.replace("med 0", "med \u0660"), "non-ASCII character U+0660"),
    ("zero-width space", GOOD_LINE + "\u200b", "control character U+200B"),
    ("BOM", "\ufeff" + GOOD_LINE, "control character U+FEFF at column 1"),
]


@pytest.mark.parametrize(("why", "line", "fragment"), BAD_LINES, ids=[c[0] for c in BAD_LINES])
def test_wire_line_refuses_control_and_non_ascii(why: str, line: str, fragment: str) -> None:
    with pytest.raises(SpeakerError) as err:
        commands.wire_line(line)
    assert WIRE_ERROR.fullmatch(str(err.value)) and fragment in str(err.value)
    with pytest.raises(SpeakerError):
        commands.Command("edge", line)  # such a command cannot even be built


@pytest.mark.parametrize("line", ["", "x" * 8193], ids=["empty", "too long"])
def test_wire_line_refuses_empty_and_overlong(line: str) -> None:
    with pytest.raises(SpeakerError, match=r"refusing to write a command of \d+ characters to ExaBGP \(1-8192"):
        commands.wire_line(line)


@pytest.mark.parametrize(("why", "line", "fragment"), BAD_LINES, ids=[c[0] for c in BAD_LINES])
def test_writer_refuses_a_forged_batch_before_writing_anything(
    tmp_path: Path, why: str, line: str, fragment: str
) -> None:
    """A Command whose line was changed after its checks (the guard of last resort in ``_send``): the
    whole batch is refused, the good command before it is not written either."""
    sp = Speaker(POLICY, tmp_path / "run", LogTap().log, ack_timeout_s=10)
    good = commands.Command("edge", GOOD_LINE)
    forged = commands.Command("edge", GOOD_LINE)
    object.__setattr__(forged, "line", line)

    async def body(relay: _Relay) -> None:
        conn = sp._conn
        assert conn is not None
        with pytest.raises(SpeakerError, match=re.escape(fragment)):
            await sp._send(conn, [good, forged])
        assert not sp._pending and sp.counters["commands_sent"] == 0
        assert await asyncio.wait_for(sp._send(conn, [good]), 10) == [True]

    relay = asyncio.run(_connected(sp, body))
    assert relay.lines == [GOOD_LINE.encode() + b"\n"]


# ----------------------------------------------------------------- values validated at policy load

MODEL_CASES: list[tuple[str, Any, object, str]] = [
    ("community with a trailing newline", Community, "7224:7300\n", "is not a standard community"),
    ("community with a CRLF", Community, "7224:7300\r\n", "is not a standard community"),
    ("community with Arabic-Indic digits", Community, "\u0667:1", "is not a standard community"),
    ("large community with a trailing newline", LargeCommunity, "1:2:3\n", "is not a large community"),
    ("name with a trailing newline", Name, "edge\n", "String should match pattern"),
    ("name with a second line", Name, "edge\nneighbor", "String should match pattern"),
    ("description with a newline", Description, "to the\nedge", "holds a control character"),
    ("description with a NUL", Description, "edge\x00", "holds a control character"),
    ("description with U+2028", Description, "edge\u2028x", "holds a control character"),
    ("description of 201 characters", Description, "x" * 201, "longer than 200 characters"),
]


@pytest.mark.parametrize(("why", "kind", "value", "fragment"), MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_policy_values_are_full_matched(why: str, kind: Any, value: object, fragment: str) -> None:
    with pytest.raises(ValidationError) as err:
        TypeAdapter(kind).validate_python(value)
    assert fragment in str(err.value)


def test_secret_env_name_with_a_newline_is_refused() -> None:
    with pytest.raises(ValidationError, match="String should match pattern"):
        SecretRef(env="TBSPK_MD5\n")


def test_peer_description_refused_in_the_policy() -> None:
    doc = POLICY.peers[0].model_dump(mode="json")
    doc["description"] = "edge\n}\nneighbor 192.0.2.1 {"
    with pytest.raises(ValidationError, match="description"):
        Peer.model_validate(doc)


@pytest.mark.parametrize("arg", ["/run/bgpctl/sock\n", "/run/bgpctl/sock\nprocess x {", "/run/bgpctl/s ock"])
def test_relay_argument_is_full_matched(arg: str) -> None:
    with pytest.raises(SpeakerError, match="holds characters ExaBGP's 'run' cannot carry"):
        render_config(POLICY, ["/usr/bin/python3", arg], {"edge": "tbspk-md5-s3cret"})


@pytest.mark.parametrize("user", ["root\n", "root\nlevel = DEBUG", "Root"])
def test_exabgp_user_is_full_matched(user: str) -> None:
    policy = make_policy(user=user)
    with pytest.raises(SpeakerError, match="is not a valid user name"):
        render_env(policy)


# ------------------------------------------------------------------------------------ properties


@settings(deadline=PER_EXAMPLE)
@given(st.text(max_size=300))
def test_wire_line_accepts_exactly_one_printable_ascii_line(line: str) -> None:
    try:
        data = commands.wire_line(line)
    except SpeakerError as e:
        assert str(e).startswith("refusing to write a command")
        assert not line or len(line) > 8192 or any(not " " <= c <= "~" for c in line)
        return
    assert data.endswith(b"\n") and data.count(b"\n") == 1
    assert all(0x20 <= b <= 0x7E for b in data[:-1])


_COMMUNITY_TEXT = st.one_of(
    st.text(max_size=14),
    st.from_regex(r"[0-9]{1,6}:[0-9]{1,6}[\n\r \]]?", fullmatch=True),
    st.sampled_from(["no-export", "blackhole", "no-export\n"]),
)


@settings(deadline=PER_EXAMPLE)
@given(
    communities=st.lists(_COMMUNITY_TEXT, max_size=4),
    large=st.lists(
        st.one_of(st.text(max_size=20), st.from_regex(r"[0-9]{1,11}(:[0-9]{1,11}){2}\n?", fullmatch=True)), max_size=3
    ),
    next_hop=st.one_of(st.just("198.18.1.11"), st.just("self"), st.text(max_size=20)),
)
def test_rendered_announce_is_one_command_or_refused(communities: list[str], large: list[str], next_hop: str) -> None:
    """Whatever the values: a SpeakerError, or one line of printable ASCII whose tokens are exactly the
    values given (nothing added, nothing split)."""
    attrs = RouteAttrs(next_hop, (65000,), None, tuple(communities), tuple(large))
    try:
        line = commands.announce_line(POLICY, "edge", KEY, attrs)
    except SpeakerError:
        return
    commands.wire_line(line)
    words = line.split(" ")
    if communities:
        start = words.index("community") + 2
        assert words[start : start + len(communities)] == communities
    if large:
        start = words.index("large-community") + 2
        assert words[start : start + len(large)] == large
    assert words[:2] == ["neighbor", "198.18.1.1"] and words[-4:] == ["origin", "igp", "nlri", KEY.prefix]
    assert line.count("announce") == 1 and line.count("nlri") == 1


def test_withdraw_render_of_every_change_kind_goes_through_the_guard() -> None:
    change = RouteChange("edge", ChangeKind.WITHDRAW, KEY, None)
    cmd = commands.render(POLICY, change, GOOD)
    assert commands.wire_line(cmd.line) == cmd.line.encode() + b"\n"


# ------------------------------------------------------------------------------- link bandwidth


@pytest.mark.parametrize(
    ("local_as", "weight", "token"),
    [
        (65000, 80, "bandwidth:65000:10000000"),
        (65000, 1, "bandwidth:65000:125000"),
        (65000, 1000, "bandwidth:65000:125000000"),
        (4200000000, 20, "bandwidth:23456:2500000"),  # a 4-octet AS: AS_TRANS in the 2-octet field
    ],
)
def test_link_bandwidth_token(local_as: int, weight: int, token: str) -> None:
    assert commands.link_bandwidth(local_as, weight) == token


def test_weighted_route_renders_the_link_bandwidth_community() -> None:
    line = commands.announce_line(POLICY, "edge", KEY, _attrs(weight=80))
    assert line == GOOD_LINE.replace(" origin igp", " extended-community [ bandwidth:65000:10000000 ] origin igp")


@given(st.integers(min_value=1, max_value=1000))
@settings(deadline=PER_EXAMPLE, max_examples=200)
def test_every_weight_is_exact_in_the_communitys_float(weight: int) -> None:
    """What ExaBGP packs (``struct.pack('!f', n)``) reads back as the same integer: the ratio FRR sees is
    the weights' ratio exactly."""
    bps = int(commands.link_bandwidth(65000, weight).rsplit(":", 1)[1])
    assert struct.unpack("!f", struct.pack("!f", bps))[0] == bps == weight * commands.LINK_BANDWIDTH_UNIT


# ------------------------------------------------------------------ several prefixes per command

GROUP = [RouteKey(f"203.0.113.{4 * i}/30", 1) for i in range(8)]


@pytest.mark.parametrize(
    ("why", "bad", "fragment"),
    [
        ("outside the allowlist", "198.51.100.0/24", "outside the policy allowlist"),
        ("host bits set", "203.0.113.1/30", "is not a valid prefix"),
        (
            "a second command after the prefix",
            "203.0.113.64/30\nneighbor 198.18.1.1 teardown 2",
            "is not a valid prefix",
        ),
        ("a space inside", "203.0.113.64/30 203.0.113.68/30", "is not a valid prefix"),
        ("an IPv6 prefix among IPv4 ones", "2001:db8:100::/48", "carries ipv4-unicast"),
    ],
)
def test_one_bad_prefix_refuses_the_whole_group(tmp_path: Path, why: str, bad: str, fragment: str) -> None:
    """Routes that would share one command: a bad prefix anywhere among them refuses the RIB whole and
    nothing is written."""
    tap = LogTap()
    sp = Speaker(POLICY, tmp_path / "run", tap.log, ack_timeout_s=10)
    rib: Rib = {"edge": {**{k: GOOD for k in GROUP[:4]}, RouteKey(bad, 1): GOOD, **{k: GOOD for k in GROUP[4:]}}}

    async def body(relay: _Relay) -> None:
        with pytest.raises(SpeakerError, match=re.escape(fragment)) as err:
            await sp.sync(rib)
        assert "\n" not in str(err.value).replace("\\n", "")
        assert sp._desired == {} and not sp._pending

    relay = asyncio.run(_connected(sp, body))
    assert relay.lines == [] and sp.counters["commands_sent"] == 0


class _RefusingRelay(_Relay):
    """Answers ``error`` to every line that names ``refused``, ``done`` to the others (ExaBGP refuses a
    command whole: none of its routes goes in)."""

    refused = " 203.0.113.8/30"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            self.lines.append(line)
            writer.write(b"error\n" if self.refused.encode() in line else b"done\n")
            await writer.drain()


def test_a_refused_group_books_no_route_and_is_retried_one_route_per_command(tmp_path: Path) -> None:
    """Eight routes with the same attributes go in one command; ExaBGP refuses it (because of one of them):
    none is marked announced. The retry sends each route alone: the seven others go in, the one ExaBGP
    refuses keeps failing alone and holds back no other."""
    tap = LogTap()
    sp = Speaker(
        POLICY,
        tmp_path / "run",
        tap.log,
        ack_timeout_s=10,
        retry_backoff=Backoff(initial_s=0.0, maximum_s=0.0, jitter=0.0),  # a retry is due at once
    )
    rib: Rib = {"edge": dict.fromkeys(GROUP, GOOD)}

    async def body(relay: _Relay) -> None:
        first = await asyncio.wait_for(sp.sync(rib), 10)
        assert (first.sent, first.errors) == (1, 1)
        assert sp._held["edge"] == {}
        second = await asyncio.wait_for(sp.sync(rib), 10)
        assert (second.sent, second.errors) == (8, 1)
        third = await asyncio.wait_for(sp.sync(rib), 10)
        assert (third.sent, third.errors) == (1, 1)
        assert sp._held["edge"] == {k: GOOD for k in GROUP if k.prefix != "203.0.113.8/30"}

    got = asyncio.run(_connected(sp, body, _RefusingRelay()))
    lines = [line.decode().rstrip("\n") for line in got.lines]
    assert len(lines) == 10
    assert sorted(lines[0].partition(" nlri ")[2].split(" ")) == sorted(k.prefix for k in GROUP)
    assert sorted(line.partition(" nlri ")[2] for line in lines[1:9]) == sorted(k.prefix for k in GROUP)
    assert lines[9].endswith("nlri 203.0.113.8/30")
    errors = tap.events(events.EXABGP_COMMAND_ERROR)
    assert [(e["routes"], e["attempt"]) for e in errors] == [(8, 1), (1, 2), (1, 3)]
    assert sp.counters["routes_sent"] == 8 + 8 + 1
