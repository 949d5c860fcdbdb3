"""Delivering one event to one hook: run a program (exec) or POST it (webhook). Each call is bounded in time.

Only a hook's own worker task (:mod:`bgpctl.hooks.sink`) awaits these, never the daemon's loop. Neither
raises for a failed delivery: the :class:`Outcome` says what happened, for the metrics and the log.

exec: the program runs without a shell, in a session (and so a process group) of its own, in ``/``, with
only the allowlisted variables of the daemon's environment (plus ``PATH`` when not allowlisted, and
``BGPCTL_HOOK``, ``BGPCTL_EVENT_TYPE``, ``BGPCTL_EVENT_ID``); the event is its standard input. Exit 0 is
a delivery; at ``timeout_s`` the whole process group is killed (SIGKILL). The first 4 KiB of its output
and error streams are kept for the log, the rest is read and dropped.

webhook: one POST per attempt through httpx (no redirects followed, no proxy from the environment), the
body the event's exact bytes, signed (:mod:`bgpctl.hooks.signature`). 2xx is a delivery. A connection
error, a timeout, 429 or 5xx is tried again, up to ``retries`` more times, after :func:`backoff`; any
other status is final (the receiver refuses: retrying cannot help).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx

from bgpctl import __version__
from bgpctl.hooks.event import Event
from bgpctl.hooks.signature import HEADER, sign
from bgpctl.policy.model import ExecHook, WebhookHook

OUTPUT_KEPT = 4096
"""Bytes of an exec hook's stdout and of its stderr kept for the log."""
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BACKOFF_CAP_S = 30.0
"""No wait between two webhook attempts is longer than this."""
USER_AGENT = f"bgpctl/{__version__}"


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    attempts: int
    detail: str  # "exit 0", "HTTP 204", "timed out after 5 s: process group killed", ...
    output: str = ""  # exec: the kept stdout/stderr, for the log


# --------------------------------------------------------------------------------------------
# exec


def exec_environment(hook: ExecHook, environ: Mapping[str, str], *, name: str, event: Event) -> dict[str, str]:
    """The child's whole environment: the allowlisted variables that are set, and bgpctl's own."""
    env = {k: environ[k] for k in hook.env if k in environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update({"BGPCTL_HOOK": name, "BGPCTL_EVENT_TYPE": event.type, "BGPCTL_EVENT_ID": event.id})
    return env


async def _kept(stream: asyncio.StreamReader | None) -> bytes:
    kept = bytearray()
    if stream is None:
        return b""
    while chunk := await stream.read(65536):
        kept += chunk[: max(0, OUTPUT_KEPT - len(kept))]
    return bytes(kept)


async def _feed(stdin: asyncio.StreamWriter | None, body: bytes) -> None:
    if stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a hook need not read its input
        stdin.write(body)
        await stdin.drain()
    stdin.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _output_text(out: bytes, err: bytes) -> str:
    parts = [
        f"{label}: {data.decode('utf-8', 'replace').strip()}" for label, data in (("stdout", out), ("stderr", err))
    ]
    return "; ".join(p for p in parts if not p.endswith(": "))


async def run_exec(hook: ExecHook, event: Event, env: Mapping[str, str]) -> Outcome:
    try:
        proc = await asyncio.create_subprocess_exec(
            *hook.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            cwd="/",
            start_new_session=True,  # its own process group: a timeout kills the program and its children
        )
    except OSError as e:
        return Outcome(False, 1, f"cannot run {hook.argv[0]}: {e.strerror or e}")
    try:
        async with asyncio.timeout(hook.timeout_s):
            _, out, err = await asyncio.gather(_feed(proc.stdin, event.body), _kept(proc.stdout), _kept(proc.stderr))
            code = await proc.wait()
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        return Outcome(False, 1, f"timed out after {hook.timeout_s:g} s: its process group was killed")
    finally:
        if proc.returncode is None:  # cancelled (the shutdown's flush ran out): leave nothing running
            _kill_group(proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    detail = f"exit {code}" if code >= 0 else f"killed by {signal.Signals(-code).name}"
    return Outcome(code == 0, 1, detail, _output_text(out, err))


# --------------------------------------------------------------------------------------------
# webhook


def backoff(base_s: float, retry: int, rand: Callable[[], float] = random.random) -> float:
    """The wait before retry number ``retry`` (1, 2, ...): ``base_s * 2**(retry-1)``, at most
    :data:`BACKOFF_CAP_S`, scaled by a random factor in [0.5, 1) (jitter: many daemons that lost one
    receiver do not all come back at the same instant)."""
    return min(BACKOFF_CAP_S, base_s * 2.0 ** (retry - 1)) * (0.5 + rand() / 2)


def webhook_client(hook: WebhookHook) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(hook.timeout_s),
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=2, max_keepalive_connections=1),
        headers={"User-Agent": USER_AGENT},
    )


@dataclass(frozen=True, slots=True)
class _Attempt:
    ok: bool
    retry: bool
    detail: str


async def _post(
    hook: WebhookHook, client: httpx.AsyncClient, secret: bytes, event: Event, clock: Callable[[], float]
) -> _Attempt:
    headers = {
        "Content-Type": "application/json",
        HEADER: sign(secret, event.body, int(clock())),
        "X-Bgpctl-Event": event.type,
        "X-Bgpctl-Delivery": event.id,
    }
    try:
        async with asyncio.timeout(hook.timeout_s):  # the whole attempt, whatever phase it hangs in
            r = await client.post(hook.url, content=event.body, headers=headers)
    except (TimeoutError, httpx.TimeoutException):
        return _Attempt(False, True, f"no answer within {hook.timeout_s:g} s")
    except httpx.TransportError as e:
        return _Attempt(False, True, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
    if r.is_success:
        return _Attempt(True, False, f"HTTP {r.status_code}")
    retry = r.status_code == 429 or r.status_code >= 500
    hint = "" if retry else ": the receiver refuses the event (check its URL and secret)"
    return _Attempt(False, retry, f"HTTP {r.status_code}{hint}")


async def post_webhook(
    hook: WebhookHook,
    client: httpx.AsyncClient,
    secret: bytes,
    event: Event,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rand: Callable[[], float] = random.random,
) -> Outcome:
    attempt = _Attempt(False, True, "not tried")
    tries = 0
    for tries in range(1, hook.retries + 2):
        if tries > 1:
            await sleep(backoff(hook.backoff_s, tries - 1, rand))
        attempt = await _post(hook, client, secret, event, clock)
        if attempt.ok or not attempt.retry:
            break
    return Outcome(attempt.ok, tries, attempt.detail)
