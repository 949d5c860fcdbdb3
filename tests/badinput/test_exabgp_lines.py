"""Bad lines from ExaBGP (or from whatever holds its API pipe): each is one counted, logged
``exabgp.unparsable_line`` event with a reason, never an exception, and changes nothing (sessions,
received routes, pending commands); the API connection stays up and the next good line is handled.

Table-driven (``BAD_LINES``) plus hypothesis properties of :func:`bgpctl.speaker.messages.parse`, each
example bounded in time (``deadline``)."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgpctl import events
from bgpctl.speaker import Speaker, messages
from bgpctl.speaker.speaker import _LINE_LIMIT
from tests.speaker.exabgp_lines import NB, H
from tests.speaker.lab import LogTap, make_policy

PER_EXAMPLE = timedelta(seconds=2)  # generous: the suite also runs under CPU load
DEEP = 200_000

UPDATE = H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": '
STATE_UP = H + '"type": "state", ' + NB + ', "state": "up" } }'


def _update(attribute: str = "", announce: str = "", withdraw: str = "") -> str:
    parts = [p for p in (attribute, announce, withdraw) if p]
    return UPDATE + "{ " + ", ".join(parts) + " } } } }"


BAD_LINES: list[tuple[str, bytes, str]] = [
    ("empty", b"", "neither an ACK"),
    ("whitespace", b"   \t ", "neither an ACK"),
    ("text output", b"exabgp 5.0.15", "neither an ACK"),
    ("ack with a suffix", b"done\x00", "neither an ACK"),
    ("ack in upper case", b"DONE", "neither an ACK"),
    ("not UTF-8", b'\xff\xfe{"type": "state"}', "not UTF-8"),
    ("UTF-8 cut inside a character", b'{"type": "state", "x": "\xc3', "not UTF-8"),
    ("lone surrogate as bytes", b'{"type": "\xed\xa0\x80"}', "not UTF-8"),
    ("truncated object", (STATE_UP[:60]).encode(), "invalid JSON"),
    ("truncated after a key", b'{"type"', "invalid JSON"),
    ("JSON with a NUL", b'{"type": "state"\x00}', "invalid JSON"),
    ("a JSON array", b"[1, 2]", "neither an ACK"),
    ("a JSON string", b'"done"', "neither an ACK"),
    ("deep arrays in an object", b'{"a": ' + b"[" * DEEP + b"]" * DEEP + b"}", "nested too deeply"),
    ("deep objects", b'{"a": ' * DEEP + b"1" + b"}" * DEEP, "nested too deeply"),
    ("deep and truncated", b'{"a": ' + b"[" * DEEP, "nested too deeply"),
    ("integer of 5000 digits", b'{"type": "state", "n": ' + b"9" * 5000 + b"}", "invalid JSON"),
    ("float overflow as type", b'{"type": 1e999}', "type is not a string"),
    ("NaN as type", b'{"type": NaN}', "type is not a string"),
    ("type a list", b'{"type": ["state"]}', "type is not a string"),
    ("type null", b'{"type": null}', "type is not a string"),
    ("neighbor a number", H.encode() + b'"type": "state", "neighbor": 7 }', "neighbor is not an object"),
    (
        "peer address an object",
        H.encode() + b'"type": "state", "neighbor": { "address": { "peer": {} }, "state": "up" } }',
        "neighbor.address.peer is not a string",
    ),
    ("state a number", (H + '"type": "state", ' + NB + ', "state": 1 } }').encode(), "state is not a string"),
    ("reason a list", (H + '"type": "state", ' + NB + ', "state": "down", "reason": [] } }').encode(), "reason"),
    ("med negative", _update('"attribute": { "med": -1 }').encode(), "med is not 0..4294967295"),
    ("med of 2^32", _update('"attribute": { "med": 4294967296 }').encode(), "med is not 0..4294967295"),
    ("med huge", _update('"attribute": { "med": ' + "9" * 4000 + " }").encode(), "med is not 0"),
    ("med a float", _update('"attribute": { "med": 1.5 }').encode(), "med is not an integer"),
    ("med a boolean", _update('"attribute": { "med": true }').encode(), "med is not an integer"),
    (
        "as-path ASN of 2^32",
        _update('"attribute": { "as-path": {"0": {"value": [4294967296]}} }').encode(),
        "as-path ASN is not 0..",
    ),
    (
        "as-path segment key huge digits",
        _update('"attribute": { "as-path": {"' + "9" * 5000 + '": {"value": [1]}} }').encode(),
        "",  # accepted or refused, but parsed without an exception; checked below
    ),
    ("as-path a list", _update('"attribute": { "as-path": [1, 2] }').encode(), "as-path is not an object"),
    (
        "community part over 65535",
        _update('"attribute": { "community": [[65536, 1]] }').encode(),
        "community is not 0..65535",
    ),
    ("community a string", _update('"attribute": { "community": "1:2" }').encode(), "community is not a list"),
    (
        "large community part over 2^32",
        _update('"attribute": { "large-community": [[1, 2, 4294967296]] }').encode(),
        "large-community is not 0..",
    ),
    (
        "nlri not a prefix",
        _update(announce='"announce": { "ipv4 unicast": { "198.18.1.1": [ { "nlri": "nonsense" } ] } }').encode(),
        "is not an IP prefix",
    ),
    (
        "nlri with a newline",
        _update(announce='"announce": { "ipv4 unicast": { "1.1.1.1": [ { "nlri": "192.0.2.0/24\\n" } ] } }').encode(),
        "is not an IP prefix",
    ),
    (
        "announce items not a list",
        _update(announce='"announce": { "ipv4 unicast": { "198.18.1.1": { "nlri": "192.0.2.0/24" } } }').encode(),
        "is not a list",
    ),
    (
        "withdraw entry a string",
        _update(withdraw='"withdraw": { "ipv4 unicast": [ "192.0.2.0/24" ] }').encode(),
        "nlri entry is not an object",
    ),
    (
        "path-information out of range",
        _update(
            withdraw='"withdraw": { "ipv4 unicast": [ { "nlri": "192.0.2.0/24", "path-information": 7 } ] }'
        ).encode(),
        "path-information is not a string",
    ),
    (
        "notification code over 255",
        (
            H + '"type": "notification", ' + NB + ', "direction": "receive", "notification": '
            '{ "code": 256, "subcode": 0, "message": "x" } } }'
        ).encode(),
        "code is not 0..255",
    ),
    (
        "eor afi a number",
        (
            H
            + '"type": "update", '
            + NB
            + ', "direction": "receive", "message": { "eor": { "afi": 1, "safi": 1 } } } }'
        ).encode(),
        "afi is not a string",
    ),
]
BAD_IDS = [c[0] for c in BAD_LINES]
REFUSED = [c for c in BAD_LINES if c[2]]


def _speaker(tmp_path: Path) -> tuple[Speaker, LogTap]:
    tap = LogTap()
    return Speaker(make_policy(), tmp_path / "run", tap.log), tap


@pytest.mark.parametrize(("why", "raw", "reason"), REFUSED, ids=[c[0] for c in REFUSED])
def test_parse_returns_unparsable_with_the_reason(why: str, raw: bytes, reason: str) -> None:
    for line in (raw, raw + b"\n"):
        event = messages.parse(line)
        assert isinstance(event, messages.UnparsableLine), why
        assert reason in event.reason
        assert event.line == raw.decode("utf-8", "replace")  # the line as received, newline stripped
        assert "\n" not in event.reason


def test_an_as_path_segment_key_of_5000_digits_parses_without_an_exception() -> None:
    raw = next(c[1] for c in BAD_LINES if c[0] == "as-path segment key huge digits")
    event = messages.parse(raw)
    assert isinstance(event, messages.UpdateEvent) and event.attributes.as_path == (1,)


@pytest.mark.parametrize(("why", "raw", "reason"), REFUSED, ids=[c[0] for c in REFUSED])
def test_dispatch_counts_logs_and_changes_nothing(tmp_path: Path, why: str, raw: bytes, reason: str) -> None:
    sp, tap = _speaker(tmp_path)
    before = (sp.sessions(), sp.received(), sp.announced(), list(sp._pending))
    sp._dispatch(raw + b"\n")
    assert sp.counters == {"unparsable_lines": 1}
    [logged] = tap.events()
    assert logged["event"] == events.EXABGP_UNPARSABLE_LINE and logged["level"] == "error"
    assert reason in logged["reason"] and len(logged["line"]) <= 2000
    assert (sp.sessions(), sp.received(), sp.announced(), list(sp._pending)) == before


def test_the_api_connection_survives_every_bad_line_and_an_oversized_one(tmp_path: Path) -> None:
    """The real read loop (``_on_client``) over a real socket: the relay hello, every bad line, one line
    over the reader's limit, then a good ``state up``: the session goes up, nothing was dropped."""
    sp, tap = _speaker(tmp_path)
    oversized = b'{"type": "' + b"x" * (_LINE_LIMIT + 10) + b'"}'

    async def main() -> tuple[int, str, bool]:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_unix_connection(sock=ours, limit=_LINE_LIMIT)
        client = asyncio.create_task(sp._on_client(reader, writer))
        _, relay = await asyncio.open_unix_connection(sock=theirs)
        relay.write(b"bgpctl-relay 1 4242\n")
        for _, raw, _ in BAD_LINES:
            relay.write(raw + b"\n")
        relay.write(oversized + b"\n")
        relay.write(STATE_UP.encode() + b"\n")
        await relay.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while sp.sessions()["edge"] != "up" and loop.time() < deadline:
            await asyncio.sleep(0.02)
        up_while_connected = sp._conn is not None
        relay.close()
        await asyncio.wait_for(client, 10)
        return sp.counters["unparsable_lines"], sp.sessions()["edge"], up_while_connected

    unparsable, _, connected = asyncio.run(main())
    assert connected
    assert tap.events(events.BGP_SESSION)[0]["state"] == "up"
    assert not tap.events(events.EXABGP_READ_FAILED)
    # every refused table line, plus the oversized line (once, or twice if its tail arrived as a line)
    assert len(REFUSED) + 1 <= unparsable <= len(REFUSED) + 2
    assert [e["event"] for e in tap.events() if e["level"] == "warning"] == [events.EXABGP_DISCONNECTED]


# ------------------------------------------------------------------------------------ properties


@settings(deadline=PER_EXAMPLE)
@given(st.binary(max_size=2000))
def test_parse_never_raises_on_any_bytes(raw: bytes) -> None:
    event = messages.parse(raw)
    assert isinstance(event, messages.Event)


@settings(deadline=PER_EXAMPLE)
@given(depth=st.integers(1, DEEP), opener=st.sampled_from(["[", '{"a":', '{"type": "update", "neighbor": [']))
def test_parse_never_raises_on_any_nesting(depth: int, opener: str) -> None:
    event = messages.parse(opener * depth)
    assert isinstance(event, messages.UnparsableLine)


_SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
_KEYS = st.sampled_from(
    [
        "type",
        "neighbor",
        "address",
        "peer",
        "state",
        "reason",
        "direction",
        "message",
        "update",
        "eor",
        "afi",
        "safi",
        "attribute",
        "as-path",
        "0",
        "value",
        "med",
        "community",
        "large-community",
        "announce",
        "withdraw",
        "ipv4 unicast",
        "nlri",
        "path-information",
        "notification",
        "code",
        "subcode",
    ]
)
_DOCS = st.recursive(_SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5))


@settings(deadline=PER_EXAMPLE)
@given(_DOCS)
def test_parse_never_raises_on_exabgp_shaped_json(doc: object) -> None:
    line = json.dumps(doc)
    event = messages.parse(line)
    assert isinstance(event, messages.Event)
    if isinstance(event, messages.UpdateEvent):  # whatever is accepted is in range
        assert all(0 <= a <= 4294967295 for a in event.attributes.as_path)
        assert event.attributes.med is None or 0 <= event.attributes.med <= 4294967295
