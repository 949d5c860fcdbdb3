"""Bad outside signals (issue 14, point 2): each is one clear ``signal.ignored`` warning naming the signal and
what is wrong, one count in ``bgpctl_signal_errors_total{signal,reason}``, state ``error``, and nothing
changed: the controller is told nothing (the probes decide), no traceback, no hang.

The sources are the real ones: HTTP against a real stdlib HTTP server on 127.0.0.1 (bad bodies, a slow
and a trickling server, a redirect loop, HTTP errors, a closed port), files on disk (a directory, a
symbolic link, a FIFO, an oversized file, a file the kernel refuses to read, empty without ``present``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from bgpctl import events
from bgpctl.core.controller import Controller
from bgpctl.daemon.sinks import Metrics
from bgpctl.policy.model import Policy
from bgpctl.signals.feed import SignalFeed
from bgpctl.signals.sources import FileSource, HttpSource
from tests.signals.support import policy_with

TIMEOUT_S = 0.5
HANG_BUDGET_S = 3.0  # a read must end well within this, whatever the server does
MAX_BYTES = 4096

_GOOD = b'{"regions": {"use1": {"state": "down", "reason": "ok doc"}}}'

Handler = Callable[[http.server.BaseHTTPRequestHandler], None]


def _send(h: http.server.BaseHTTPRequestHandler, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    h.send_response(code)
    for k, v in (headers or {"Content-Type": "application/json"}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _chunked_huge(h: http.server.BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for _ in range(64):  # 64 x 1 KiB, no Content-Length: cut while streaming
        h.wfile.write(b"400\r\n" + b" " * 1024 + b"\r\n")
    h.wfile.write(b"0\r\n\r\n")


def _slow(h: http.server.BaseHTTPRequestHandler) -> None:
    time.sleep(TIMEOUT_S * 10)  # 5 s, like the trickle: far past the bound below, so only the timeout ends it
    _send(h, 200, _GOOD)


def _trickle(h: http.server.BaseHTTPRequestHandler) -> None:
    body = b" " * 40 + _GOOD
    h.send_response(200)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    for byte in body:  # one byte every 50 ms: each read is quick, the whole answer is not
        h.wfile.write(bytes([byte]))
        h.wfile.flush()
        time.sleep(0.05)


ROUTES: dict[str, Handler] = {
    "/good": lambda h: _send(h, 200, _GOOD),
    "/not-json": lambda h: _send(h, 200, b"<html>maintenance</html>"),
    "/not-utf8": lambda h: _send(h, 200, b'{"regions": {"use1": {"state": "down", "reason": "\xff"}}}'),
    "/deep": lambda h: _send(h, 200, b"[" * 1500 + b"]" * 1500),
    "/wrong-type-state": lambda h: _send(h, 200, b'{"regions": {"use1": {"state": 1}}}'),
    "/wrong-type-regions": lambda h: _send(h, 200, b'{"regions": ["use1"]}'),
    "/list": lambda h: _send(h, 200, b'[{"use1": "down"}]'),
    "/unknown-region": lambda h: _send(h, 200, b'{"regions": {"use9": {"state": "down"}}}'),
    "/unknown-path": lambda h: _send(h, 200, b'{"paths": {"use1/dx": {"state": "down"}}}'),
    "/control-char": lambda h: _send(h, 200, b'{"regions": {"use1": {"state": "down", "reason": "a\\u0007b"}}}'),
    "/future": lambda h: _send(h, 200, b'{"generated_at": 4102444800, "regions": {}}'),
    "/huge": lambda h: _send(h, 200, b'{"regions": {}, "pad": "' + b"x" * 100_000 + b'"}'),
    "/huge-chunked": _chunked_huge,
    "/slow": _slow,
    "/trickle": _trickle,
    "/loop": lambda h: _send(h, 302, b"", {"Location": "/loop"}),
    "/500": lambda h: _send(h, 500, b"oops"),
    "/404": lambda h: _send(h, 404, b"no"),
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        route = ROUTES.get(self.path)
        if route is None:
            _send(self, 404, b"")
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up: expected
            route(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, name="signal-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed when the block ends: nobody listens there


def _http_policy(tmp_path: Path, url: str) -> Policy:
    return policy_with(
        tmp_path,
        f"  relay: {{ kind: http, url: '{url}', interval_s: 1, timeout_s: {TIMEOUT_S}, max_age_s: 10, "
        f"max_bytes: {MAX_BYTES} }}\n",
    )


def _file_policy(tmp_path: Path, path: Path | str, extra: str = "") -> Policy:
    return policy_with(tmp_path, f"  flag: {{ kind: file, path: '{path}', max_bytes: {MAX_BYTES}{extra} }}\n")


def _read_and_feed(policy: Policy) -> tuple[list[dict[str, Any]], Metrics, Controller, float]:
    """One read of the policy's only signal through the real source and feed; the logs, metrics, controller
    and how long the read took."""
    (name,) = policy.signals
    metrics, ctl = Metrics(), Controller(policy)
    health = dict(ctl.health)

    async def read() -> Any:
        async with httpx.AsyncClient(follow_redirects=False, trust_env=False) as client:
            feed = SignalFeed(policy, structlog.get_logger(), metrics, client=client)
            source = feed.sources[name]
            assert isinstance(source, FileSource | HttpSource)
            return feed, await asyncio.wait_for(source.read(), HANG_BUDGET_S)

    started = time.monotonic()
    feed, reading = asyncio.run(read())
    took = time.monotonic() - started
    with capture_logs() as logs:
        feed.take(name, reading)
        feed.feed(ctl, time.time())
    assert ctl.signals == {} and ctl.health == health, "a bad signal changed the controller"
    return [dict(e) for e in logs], metrics, ctl, took


def _one_warning(logs: list[dict[str, Any]], name: str, reason: str, says: str) -> dict[str, Any]:
    assert len(logs) == 1, logs
    (w,) = logs
    assert (w["event"], w["log_level"], w["signal"], w["state"]) == (events.SIGNAL_IGNORED, "warning", name, "error")
    assert w["reason"] == reason, w
    assert says in w["error"], (says, w["error"])
    assert "Traceback" not in w["error"] and "probes alone decide" in w["hint"]
    return w


def _counted(metrics: Metrics, name: str, reason: str) -> None:
    assert metrics.registry.get_sample_value("bgpctl_signal_errors_total", {"signal": name, "reason": reason}) == 1.0
    assert metrics.registry.get_sample_value("bgpctl_signal_state", {"signal": name, "state": "error"}) == 1.0


def test_the_good_document_is_read_so_the_bad_ones_fail_for_their_own_reason(server: str, tmp_path: Path) -> None:
    policy = _http_policy(tmp_path, f"{server}/good")
    metrics, ctl = Metrics(), Controller(policy)

    async def read() -> Any:
        async with httpx.AsyncClient(trust_env=False) as client:
            feed = SignalFeed(policy, structlog.get_logger(), metrics, client=client)
            return feed, await feed.sources["relay"].read()

    feed, reading = asyncio.run(read())
    feed.take("relay", reading)
    feed.feed(ctl, time.time())
    assert [str(m) for m in ctl.signals["relay"]] == ["signal relay: region use1 down: ok doc"]


HTTP_CASES = [
    ("/not-json", "parse", "not JSON (Expecting value at line 1 column 1)"),
    ("/not-utf8", "parse", "not UTF-8 text"),
    ("/deep", "parse", "not JSON (nested too deeply"),
    ("/wrong-type-state", "malformed", "regions.use1.state: state is 'down', 'degraded' or 'ok'"),
    ("/wrong-type-regions", "malformed", "regions: Input should be a valid dictionary"),
    ("/list", "malformed", "the document: expected a JSON object"),
    ("/unknown-region", "unknown_target", "unknown region 'use9'; the policy's regions are use1, usw2"),
    ("/unknown-path", "unknown_target", "unknown path 'use1/dx'; write REGION/PATH, one of use1/interconnect"),
    ("/control-char", "malformed", "a reason is one line of at most 200 characters without control characters"),
    ("/future", "clock", "s in the future: check the source's clock (NTP)"),
    ("/huge", "too_large", f"100026 bytes, more than max_bytes {MAX_BYTES}"),  # said by Content-Length
    ("/huge-chunked", "too_large", f"more, more than max_bytes {MAX_BYTES}"),
    ("/slow", "timeout", f"no complete answer within timeout_s {TIMEOUT_S:g} s"),
    ("/trickle", "timeout", f"no complete answer within timeout_s {TIMEOUT_S:g} s"),
    ("/loop", "redirect", "HTTP 302 redirect to '/loop': redirects are not followed"),
    ("/500", "http_status", "HTTP 500 Internal Server Error"),
    ("/404", "http_status", "HTTP 404 Not Found"),
]


@pytest.mark.parametrize(("route", "reason", "says"), HTTP_CASES, ids=[c[0][1:] for c in HTTP_CASES])
def test_a_bad_http_signal_is_one_warning_and_changes_nothing(
    server: str, tmp_path: Path, route: str, reason: str, says: str
) -> None:
    logs, metrics, _, took = _read_and_feed(_http_policy(tmp_path, server + route))
    _one_warning(logs, "relay", reason, says)
    _counted(metrics, "relay", reason)
    # the timeout (0.5 s) must end it, not the server (5 s for /slow and /trickle): 2 s of slack for a loaded CI
    # (1.52 s seen once beside other labs), still far below what waiting out the server would take
    assert took < TIMEOUT_S + 2.0, f"the read took {took:.2f} s: the timeout must bound it"


def test_nobody_listening_is_one_warning(tmp_path: Path) -> None:
    logs, metrics, _, _ = _read_and_feed(_http_policy(tmp_path, f"http://127.0.0.1:{_closed_port()}/h.json"))
    _one_warning(logs, "relay", "connect", "cannot connect")
    _counted(metrics, "relay", "connect")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "flag"
    d.mkdir()
    logs, metrics, _, _ = _read_and_feed(_file_policy(tmp_path, d))
    _one_warning(logs, "flag", "unreadable", "is a directory")
    _counted(metrics, "flag", "unreadable")


def test_a_symbolic_link_is_refused_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_bytes(_GOOD)
    link = tmp_path / "flag"
    link.symlink_to(target)
    logs, metrics, _, _ = _read_and_feed(_file_policy(tmp_path, link))
    _one_warning(logs, "flag", "unreadable", "is a symbolic link")
    _counted(metrics, "flag", "unreadable")


def test_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "flag"
    os.mkfifo(fifo)
    logs, _, _, took = _read_and_feed(_file_policy(tmp_path, fifo))
    _one_warning(logs, "flag", "unreadable", "is a FIFO")
    assert took < 1.0


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "flag"
    big.write_bytes(b" " * (MAX_BYTES + 1))
    logs, metrics, _, _ = _read_and_feed(_file_policy(tmp_path, big))
    _one_warning(logs, "flag", "too_large", f"{MAX_BYTES + 1} bytes, more than max_bytes {MAX_BYTES}")
    _counted(metrics, "flag", "too_large")


def test_a_file_the_kernel_refuses_to_read_is_refused(tmp_path: Path) -> None:
    # /proc/self/mem is a regular file that even root cannot read at offset 0 (EIO): unreadable for real
    logs, metrics, _, _ = _read_and_feed(_file_policy(tmp_path, "/proc/self/mem"))
    _one_warning(logs, "flag", "unreadable", "cannot read it: Input/output error")
    _counted(metrics, "flag", "unreadable")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file of mode 000")
def test_a_file_without_read_permission_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "flag"
    f.write_bytes(_GOOD)
    f.chmod(0)
    logs, _, _, _ = _read_and_feed(_file_policy(tmp_path, f))
    _one_warning(logs, "flag", "unreadable", "permission denied")


@pytest.mark.parametrize(
    ("content", "reason", "says"),
    [
        (b"", "malformed", "the file is empty and the policy gives this signal no 'present' mark"),
        (b"regions: [use1\n", "parse", "not YAML"),
        (b"- use1\n- down\n", "malformed", "expected a JSON object"),
        (b"regions:\n  use1: {state: gone}\n", "malformed", "state is 'down', 'degraded' or 'ok'"),
        (b"regions:\n  use9: {state: down}\n", "unknown_target", "unknown region 'use9'"),
        (b'{"regions": {"use1": {"state": "down"}}', "parse", "not JSON"),
    ],
    ids=["empty-no-present", "bad-yaml", "yaml-list", "bad-state", "unknown-region", "truncated-json"],
)
def test_a_bad_flag_document_is_one_warning(tmp_path: Path, content: bytes, reason: str, says: str) -> None:
    f = tmp_path / "flag"
    f.write_bytes(content)
    logs, metrics, _, _ = _read_and_feed(_file_policy(tmp_path, f))
    w = _one_warning(logs, "flag", reason, says)
    assert str(f) in w["error"]
    _counted(metrics, "flag", reason)
