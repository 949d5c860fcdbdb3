"""The daemon's side of the outside signals: polling tasks, verdicts, the controller, logs, metrics, status.

Each signal has one asyncio task (:meth:`SignalFeed.poll`) that reads its source every ``interval_s`` and
keeps the latest :class:`~bgpctl.signals.document.Reading`; the task only awaits the read and the sleep,
so a slow or hung source never blocks the evaluation loop. The loop calls :meth:`SignalFeed.feed` before
every controller step: each reading's verdict at that moment (fresh, stale, error; pure:
:func:`~bgpctl.signals.document.verdict`) decides what the controller is told: a fresh signal's marks, or
nothing. A change of what the controller holds is logged (``signal.state``) and recorded (a ``signal``
line, so a replay reproduces it).

A stale or broken signal is ignored: one ``signal.ignored`` warning when it becomes so (or its reason
changes), then at most one every :data:`WARN_EVERY_S` while it lasts, with the number of failed reads
since the last one; every refused read counts in ``bgpctl_signal_errors_total{signal,reason}`` (and each
time a signal goes stale, reason ``stale``); ``bgpctl_signal_state{signal,state}`` says where each stands.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from bgpctl import events
from bgpctl.core.controller import Controller
from bgpctl.daemon.sinks import Metrics
from bgpctl.policy.model import FileSignal, Policy
from bgpctl.probe.recorder import Recorder
from bgpctl.signals.document import Reading, SignalError, State, Verdict, verdict
from bgpctl.signals.sources import FileSource, HttpSource, make_client, sources

WARN_EVERY_S = 60.0
"""While a signal stays stale or broken for the same reason, its warning repeats at most this often."""


@dataclass
class _Track:
    reading: Reading | None = None
    verdict: Verdict = field(default_factory=lambda: Verdict(State.PENDING, message="not read yet"))
    warned_at: float = -math.inf
    failures: int = 0  # failed reads since the last warning


def _content(r: Reading | None) -> object:
    """What a reading says, without when it was read (a new read saying the same is no news)."""
    if r is None:
        return None
    return (r.document, None if r.error is None else (r.error.reason, r.error.message), r.born)


class SignalFeed:
    def __init__(
        self,
        policy: Policy,
        log: structlog.typing.FilteringBoundLogger,
        metrics: Metrics,
        *,
        wake: Callable[[], None] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """``wake``: called (no arguments) when a reading says something new, so the loop judges it now."""
        self.policy, self.log, self.metrics, self._wake = policy, log, metrics, wake
        needs_client = any(not isinstance(s, FileSignal) for s in policy.signals.values())
        self._own_client = client is None and needs_client
        self.client = client if client is not None else make_client() if needs_client else None
        self.sources: dict[str, FileSource | HttpSource] = sources(policy, self.client)
        self._tracks = {name: _Track() for name in policy.signals}
        for name in policy.signals:
            self._export(name, State.PENDING)

    # --------------------------------------------------------------------------- polling (tasks)

    def tasks(self) -> list[asyncio.Task[None]]:
        return [asyncio.create_task(self.poll(name), name=f"signal-{name}") for name in self.sources]

    async def poll(self, name: str) -> None:
        """Read the source, keep the reading, sleep ``interval_s``; forever (cancelled at shutdown)."""
        source, interval = self.sources[name], self.policy.signals[name].interval_s
        while True:
            try:
                reading = await source.read()
            except Exception as e:  # a bug in a reader must never stop the daemon: the signal says nothing
                self.log.error(events.SIGNAL_IGNORED, signal=name, state="error", reason="internal", error=repr(e))
                reading = Reading(time.time(), error=SignalError("internal", repr(e)))
            self.take(name, reading)
            await asyncio.sleep(interval)

    def take(self, name: str, reading: Reading) -> None:
        """A new reading of ``name``: kept as the latest, counted if refused; the loop woken if it is news."""
        track = self._tracks[name]
        if reading.error is not None:
            self.metrics.signal_errors.labels(name, reading.error.reason).inc()
            track.failures += 1
        news = _content(track.reading) != _content(reading)
        track.reading = reading
        if news and self._wake is not None:
            self._wake()

    # --------------------------------------------------------------------------- the loop's side

    def feed(self, controller: Controller, now: float, recorder: Recorder | None = None) -> None:
        """Tell the controller what each signal counts for at ``now`` (log, metrics, recording on changes)."""
        for name, spec in self.policy.signals.items():
            track = self._tracks[name]
            v = verdict(track.reading, now, spec.max_age_s)
            self._report(name, track, v, now)
            track.verdict = v
            if controller.signal(name, v.marks) and recorder is not None:
                recorder.signal(name, v.marks, now)

    def _report(self, name: str, track: _Track, v: Verdict, now: float) -> None:
        old = track.verdict
        if v.state is not old.state:
            self._export(name, v.state)
            if v.state is State.STALE:
                self.metrics.signal_errors.labels(name, "stale").inc()
        if v.state in (State.STALE, State.ERROR):
            new = (v.state, v.reason) != (old.state, old.reason)
            if new or now - track.warned_at >= WARN_EVERY_S:
                self.log.warning(
                    events.SIGNAL_IGNORED,
                    signal=name,
                    state=v.state.value,
                    reason=v.reason,
                    error=v.message,
                    failed_reads=track.failures,
                    hint="ignored: the probes alone decide until it reads fresh again",
                )
                track.warned_at, track.failures = now, 0
        elif v.state is State.FRESH and (old.state is not State.FRESH or old.marks != v.marks):
            self.log.info(
                events.SIGNAL_STATE,
                signal=name,
                state=v.state.value,
                marks=[str(m) for m in v.marks],
                age_s=None if v.age_s is None else round(v.age_s, 1),
            )

    def _export(self, name: str, state: State) -> None:
        for s in State:
            self.metrics.signal_state.labels(name, s.value).set(1 if s is state else 0)

    # --------------------------------------------------------------------------- status, shutdown

    def rows(self) -> tuple[dict[str, Any], ...]:
        """The ``signals`` rows of ``status`` (bgpctl/schemas/status.schema.json), as of the last feed."""
        out = []
        for name, spec in self.policy.signals.items():
            track = self._tracks[name]
            v = track.verdict
            out.append(
                {
                    "name": name,
                    "kind": spec.kind,
                    "source": spec.path if isinstance(spec, FileSignal) else spec.url,
                    "state": v.state.value,
                    "read_at": None if track.reading is None else round(track.reading.at, 3),
                    "age_s": None if v.age_s is None else round(v.age_s, 1),
                    "max_age_s": spec.max_age_s,
                    "error": v.message if v.state in (State.STALE, State.ERROR) else None,
                    "marks": [
                        {"region": m.region, "path": m.path, "state": m.health.value, "reason": m.reason}
                        for m in v.marks
                    ],
                }
            )
        return tuple(out)

    async def close(self) -> None:
        if self._own_client and self.client is not None:
            await self.client.aclose()
