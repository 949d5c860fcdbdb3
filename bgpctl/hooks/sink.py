"""HookSink: the daemon's decisions as hook events, delivered by one worker task per hook.

A :class:`~bgpctl.daemon.sinks.DecisionSink` (and the override desk's and the reload's listener). The
daemon's loop calls it synchronously; all it does there is make each event once and ``put_nowait`` it
into the bounded queue of every hook that subscribed to its type. Nothing it does awaits, so hooks never
delay or block routing. A full queue drops the event (``bgpctl_hook_dropped_total{hook}``, one
``hook.dropped`` log line per hook per :data:`DROP_LOG_EVERY_S` at most, counting the drops since the last
line). Each worker takes events in order and delivers them (:mod:`bgpctl.hooks.deliver`), counting
``bgpctl_hook_deliveries_total{hook,result}``; ``bgpctl_hook_queue_depth{hook}`` follows the queue.

At shutdown (:meth:`HookSink.stop`) the queues get at most ``flush_s`` to empty; what is left is counted
as dropped and logged (``hook.abandoned``), and a program still running has its process group killed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import structlog

from bgpctl import events
from bgpctl.core.plan import path_states
from bgpctl.core.types import PathHealth, PathKey, PathStats, Plan, Transition
from bgpctl.daemon.sinks import Metrics
from bgpctl.hooks import deliver
from bgpctl.hooks.event import (
    Event,
    States,
    initial_usable,
    make_event,
    override_payload,
    path_state_payload,
    region_events,
    region_payload,
    region_usable,
    route_change_payload,
)
from bgpctl.policy.model import ExecHook, Hook, Overrides, Policy, WebhookHook
from bgpctl.policy.secrets import SecretError, read_secret

DROP_LOG_EVERY_S = 10.0
FLUSH_S = 2.0
"""How long a stopping daemon waits for the hooks' queues to empty."""


class Judged(Protocol):
    """What the sink reads of the controller after a plan (bgpctl.core.controller.Controller has it)."""

    @property
    def policy(self) -> Policy: ...
    @property
    def health(self) -> Mapping[PathKey, PathHealth]: ...
    @property
    def overrides(self) -> Overrides: ...


Deliver = Callable[[Event], Awaitable[deliver.Outcome]]


@dataclass(eq=False)
class _Hook:
    name: str
    config: Hook
    queue: asyncio.Queue[Event]
    deliver: Deliver
    client: httpx.AsyncClient | None = None
    task: asyncio.Task[None] | None = None
    busy: bool = False  # delivering an event now (taken from the queue)
    unlogged_drops: int = 0
    last_drop_log: float = field(default=-DROP_LOG_EVERY_S)


def read_hook_secrets(policy: Policy, environ: Mapping[str, str]) -> dict[str, bytes]:
    """hook name -> HMAC key, for every webhook; :class:`~bgpctl.policy.secrets.SecretError` naming the
    source (never the value) when one cannot be read or is empty."""
    out: dict[str, bytes] = {}
    for name, hook in policy.hooks.items():
        if isinstance(hook, WebhookHook):
            field_name = f"hooks.{name}.secret"
            value = read_secret(hook.secret, environ, what="the webhook key", field=field_name)
            if not value:
                raise SecretError(f"{field_name} names an empty secret: put the webhook's HMAC key there")
            out[name] = value.encode("utf-8")
    return out


class HookSink:
    def __init__(
        self,
        policy: Policy,
        judged: Judged,
        *,
        metrics: Metrics,
        log: structlog.typing.FilteringBoundLogger,
        secrets: Mapping[str, bytes],
        environ: Mapping[str, str] | None = None,
        host: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.judged, self.metrics, self.log, self.clock = judged, metrics, log, clock
        self.host = host or socket.gethostname()
        self._environ = dict(os.environ if environ is None else environ)
        self._usable = initial_usable(policy)
        self._closing = False
        self._hooks = [self._make(name, hook, secrets) for name, hook in policy.hooks.items()]
        for h in self._hooks:
            for result in ("ok", "failed"):
                metrics.hook_deliveries.labels(h.name, result)
            metrics.hook_dropped.labels(h.name)
            metrics.hook_queue_depth.labels(h.name).set(0)

    def _make(self, name: str, hook: Hook, secrets: Mapping[str, bytes]) -> _Hook:
        queue: asyncio.Queue[Event] = asyncio.Queue(hook.queue)
        if isinstance(hook, ExecHook):

            def run(event: Event, hook: ExecHook = hook) -> Awaitable[deliver.Outcome]:
                env = deliver.exec_environment(hook, self._environ, name=name, event=event)
                return deliver.run_exec(hook, event, env)

            return _Hook(name, hook, queue, run)
        client = deliver.webhook_client(hook)
        secret = secrets[name]

        def post(event: Event, hook: WebhookHook = hook) -> Awaitable[deliver.Outcome]:
            return deliver.post_webhook(hook, client, secret, event, clock=self.clock)

        return _Hook(name, hook, queue, post, client)

    # ------------------------------------------------------------------------ DecisionSink

    def transition(self, t: Transition) -> None:
        self.emit(events.PATH_STATE, path_state_payload(t), at=t.at)

    def planned(self, p: Plan, *, at: float, new_notes: tuple[str, ...]) -> None:
        for c in p.changes:
            self.emit(events.ROUTE_CHANGE, route_change_payload(c), at=at)
        self.regions(at)

    def measured(self, stats: Mapping[PathKey, PathStats]) -> None:
        return None  # measurements are metrics, not events

    # ------------------------------------------------------------------------ other sources

    def regions(self, at: float) -> None:
        """After a plan: region.lost / region.regained (bgpctl.hooks.event, "Regions")."""
        policy, health = self.judged.policy, self.judged.health
        states: States = path_states(policy, health, self.judged.overrides)[0]
        changes = region_events(self._usable, region_usable(policy, states))
        self._usable = dict(changes.usable)
        for type_, regions in ((events.REGION_LOST, changes.lost), (events.REGION_REGAINED, changes.regained)):
            for region in regions:
                self.emit(type_, region_payload(policy, region, states, health, changes.usable), at=at)

    def override(self, type_: str, row: Mapping[str, Any]) -> None:
        """The override desk set one (``override.set``) or saw one expire (``override.expired``)."""
        self.emit(type_, override_payload(row), at=self.clock())

    def emit(self, type_: str, payload: Mapping[str, Any], *, at: float) -> None:
        """Make the event once and queue it for every hook that wants its type. Never blocks."""
        targets = [h for h in self._hooks if type_ in h.config.events]
        if not targets or self._closing:
            return
        event = make_event(type_, payload, at=at, host=self.host)
        for h in targets:
            self._offer(h, event)

    def _offer(self, h: _Hook, event: Event) -> None:
        try:
            h.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.metrics.hook_dropped.labels(h.name).inc()
            h.unlogged_drops += 1
            now = time.monotonic()
            if now - h.last_drop_log >= DROP_LOG_EVERY_S:
                self.log.warning(
                    events.HOOK_DROPPED,
                    hook=h.name,
                    dropped=h.unlogged_drops,
                    type=event.type,
                    queue=h.config.queue,
                    hint="the hook is slower than the events: check it (hook.failed lines) or raise its queue",
                )
                h.unlogged_drops, h.last_drop_log = 0, now
        self.metrics.hook_queue_depth.labels(h.name).set(h.queue.qsize())

    # ------------------------------------------------------------------------ workers

    def start(self) -> None:
        """One worker task per hook (call from the running event loop)."""
        for h in self._hooks:
            h.task = asyncio.create_task(self._work(h), name=f"hook-{h.name}")
            self.log.info(
                events.HOOK_STARTED,
                hook=h.name,
                kind=h.config.kind,
                events=[str(e) for e in h.config.events],
                queue=h.config.queue,
            )

    async def _work(self, h: _Hook) -> None:
        while True:
            event = await h.queue.get()
            self.metrics.hook_queue_depth.labels(h.name).set(h.queue.qsize())
            started = time.monotonic()
            h.busy = True
            try:
                outcome = await h.deliver(event)
            except Exception as e:  # a bug in a delivery must not end the hook's worker
                outcome = deliver.Outcome(False, 1, f"internal error: {type(e).__name__}: {e}")
            h.busy = False
            h.queue.task_done()
            self._delivered(h, event, outcome, time.monotonic() - started)

    def _delivered(self, h: _Hook, event: Event, outcome: deliver.Outcome, took_s: float) -> None:
        self.metrics.hook_deliveries.labels(h.name, "ok" if outcome.ok else "failed").inc()
        fields: dict[str, Any] = {
            "hook": h.name,
            "type": event.type,
            "id": event.id,
            "attempts": outcome.attempts,
            "result": outcome.detail,
            "ms": round(took_s * 1000, 1),
        }
        if outcome.output:
            fields["output"] = outcome.output
        if outcome.ok:
            self.log.debug(events.HOOK_DELIVERED, **fields)
        else:
            self.log.warning(events.HOOK_FAILED, **fields)

    async def stop(self, flush_s: float = FLUSH_S) -> None:
        """Stop taking events, give the queues ``flush_s`` to empty, then end the workers."""
        self._closing = True
        pending = [h for h in self._hooks if h.task is not None]
        if pending:
            try:
                async with asyncio.timeout(flush_s):
                    await asyncio.gather(*(h.queue.join() for h in pending))
            except TimeoutError:
                pass
        for h in pending:
            assert h.task is not None
            h.task.cancel()
        await asyncio.gather(*(h.task for h in pending if h.task is not None), return_exceptions=True)
        for h in self._hooks:
            left = h.queue.qsize() + (1 if h.busy else 0)
            if left:
                self.metrics.hook_dropped.labels(h.name).inc(left)
                self.log.warning(
                    events.HOOK_ABANDONED,
                    hook=h.name,
                    events=left,
                    hint=f"not delivered in the {flush_s:g} s flush",
                )
            self.metrics.hook_queue_depth.labels(h.name).set(0)
            if h.client is not None:
                await h.client.aclose()
