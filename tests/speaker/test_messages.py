"""Parsing ExaBGP 5's API lines (samples as ExaBGP 5.0.15 wrote them, docs/design.md "ExaBGP facts"), table-driven."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.core.types import RouteKey
from bgpctl.speaker import messages as m

H = '{ "exabgp": "5.0.0", "time": 1795237155.3036466, "host" : "vm", "pid" : 9451, "ppid" : 1, "counter": 2, '
NB = (
    '"neighbor": { "address": { "local": "198.18.1.2", "peer": "198.18.1.1" }, '
    '"asn": { "local": 65000, "peer": 65010 }, "router-id": "198.18.1.2" '
)
NB6 = NB.replace('"198.18.1.2", "peer": "198.18.1.1"', '"2001:db8:1::2", "peer": "2001:db8:1::1"')

CASES: list[tuple[str, str, m.Event]] = [
    ("ack done", "done\n", m.Ack(True)),
    ("ack error", "error", m.Ack(False)),
    (
        "state connected",
        H + '"type": "state", ' + NB + ', "state": "connected" } }',
        m.StateEvent("198.18.1.1", "connected"),
    ),
    ("state up", H + '"type": "state", ' + NB + ', "state": "up" } }', m.StateEvent("198.18.1.1", "up")),
    (
        "state down with reason",
        H + '"type": "state", ' + NB + ', "state": "down", "reason": "notification received (6,2)" } }',
        m.StateEvent("198.18.1.1", "down", "notification received (6,2)"),
    ),
    (
        "update with add-path",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": { "attribute": { "origin": '
        '"igp", "as-path": {"0": {"element": "as-sequence", "value": [65010]}}, "med": 0 }, "announce": { "ipv4 '
        'unicast": { "198.18.1.1": [ { "nlri": "192.0.2.0/24", "path-information": "0.0.0.2" } ] } } } } } }',
        m.UpdateEvent(
            "198.18.1.1",
            "receive",
            m.RouteAttributes((65010,), 0, "igp"),
            (m.Nlri("ipv4 unicast", RouteKey("192.0.2.0/24", 2), "198.18.1.1"),),
            (),
        ),
    ),
    (
        "our own route reflected back, with communities",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": { "attribute": { "origin": '
        '"igp", "as-path": {"0": {"element": "as-sequence", "value": [65010, 65000, 65000]}}, "community": [ [ 65000, '
        '100 ], [ 65000, 200 ] ], "extended-community": [ { "value": 842122827661412, '
        '"string": "target:65000:100" } ], '
        '"large-community": [ [ 65000, 1 , 2 ] ] }, "announce": { "ipv4 unicast": { "198.18.1.1": [ { "nlri": '
        '"203.0.113.0/26" } ] } } } } } }',
        m.UpdateEvent(
            "198.18.1.1",
            "receive",
            m.RouteAttributes((65010, 65000, 65000), None, "igp", ("65000:100", "65000:200"), ("65000:1:2",)),
            (m.Nlri("ipv4 unicast", RouteKey("203.0.113.0/26"), "198.18.1.1"),),
            (),
        ),
    ),
    (
        "IPv6 NLRI under the global and the link-local next hop: deduplicated, global kept",
        H + '"type": "update", ' + NB6 + ', "direction": "receive", "message": { "update": { "attribute": { "origin": '
        '"igp", "as-path": {"0": {"element": "as-sequence", "value": [65010]}} }, "announce": { "ipv6 unicast": { '
        '"fe80::cca3:6ff:fe1d:4a83": [ { "nlri": "2001:db8:10::/48" } ], "2001:db8:1::1": [ { "nlri": '
        '"2001:db8:10::/48" } ] } } } } } }',
        m.UpdateEvent(
            "2001:db8:1::1",
            "receive",
            m.RouteAttributes((65010,), None, "igp"),
            (m.Nlri("ipv6 unicast", RouteKey("2001:db8:10::/48"), "2001:db8:1::1"),),
            (),
        ),
    ),
    (
        "end of RIB",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "eor": { "afi" : "ipv4", '
        '"safi" : "unicast" } } } }',
        m.EorEvent("198.18.1.1", "receive", "ipv4", "unicast"),
    ),
    (
        "withdraw",
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": { "withdraw": { '
        '"ipv4 unicast": [ { "nlri": "203.0.113.0/26", "path-information": "0.0.0.3" } ] } } } } }',
        m.UpdateEvent(
            "198.18.1.1",
            "receive",
            m.RouteAttributes(),
            (),
            (m.Nlri("ipv4 unicast", RouteKey("203.0.113.0/26", 3), None),),
        ),
    ),
    (
        "sent update echo",
        H + '"type": "update", ' + NB + ', "direction": "send", "message": { "update": { "attribute": '
        '{ "origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65000, 65000, 65000]}} }, '
        '"announce": { '
        '"ipv4 unicast": { "198.18.1.2": [ { "nlri": "203.0.113.0/26" } ] } } } } } }',
        m.UpdateEvent(
            "198.18.1.1",
            "send",
            m.RouteAttributes((65000, 65000, 65000), None, "igp"),
            (m.Nlri("ipv4 unicast", RouteKey("203.0.113.0/26"), "198.18.1.2"),),
            (),
        ),
    ),
    (
        "notification",
        H + '"type": "notification", ' + NB + ', "direction": "receive", "notification": { "code": 6, '
        '"subcode": 2, "data": "0x5368", "message": "Shutdown Communication: \\"maintenance-window\\"" }  } }',
        m.NotificationEvent("198.18.1.1", "receive", 6, 2, 'Shutdown Communication: "maintenance-window"'),
    ),
    (
        "ExaBGP shutting down",
        '{ "exabgp": "5.0.0", "time": 1795237155.3036466, "host" : "vm", "pid" : 9451, '
        '"ppid" : 1, "type": "notification", "notification": "shutdown" }',
        m.ShutdownEvent(),
    ),
    (
        "other event type",
        H + '"type": "keepalive", ' + NB + ', "direction": "receive" } }',
        m.OtherEvent("keepalive", "198.18.1.1"),
    ),
]


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
