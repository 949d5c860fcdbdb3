"""ExaBGP's ``negotiated`` message -> NegotiatedEvent (issue 9, point 1)."""

from __future__ import annotations

import json

from bgpctl.speaker import messages

_HEAD = '{ "exabgp": "5.0.0", "time": 1.0, "host": "cr", "pid": 1, "ppid": 1, "counter": 2, "type": "negotiated", '
_NEIGHBOR = (
    '"neighbor": { "address": { "local": "198.18.1.2", "peer": "198.18.1.1" }, '
    '"asn": { "local": 65000, "peer": 65010 }, "router-id": "198.18.1.2", '
)


def _line(negotiated: str) -> str:
    return _HEAD + _NEIGHBOR + f'"negotiated": {negotiated} }} }}'


# the shape ExaBGP 5.0.15 writes (reactor/api/response/json.py, _negotiated), one line
WITH = (
    '{ "message_size": 4096, "hold_time": 9, "asn4": true, "multisession": false, "operational": false, '
    '"refresh": "normal", "families": ["ipv4 unicast"], "nexthop": [], '
    '"add_path": {"send": ["ipv4 unicast"], "receive": []} }'
)
WITHOUT = WITH.replace('"send": ["ipv4 unicast"]', '"send": []')


def test_negotiated_add_path_send_is_read() -> None:
    json.loads(_line(WITH))  # the sample is JSON
    ev = messages.parse(_line(WITH))
    assert ev == messages.NegotiatedEvent("198.18.1.1", ("ipv4 unicast",), ("ipv4 unicast",), (), 9)


def test_a_peer_without_add_path_receive_negotiates_no_send() -> None:
    ev = messages.parse(_line(WITHOUT))
    assert isinstance(ev, messages.NegotiatedEvent) and ev.add_path_send == ()


def test_a_malformed_negotiated_message_is_unparsable_not_an_exception() -> None:
    for bad in ('"nope"', '{"add_path": {"send": "ipv4 unicast"}}', '{"families": [1]}', '{"hold_time": "9"}'):
        ev = messages.parse(_line(bad))
        assert isinstance(ev, messages.UnparsableLine), bad
        assert "negotiated" in ev.reason
