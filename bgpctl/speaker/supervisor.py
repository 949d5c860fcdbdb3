"""Run ExaBGP as bgpctl's child, restart it with backoff whenever it exits, stop it on shutdown.

ExaBGP exits 0 when it gives up on its API process (docs/design.md, "ExaBGP facts", 2), so *any* exit that
bgpctl did not ask for is a crash here. The child stays in bgpctl's process group and gets SIGTERM if bgpctl dies
(PR_SET_PDEATHSIG), so no ExaBGP outlives its controller; with graceful restart, the peers keep the
routes until the next bgpctl re-announces them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import os
import random
import signal
import time
from collections.abc import Callable, Sequence

import structlog

from bgpctl import events
from bgpctl.errors import SpeakerError
from bgpctl.speaker.backoff import Backoff

_PR_SET_PDEATHSIG = 1
_RECENT_LINES = 50


SCRUBBED = "***"


def scrub(line: str, secrets: Sequence[str]) -> str:
    """``line`` with every occurrence of every secret replaced by ``***`` (longest first, so a secret that
    contains another is scrubbed whole). ExaBGP echoes the configuration line it failed on, and that line
    can hold an MD5 password."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            line = line.replace(secret, SCRUBBED)
    return line


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Supervisor:
    """Keeps one child process running. ``on_start(pid)`` / ``on_exit(rc)`` are called on the loop."""

    def __init__(
        self,
        argv: Sequence[str],
        log: structlog.typing.FilteringBoundLogger,
        *,
        backoff: Backoff | None = None,
        stop_grace_s: float = 5.0,
        on_start: Callable[[int], None] | None = None,
        on_exit: Callable[[int], None] | None = None,
        rng: random.Random | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        """``secrets``: strings never to log (the MD5 passwords); the child's output is scrubbed of them."""
        self._argv = list(argv)
        self._secrets = tuple(s for s in secrets if s)
        self._log = log
        self._backoff = backoff or Backoff()
        self._stop_grace_s = stop_grace_s
        self._on_start = on_start
        self._on_exit = on_exit
        self._rng = rng or random.Random()
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._started = asyncio.Event()
        self.recent: collections.deque[str] = collections.deque(maxlen=_RECENT_LINES)
        self.starts = 0
        self.exits: list[int] = []

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    async def start(self) -> None:
        """Spawn the child (and keep it running). Returns once the first spawn succeeded."""
        if self._task is not None:
            raise SpeakerError("the ExaBGP supervisor is already running")
        self._task = asyncio.create_task(self._run(), name="exabgp-supervisor")
        waiter = asyncio.create_task(self._started.wait())
        done, _ = await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task in done:
            waiter.cancel()
            self._task.result()  # raises the spawn error

    async def _spawn(self) -> asyncio.subprocess.Process:
        try:
            return await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        except OSError as e:
            raise SpeakerError(
                f"cannot start ExaBGP ({self._argv[0]}): {e.strerror}; check speaker.exabgp.binary in the policy"
            ) from e

    async def _pump_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = scrub(raw.decode("utf-8", "replace").rstrip(), self._secrets)
            self.recent.append(line)
            self._log.debug(events.EXABGP_OUTPUT, pid=proc.pid, line=line)

    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                proc = await self._spawn()
            except SpeakerError as e:
                if self.starts == 0:
                    raise  # the first start fails loudly: configuration problem
                attempt += 1
                delay = self._backoff.delay(attempt, self._rng.random())
                self._log.error(events.EXABGP_SPAWN_FAILED, error=str(e), attempt=attempt, retry_in_s=round(delay, 3))
                await asyncio.sleep(delay)
                continue
            self._proc = proc
            self.starts += 1
            began = time.monotonic()
            self._log.info(events.EXABGP_STARTED, pid=proc.pid, start=self.starts)
            if self._on_start is not None:
                self._on_start(proc.pid)
            self._started.set()
            pump = asyncio.create_task(self._pump_output(proc))
            rc = await proc.wait()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(pump, 1.0)
            self.exits.append(rc)
            if self._on_exit is not None:
                self._on_exit(rc)
            if self._stopping:
                self._log.info(events.EXABGP_STOPPED, pid=proc.pid, rc=rc)
                break
            ran = time.monotonic() - began
            attempt = 1 if ran >= self._backoff.reset_after_s else attempt + 1
            delay = self._backoff.delay(attempt, self._rng.random())
            self._log.error(
                events.EXABGP_EXITED,
                pid=proc.pid,
                rc=rc,
                ran_s=round(ran, 3),
                restart_in_s=round(delay, 3),
                attempt=attempt,
                last_output=list(self.recent)[-10:],
                hint="bgpctl restarts ExaBGP; with graceful restart the peers keep the routes",
            )
            await asyncio.sleep(delay)

    def signal_child(self, sig: int) -> bool:
        """Send ``sig`` to the current child (e.g. to force a restart). False if there is none."""
        pid = self.pid
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        return True

    async def stop(self) -> None:
        """SIGTERM the child, SIGKILL it after ``stop_grace_s``, and stop restarting."""
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            self.signal_child(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), self._stop_grace_s)
            except TimeoutError:
                self._log.warning(events.EXABGP_KILL, pid=proc.pid, after_s=self._stop_grace_s)
                self.signal_child(signal.SIGKILL)
                await proc.wait()
        if self._task is not None:
            task, self._task = self._task, None
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, SpeakerError):
                await task
