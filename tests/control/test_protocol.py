"""The wire format: envelopes, arguments, answers, and the client's reading of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgpctl.control import client, protocol
from bgpctl.control.protocol import Code, ProtocolError
from bgpctl.errors import EXIT_FAILURE, EXIT_USAGE


def test_a_good_request_parses_and_its_args_are_checked() -> None:
    r = protocol.parse_request(protocol.request_line("routes", {"peer": "edge", "prefix": "203.0.113.7"}, "a1"))
    assert (r.v, r.id, r.verb) == (1, "a1", "routes")
    assert protocol.check_args(protocol.VERBS["routes"], r.args) == {"peer": "edge", "prefix": "203.0.113.7/32"}
    assert protocol.check_args(protocol.VERBS["status"], {}) == {}


def test_answers_are_one_compact_line_and_refuse_nan() -> None:
    line = protocol.encode(protocol.ok(3, {"x": 1}))
    assert line == b'{"v":1,"id":3,"ok":true,"result":{"x":1}}\n'
    with pytest.raises(ValueError):
        protocol.encode({"x": float("nan")})
    assert protocol.finite(float("inf")) is None and protocol.finite(1.23456) == 1.235


def test_a_state_changing_verb_needs_a_reason() -> None:
    verb = protocol.Verb("drain", "test", {}, changes_state=True)
    with pytest.raises(ProtocolError) as e:
        protocol.check_args(verb, {})
    assert e.value.code is Code.BAD_ARGS and "reason" in e.value.message
    assert protocol.check_args(verb, {"reason": " maintenance CHG-1 "}) == {"reason": "maintenance CHG-1"}
    for bad in ("", "   ", "x" * 501, "a\nb", 5):
        with pytest.raises(ProtocolError):
            protocol.check_args(verb, {"reason": bad})


def test_verbs_lists_every_verb_with_its_arguments() -> None:
    result = protocol.verbs_result()
    assert result["version"] == 1
    assert {v["verb"] for v in result["verbs"]} == set(protocol.VERBS)
    assert set(next(v for v in result["verbs"] if v["verb"] == "routes")["args"]) == {"peer", "prefix"}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_give_a_request_or_one_protocol_error(data: bytes) -> None:
    try:
        r = protocol.parse_request(data)
    except ProtocolError as e:
        assert e.code in set(Code) and e.message
        return
    assert r.v == protocol.VERSION and isinstance(r.verb, str)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=10), st.none() | st.integers() | st.text(max_size=20) | st.booleans()))
def test_any_args_are_checked_or_refused_with_bad_args(args: dict[str, object]) -> None:
    for verb in protocol.VERBS.values():
        try:
            protocol.check_args(verb, args)
        except ProtocolError as e:
            assert e.code is Code.BAD_ARGS


def test_the_client_reads_results_and_turns_errors_into_one_line() -> None:
    where = Path("/run/x/control.sock")
    assert client.parse_answer(b'{"v":1,"id":1,"ok":true,"result":{"a":1}}', where) == {"a": 1}
    err = protocol.encode(protocol.error(1, Code.BAD_ARGS, "no peer 'x'", "bgpctl status lists the peers"))
    with pytest.raises(client.ControlError) as e:
        client.parse_answer(err, where)
    assert str(e.value) == "the daemon refused: no peer 'x' (bgpctl status lists the peers)"
    assert e.value.exit_code == EXIT_USAGE
    with pytest.raises(client.ControlError) as e:
        client.parse_answer(protocol.encode(protocol.error(1, Code.INTERNAL, "bug")), where)
    assert e.value.exit_code == EXIT_FAILURE
    for junk in (b"hello", b"[]", json.dumps({"v": 2, "ok": True}).encode()):
        with pytest.raises(client.ControlError):
            client.parse_answer(junk, where)


def test_the_client_says_the_daemon_is_not_running(tmp_path: Path) -> None:
    with pytest.raises(client.ControlError) as e:
        client.call(tmp_path, "status")
    assert str(e.value).startswith(f"the daemon is not running (no socket at {tmp_path}/control.sock)")
    assert e.value.exit_code == EXIT_FAILURE
