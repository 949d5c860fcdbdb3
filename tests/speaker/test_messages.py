"""Parsing ExaBGP 5's API lines (samples as ExaBGP 5.0.15 wrote them, docs/design.md "ExaBGP facts"), table-driven."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.speaker import messages as m
from tests.speaker.exabgp_lines import CASES, NB, H


@pytest.mark.parametrize(("why", "line", "event"), CASES, ids=[c[0] for c in CASES])
def test_parse(why: str, line: str, event: m.Event) -> None:
    assert m.parse(line) == event


def test_own_asn_detection() -> None:
    own = m.parse(CASES[6][1])
    foreign = m.parse(CASES[5][1])
    assert isinstance(own, m.UpdateEvent) and own.has_asn(65000)
    assert isinstance(foreign, m.UpdateEvent) and not foreign.has_asn(65000)


MALFORMED = [
    ("text output", "exabgp 5.0.15", "neither an ACK"),
    ("truncated JSON", H + '"type": "state", ', "invalid JSON"),
    ("JSON array", "[1, 2]", "neither an ACK"),
    ("no type", '{ "exabgp": "5.0.0" }', "type is not a string"),
    ("state without neighbor", H + '"type": "state" }', "neighbor is not an object"),
    (
        "nlri not a string",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": { '
        '"announce": { "ipv4 unicast": { "198.18.1.1": [ { "nlri": 5 } ] } } } } } }',
        "nlri is not a string",
    ),
    (
        "bad path id",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": { '
        '"withdraw": { "ipv4 unicast": [ { "nlri": "203.0.113.0/26", "path-information": "x" } ] } } } } }',
        "path-information",
    ),
    (
        "med as a string",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": { '
        '"attribute": { "med": "5" } } } } }',
        "med is not an integer",
    ),
    (
        "community of the wrong size",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": '
        '{ "attribute": { "community": [ [ 1, 2, 3 ] ] } } } } }',
        "community entry",
    ),
    ("empty line", "", "neither an ACK"),
    ("ack with trailing text", "done later", "neither an ACK"),
]


@pytest.mark.parametrize(("why", "line", "reason"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_lines_are_unparsable(why: str, line: str, reason: str) -> None:
    event = m.parse(line)
    assert isinstance(event, m.UnparsableLine)
    assert event.line == line.rstrip("\n")
    assert reason in event.reason


@given(st.text(max_size=300))
def test_parse_never_raises(line: str) -> None:
    assert m.parse(line) is not None


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "type",
                        "neighbor",
                        "address",
                        "peer",
                        "state",
                        "message",
                        "update",
                        "announce",
                        "withdraw",
                        "attribute",
                        "nlri",
                        "eor",
                        "as-path",
                    ]
                ),
                inner,
                max_size=5,
            )
        ),
        max_leaves=20,
    )
)
def test_parse_never_raises_on_json(doc: object) -> None:
    assert m.parse(json.dumps(doc)) is not None
