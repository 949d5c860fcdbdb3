"""ExaBGP's ``negotiated`` message -> NegotiatedEvent (issue 9, point 1)."""

from __future__ import annotations

import json

from bgpctl.speaker import messages
from tests.speaker.exabgp_lines import WITH, WITHOUT, _line


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
