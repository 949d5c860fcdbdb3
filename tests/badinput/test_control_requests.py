"""Bad requests on the daemon's control socket: each gets one clear error answer (code, message, hint),
never a traceback or a hang, and the server answers the next good request exactly as before.

The server is the daemon's (ControlServer, Dispatcher and the daemon's handlers) on a real Unix socket.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgpctl.control import client, protocol
from bgpctl_lab.poll import eventually
from tests.control.support import Running, judge, lab_policy, serving, snapshot

GOOD = protocol.request_line("status", {"decisions": 5}, "good")


def _req(**fields: Any) -> bytes:
    return json.dumps(fields).encode() + b"\n"


# (name, raw bytes, expected code, a word the message must hold)
CASES: list[tuple[str, bytes, str, str]] = [
    ("empty line", b"\n", "malformed", "empty"),
    ("only spaces", b"   \t \n", "malformed", "empty"),
    ("not json", b"status please\n", "malformed", "not JSON"),
    ("truncated json", b'{"v": 1, "verb": "sta\n', "malformed", "not JSON"),
    ("json array", b"[1, 2, 3]\n", "malformed", "not an array"),
    ("json string", b'"status"\n', "malformed", "not a string"),
    ("json number", b"42\n", "malformed", "not a number"),
    ("json null", b"null\n", "malformed", "not null"),
    ("NaN constant", b'{"v": NaN, "verb": "status"}\n', "malformed", "not JSON"),
    ("invalid utf-8", b'{"v": 1, "verb": "st\xff\xfeatus"}\n', "malformed", "not UTF-8"),
    ("deep nesting", b"[" * 100_00 + b"]" * 100_00 + b"\n", "malformed", "not JSON"),
    ("missing version", _req(id=1, verb="status"), "malformed", "'v'"),
    ("version 2", _req(v=2, id=1, verb="status"), "unsupported_version", "version 2"),
    ("version as string", _req(v="1", id=1, verb="status"), "unsupported_version", "version"),
    ("version true", _req(v=True, id=1, verb="status"), "unsupported_version", "version"),
    ("missing verb", _req(v=1, id=1), "malformed", "'verb'"),
    ("verb not a string", _req(v=1, id=1, verb=["status"]), "malformed", "'verb'"),
    ("unknown verb", _req(v=1, id=1, verb="shutdown"), "unknown_verb", "shutdown"),
    ("verb with NUL", _req(v=1, id=1, verb="status\u0000"), "unknown_verb", "unknown verb"),
    ("unknown envelope field", _req(v=1, id=1, verb="status", peer="edge"), "malformed", "peer"),
    ("id an object", _req(v=1, id={"a": 1}, verb="status"), "malformed", "'id'"),
    ("id a boolean", _req(v=1, id=True, verb="status"), "malformed", "'id'"),
    ("id too long", _req(v=1, id="x" * 500, verb="status"), "malformed", "longer"),
    ("id too large", _req(v=1, id=2**70, verb="status"), "malformed", "64 bits"),
    ("args a list", _req(v=1, id=1, verb="status", args=[]), "bad_args", "object"),
    ("unknown argument", _req(v=1, id=1, verb="status", args={"verbose": True}), "bad_args", "verbose"),
    ("decisions negative", _req(v=1, id=1, verb="status", args={"decisions": -1}), "bad_args", "decisions"),
    ("decisions huge", _req(v=1, id=1, verb="status", args={"decisions": 10**12}), "bad_args", "decisions"),
    ("decisions a string", _req(v=1, id=1, verb="status", args={"decisions": "5"}), "bad_args", "decisions"),
    ("decisions a float", _req(v=1, id=1, verb="status", args={"decisions": 5.0}), "bad_args", "decisions"),
    ("peer unknown", _req(v=1, id=1, verb="routes", args={"peer": "nope"}), "bad_args", "no peer 'nope'"),
    ("peer not a name", _req(v=1, id=1, verb="routes", args={"peer": "../../etc"}), "bad_args", "peer"),
    ("prefix garbage", _req(v=1, id=1, verb="routes", args={"prefix": "203.0.113.300/26"}), "bad_args", "prefix"),
    ("prefix a number", _req(v=1, id=1, verb="routes", args={"prefix": 203}), "bad_args", "prefix"),
    ("prefix enormous", _req(v=1, id=1, verb="routes", args={"prefix": "1" * 5000}), "bad_args", "prefix"),
]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    s = snapshot(judge(lab_policy()))
    with serving(tmp_path_factory.mktemp("ctl"), lambda: s, request_timeout_s=1.0) as running:
        yield running


@pytest.fixture(scope="module")
def baseline(srv: Running) -> dict[str, Any]:
    (answer,) = srv.raw(GOOD)
    assert answer["ok"] is True
    return answer


def _still_fine(srv: Running, baseline: dict[str, Any]) -> None:
    (answer,) = srv.raw(GOOD)
    assert answer == baseline


def _one_error(answers: list[dict[str, Any]], code: str, word: str) -> dict[str, Any]:
    assert len(answers) == 1, answers
    (a,) = answers
    assert a["v"] == 1 and a["ok"] is False, a
    err = a["error"]
    assert err["code"] == code, err
    assert word in err["message"], err
    assert err["hint"], err  # every error says what to do
    assert "Traceback" not in json.dumps(a)
    return a


@pytest.mark.parametrize(("name", "data", "code", "word"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_request_gets_one_error_and_changes_nothing(
    srv: Running, baseline: dict[str, Any], name: str, data: bytes, code: str, word: str
) -> None:
    _one_error(srv.raw(data), code, word)
    _still_fine(srv, baseline)


def test_the_id_of_a_readable_request_comes_back_with_its_error(srv: Running) -> None:
    a = _one_error(srv.raw(_req(v=1, id="abc", verb="nope")), "unknown_verb", "nope")
    assert a["id"] == "abc"


def test_a_line_over_the_limit_is_refused_and_the_connection_closed(srv: Running, baseline: dict[str, Any]) -> None:
    big = b'{"v": 1, "verb": "status", "args": {"x": "' + b"a" * (protocol.MAX_REQUEST_BYTES + 10) + b'"}}\n'
    _one_error(srv.raw(big + GOOD), "too_large", "longer than")
    _still_fine(srv, baseline)


def test_a_bad_request_does_not_spoil_the_next_on_the_same_connection(srv: Running, baseline: dict[str, Any]) -> None:
    answers = srv.raw(b"garbage\n" + GOOD)
    assert [a["ok"] for a in answers] == [False, True]
    assert answers[1] == baseline


def test_a_request_without_newline_before_the_client_closes_is_answered(srv: Running) -> None:
    (a,) = srv.raw(GOOD.rstrip(b"\n"))
    assert a["ok"] is True


def test_a_silent_client_gets_timeout_and_is_closed(srv: Running, baseline: dict[str, Any]) -> None:
    t0 = time.monotonic()
    answers = srv.raw(b'{"v": 1, "verb": "sta', shut=False)
    _one_error(answers, "timeout", "no whole request line")
    assert time.monotonic() - t0 < 5.0
    _still_fine(srv, baseline)


def test_a_client_that_connects_and_leaves_changes_nothing(srv: Running, baseline: dict[str, Any]) -> None:
    before = srv.counters()["connections"]
    for _ in range(20):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(srv.path))
    eventually(  # 20 connections at once are more than MAX_CONNECTIONS: until they are closed, "busy" is right
        "the 20 connections accepted and closed",
        budget=10.0,
        probe=lambda: (srv.counters()["connections"] - before, srv.server.open_connections),
        check=lambda n: [] if n == (20, 0) else [f"{n[0]} accepted, {n[1]} open"],
    )
    assert srv.raw(b"") == []
    _still_fine(srv, baseline)


def test_too_many_connections_get_busy(tmp_path: Path) -> None:
    s = snapshot(judge(lab_policy(), seconds=1))
    with serving(tmp_path, lambda: s, max_connections=2, request_timeout_s=5.0) as srv:
        held = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(2)]
        try:
            for h in held:
                h.connect(str(srv.path))
                h.sendall(b" ")  # started a request: the server is reading it
            eventually(
                "both connections accepted",
                budget=10.0,
                probe=lambda: srv.server.open_connections,
                check=lambda n: [] if n == 2 else [f"{n} open"],
            )
            _one_error(srv.raw(GOOD), "busy", "connections are open")
        finally:
            for h in held:
                h.close()
        assert client.call(tmp_path, "verbs")["version"] == 1
