"""Delivering one event: real programs (exec) and a real HTTP server (webhook), each bounded in time."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from pathlib import Path

import pytest

from bgpctl import events
from bgpctl.hooks import deliver
from bgpctl.hooks.event import make_event
from bgpctl.hooks.signature import HEADER, verify
from bgpctl.policy.model import ExecHook, WebhookHook
from bgpctl_lab.hook_receiver import receiving

KEY = b"test-key"
EVENT = make_event(events.REGION_LOST, {"region": "use1"}, at=1_780_000_000.0, host="cr")


def exec_hook(tmp: Path, script: str, **kw: object) -> ExecHook:
    prog = tmp / "hook.sh"
    prog.write_text("#!/bin/sh\n" + script)
    prog.chmod(0o755)
    return ExecHook.model_validate({"kind": "exec", "argv": [str(prog), "arg one"], **kw})


def run(hook: ExecHook, environ: dict[str, str]) -> deliver.Outcome:
    env = deliver.exec_environment(hook, environ, name="t", event=EVENT)
    return asyncio.run(deliver.run_exec(hook, EVENT, env))


def test_exec_gets_the_event_on_stdin_its_argv_as_given_and_only_allowlisted_variables(tmp_path: Path) -> None:
    out = tmp_path / "seen"
    hook = exec_hook(tmp_path, f'cat > {out}.json; printf "%s\\n" "$1" > {out}.arg; env > {out}.env\n', env=["KEEP"])
    o = run(hook, {"KEEP": "yes", "AWS_SECRET_ACCESS_KEY": "no", "HOME": "/root"})
    assert (o.ok, o.detail, o.attempts) == (True, "exit 0", 1)
    assert Path(f"{out}.json").read_bytes() == EVENT.body
    assert Path(f"{out}.arg").read_text() == "arg one\n"  # no shell split it
    env = dict(line.split("=", 1) for line in Path(f"{out}.env").read_text().splitlines())
    env.pop("PWD", None)  # the shell's own
    env.pop("SHLVL", None)
    assert env == {
        "KEEP": "yes",
        "PATH": deliver.DEFAULT_PATH,
        "BGPCTL_HOOK": "t",
        "BGPCTL_EVENT_TYPE": "region.lost",
        "BGPCTL_EVENT_ID": EVENT.id,
    }


def test_exec_failure_says_the_exit_code_and_the_first_output(tmp_path: Path) -> None:
    hook = exec_hook(tmp_path, "echo 'no credentials' >&2; head -c 100000 /dev/zero | tr '\\0' x; exit 3\n")
    o = run(hook, {})
    assert not o.ok and o.detail == "exit 3"
    assert "stderr: no credentials" in o.output
    assert len(o.output) < 2 * deliver.OUTPUT_KEPT + 100  # the rest was read and dropped


def test_exec_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    hook = ExecHook.model_validate({"kind": "exec", "argv": [str(tmp_path / "missing")]})
    o = run(hook, {})
    assert not o.ok and o.detail == f"cannot run {tmp_path / 'missing'}: No such file or directory"


def test_exec_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    # the hook starts a child that ignores its stdin and would outlive it, then waits itself
    hook = exec_hook(tmp_path, f"sleep 30 & echo $! > {pidfile}; wait\n", timeout_s=0.5)
    started = time.monotonic()
    o = run(hook, {})
    took = time.monotonic() - started
    assert not o.ok and o.detail == "timed out after 0.5 s: its process group was killed"
    assert took < 5
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
        state = Path(f"/proc/{child}/stat").read_text().split()[2] if Path(f"/proc/{child}/stat").exists() else "X"
        if state == "Z":  # killed, waiting for init to reap it
            break
        time.sleep(0.02)
    assert not Path(f"/proc/{child}").exists() or Path(f"/proc/{child}/stat").read_text().split()[2] == "Z"


def webhook(url: str, **kw: object) -> WebhookHook:
    # timeout 10 s: a receiver in this process answers in milliseconds, but beside a loaded CI (load average 10)
    # a 1 s timeout expired once and the test counted a second attempt; the timeout's own test sets its own
    return WebhookHook.model_validate(
        {"kind": "webhook", "url": url, "secret": {"env": "K"}, "timeout_s": 10.0, "backoff_s": 0.01, **kw}
    )


def post(hook: WebhookHook, waits: list[float] | None = None) -> deliver.Outcome:
    async def go() -> deliver.Outcome:
        async def sleep(s: float) -> None:
            if waits is not None:
                waits.append(s)

        async with deliver.webhook_client(hook) as client:
            return await deliver.post_webhook(hook, client, KEY, EVENT, sleep=sleep, rand=lambda: 0.5)

    return asyncio.run(go())


def test_webhook_posts_the_exact_body_signed_with_the_key(tmp_path: Path) -> None:
    with receiving(tmp_path / "got.jsonl") as r:
        o = post(webhook(f"http://127.0.0.1:{r.server_port}/bgpctl"))
    assert (o.ok, o.attempts, o.detail) == (True, 1, "HTTP 204")
    (req,) = r.requests
    assert req["path"] == "/bgpctl" and req["body"].encode() == EVENT.body
    headers = {k.lower(): v for k, v in req["headers"].items()}
    assert headers["content-type"] == "application/json"
    assert headers["x-bgpctl-event"] == "region.lost" and headers["x-bgpctl-delivery"] == EVENT.id
    assert abs(verify(KEY, EVENT.body, headers[HEADER.lower()], now=time.time()) - time.time()) < 5
    assert json.loads(req["body"])["type"] == "region.lost"


def test_webhook_retries_5xx_and_429_with_growing_waits_then_delivers(tmp_path: Path) -> None:
    waits: list[float] = []
    with receiving(tmp_path / "got.jsonl", statuses=[503, 429]) as r:
        o = post(webhook(f"http://127.0.0.1:{r.server_port}/", retries=3, backoff_s=0.2), waits)
    assert (o.ok, o.attempts) == (True, 3)
    assert waits == [pytest.approx(0.2 * 0.75), pytest.approx(0.4 * 0.75)]
    signatures = [req["headers"][HEADER] for req in r.requests]
    assert len(set(signatures)) <= 3 and all(verify(KEY, EVENT.body, s, now=time.time()) for s in signatures)


def test_webhook_does_not_retry_a_refusal(tmp_path: Path) -> None:
    with receiving(tmp_path / "got.jsonl", statuses=[401]) as r:
        o = post(webhook(f"http://127.0.0.1:{r.server_port}/", retries=3))
    assert not o.ok and o.attempts == 1 and o.detail.startswith("HTTP 401: the receiver refuses")
    assert len(r.requests) == 1


def test_webhook_to_nobody_fails_after_its_retries() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    o = post(webhook(f"http://127.0.0.1:{port}/", retries=2), waits)
    assert not o.ok and o.attempts == 3 and "ConnectError" in o.detail
    assert len(waits) == 2


def test_webhook_to_a_silent_server_gives_up_at_its_timeout() -> None:
    with socket.socket() as s:  # accepts connections (backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        started = time.monotonic()
        o = post(webhook(f"http://127.0.0.1:{s.getsockname()[1]}/", retries=1, timeout_s=0.3))
        took = time.monotonic() - started
    assert not o.ok and o.attempts == 2 and o.detail == "no answer within 0.3 s"
    assert 0.6 <= took < 3


def test_backoff_doubles_is_capped_and_jittered() -> None:
    assert deliver.backoff(0.5, 1, lambda: 0.0) == 0.25
    assert deliver.backoff(0.5, 1, lambda: 1.0) == 0.5
    assert deliver.backoff(0.5, 3, lambda: 1.0) == 2.0
    assert deliver.backoff(10, 10, lambda: 1.0) == deliver.BACKOFF_CAP_S


def test_no_variable_of_the_daemon_leaks_without_the_allowlist(tmp_path: Path) -> None:
    hook = exec_hook(tmp_path, "true\n")
    env = deliver.exec_environment(hook, dict(os.environ, SECRET="x"), name="h", event=EVENT)
    assert set(env) == {"PATH", "BGPCTL_HOOK", "BGPCTL_EVENT_TYPE", "BGPCTL_EVENT_ID"}
