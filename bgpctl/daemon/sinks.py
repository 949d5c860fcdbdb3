"""Where decisions go: structured log events and Prometheus metrics, behind one Protocol.

Every health change is one log event naming the measurement that crossed which threshold; every
route change is one log event and one increment of ``bgpctl_route_changes_total`` (docs/design.md). The
hooks' sink (bgpctl.hooks.sink.HookSink: programs and webhooks told about events) implements the same Protocol.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from bgpctl import events
from bgpctl.core.overrides import KINDS, Runtime
from bgpctl.core.types import Health, PathKey, PathStats, Plan, Rib, Transition
from bgpctl.policy.model import Overrides, PathState
from bgpctl.render import change_to_dict, transition_to_dict

_HEALTH_VALUE = {Health.UNKNOWN: -1, Health.UP: 0, Health.DEGRADED: 1, Health.SUSPECT: 2, Health.DOWN: 3}


class DecisionSink(Protocol):
    def transition(self, t: Transition) -> None: ...
    def planned(self, p: Plan, *, at: float, new_notes: tuple[str, ...]) -> None:
        """``at``: the evaluation that made the plan (the controller's clock, Unix seconds)."""
        ...

    def measured(self, stats: Mapping[PathKey, PathStats]) -> None: ...


class LogSink:
    def __init__(self, log: structlog.typing.FilteringBoundLogger) -> None:
        self.log = log

    def transition(self, t: Transition) -> None:
        fields = {
            **transition_to_dict(t),
            "decided_unix": round(t.at, 6),
            "measurements": {r.metric: r.value for r in t.reasons if r.value is not None},
        }
        if t.new in (Health.DOWN, Health.SUSPECT, Health.DEGRADED):
            self.log.warning(events.PATH_HEALTH, **fields)
        else:
            self.log.info(events.PATH_HEALTH, **fields)

    def planned(self, p: Plan, *, at: float, new_notes: tuple[str, ...]) -> None:
        for c in p.changes:
            self.log.info(events.ROUTE_CHANGE, decided_unix=round(at, 6), **change_to_dict(c))
        for c in p.deferred:
            self.log.warning(
                events.ROUTE_DEFERRED,
                reason="guards.max_route_changes_per_minute",
                decided_unix=round(at, 6),
                **change_to_dict(c),
            )
        for note in new_notes:
            self.log.warning(events.PLAN_NOTE, note=note, fail_static="fail-static" in note)

    def measured(self, stats: Mapping[PathKey, PathStats]) -> None:
        return None  # measurements are metrics, not log lines


class Metrics:
    """The daemon's Prometheus metrics, in a registry of their own (tests make as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        path = ["service", "region", "path"]
        self.route_changes = Counter(
            "bgpctl_route_changes", "Route changes sent towards peers", ["peer", "kind"], registry=r
        )
        self.route_deferred = Counter(
            "bgpctl_route_changes_deferred", "Route changes held back by the rate limit", ["peer"], registry=r
        )
        self.transitions = Counter("bgpctl_path_transitions", "Path health changes", [*path, "to"], registry=r)
        self.health = Gauge(
            "bgpctl_path_health", "Path health: -1 unknown, 0 up, 1 degraded, 2 suspect, 3 down", path, registry=r
        )
        self.path_state = Gauge(
            "bgpctl_path_state",
            "plan()'s state of the path for its service: 1 on the current one of preferred, standby, degraded, "
            "down (all 0: not announced, health unknown)",
            [*path, "state"],
            registry=r,
        )
        self.announced_routes = Gauge(
            "bgpctl_announced_routes",
            "Routes ExaBGP holds announced to the peer (0 while its session is down)",
            ["peer"],
            registry=r,
        )
        self.overrides = Gauge(
            "bgpctl_overrides",
            "Overrides in force by kind (drain, pin, freeze) and source (runtime: bgpctl drain/pin/freeze; "
            "policy: the policy file's overrides)",
            ["kind", "source"],
            registry=r,
        )
        self.rtt_p50 = Gauge("bgpctl_path_rtt_p50_ms", "Window RTT median", path, registry=r)
        self.rtt_p95 = Gauge("bgpctl_path_rtt_p95_ms", "Window RTT p95", path, registry=r)
        self.jitter = Gauge("bgpctl_path_jitter_ms", "RFC 3550 jitter over the window", path, registry=r)
        self.loss = Gauge("bgpctl_path_loss_pct", "Window loss", path, registry=r)
        self.mos = Gauge("bgpctl_path_mos", "E-model MOS estimate", path, registry=r)
        self.probes = Counter("bgpctl_probes", "Probe outcomes and reply problems", [*path, "outcome"], registry=r)
        self.session_up = Gauge(
            "bgpctl_bgp_session_up", "1 when the BGP session with the peer is up", ["peer"], registry=r
        )
        self.session_failures = Counter(
            "bgpctl_bgp_session_failures",
            "Failed BGP sessions by decoded reason: NOTIFICATIONs sent/received (RFC 4271/4486 words), "
            "sessions not up within the allowed hold times, lost connections, max-prefixes exceeded",
            ["peer", "direction", "reason"],
            registry=r,
        )
        self.received_prefixes = Gauge(
            "bgpctl_bgp_received_prefixes",
            "Prefixes received from the peer and kept (at most its max_prefixes.limit)",
            ["peer"],
            registry=r,
        )
        self.add_path = Gauge(
            "bgpctl_bgp_add_path_send",
            "Per peer and family: 1 when the session negotiated ADD-PATH with us sending (several paths per "
            "prefix), 0 when not or not yet (the peer then gets one best path per prefix)",
            ["peer", "family"],
            registry=r,
        )
        self.speaker = Gauge("bgpctl_speaker_events", "Speaker counters (ExaBGP bridge)", ["event"], registry=r)
        self.signal_state = Gauge(
            "bgpctl_signal_state",
            "Per outside signal: 1 for the state its latest reading counts as (pending, fresh, stale, error), "
            "0 for the others; only a fresh signal's marks count (docs/signals.md)",
            ["signal", "state"],
            registry=r,
        )
        self.signal_errors = Counter(
            "bgpctl_signal_errors",
            "Refused reads of an outside signal by reason (unreadable, parse, malformed, unknown_target, "
            "too_large, timeout, connect, http, http_status, redirect, clock), and the times it went stale",
            ["signal", "reason"],
            registry=r,
        )
        self.fail_static = Gauge("bgpctl_fail_static", "1 while fail-static keeps a service's last routes", registry=r)
        # policy reloads (bgpctl reload, SIGHUP) and hooks: names agreed across branches (session 19 preamble)
        self.reloads = Counter(
            "bgpctl_policy_reloads", "Policy reloads by result: applied, unchanged, refused", ["result"], registry=r
        )
        self.last_reload_successful = Gauge(
            "bgpctl_policy_last_reload_successful",
            "0 after a refused reload until one succeeds (1 at start)",
            registry=r,
        )
        self.last_reload_successful.set(1)
        self.last_reload_timestamp = Gauge(
            "bgpctl_policy_last_reload_timestamp_seconds", "When the last reload was attempted (Unix time)", registry=r
        )
        self.hook_deliveries = Counter(
            "bgpctl_hook_deliveries", "Hook deliveries by result: ok, failed", ["hook", "result"], registry=r
        )
        self.hook_dropped = Counter(
            "bgpctl_hook_dropped", "Hook events dropped: the hook's queue was full", ["hook"], registry=r
        )
        self.hook_queue_depth = Gauge(
            "bgpctl_hook_queue_depth", "Hook events waiting in the hook's queue", ["hook"], registry=r
        )

    def reloaded(self, result: str, at: float) -> None:
        """A policy reload ended with ``result`` (applied, unchanged, refused)."""
        self.reloads.labels(result).inc()
        self.last_reload_successful.set(0 if result == "refused" else 1)
        self.last_reload_timestamp.set(at)

    def forget_paths(self, keys: Iterable[PathKey]) -> None:
        """Paths a reload removed: their per-path gauges go (they would show the last value for ever)."""
        for key in keys:
            for gauge in (self.health, self.rtt_p50, self.rtt_p95, self.jitter, self.loss, self.mos):
                with contextlib.suppress(KeyError):
                    gauge.remove(*key.labels)
            for state in PathState:
                with contextlib.suppress(KeyError):
                    self.path_state.remove(*key.labels, state.value)


class Throttle:
    """``due()`` at most once every ``every_s`` seconds of ``clock`` (the first call is due)."""

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self._last: float | None = None

    def due(self) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.every_s:
            return False
        self._last = now
        return True


class MetricsSink:
    """Counters per event (transitions, route changes); the path statistics' gauges only when ``throttle`` is
    due: the daemon's loop measures on every pass (100-200 a second at 64 paths, ~1 ms of ``labels().set()``
    each time) while Prometheus scrapes every few seconds."""

    def __init__(self, metrics: Metrics, throttle: Throttle | None = None) -> None:
        self.m = metrics
        self.throttle = throttle

    def transition(self, t: Transition) -> None:
        self.m.transitions.labels(*t.key.labels, str(t.new)).inc()
        self.m.health.labels(*t.key.labels).set(_HEALTH_VALUE[t.new])

    def planned(self, p: Plan, *, at: float, new_notes: tuple[str, ...]) -> None:
        for c in p.changes:
            self.m.route_changes.labels(c.peer, str(c.kind)).inc()
        for c in p.deferred:
            self.m.route_deferred.labels(c.peer).inc()
        self.m.fail_static.set(1 if any("fail-static" in n for n in p.notes) else 0)

    def measured(self, stats: Mapping[PathKey, PathStats]) -> None:
        if self.throttle is not None and not self.throttle.due():
            return
        for key, s in stats.items():
            for gauge, value in (
                (self.m.rtt_p50, s.rtt_p50_ms),
                (self.m.rtt_p95, s.rtt_p95_ms),
                (self.m.jitter, s.jitter_ms),
                (self.m.loss, s.loss_pct),
                (self.m.mos, s.mos),
            ):
                if value is not None:
                    gauge.labels(*key.labels).set(value)


def override_counts(policy_overrides: Overrides, runtime: Runtime) -> dict[tuple[str, str], int]:
    """(kind, source) -> overrides in force, every pair present (0 when none): the policy file's own
    (``overrides:``) and the runtime ones (``bgpctl drain/pin/freeze``)."""
    counts: dict[tuple[str, str], int] = {(kind, source): 0 for kind in KINDS for source in ("policy", "runtime")}
    counts["drain", "policy"] = len(policy_overrides.drain)
    counts["pin", "policy"] = len(policy_overrides.pin)
    counts["freeze", "policy"] = int(policy_overrides.freeze)
    counts["weight", "policy"] = len(policy_overrides.weights)
    for o in runtime:
        counts[o.kind, "runtime"] += 1
    return counts


def export_routing_state(
    m: Metrics,
    *,
    states: Mapping[PathKey, PathState | None],
    peers: Iterable[str],
    announced: Rib,
    policy_overrides: Overrides,
    runtime: Runtime,
) -> None:
    """The daemon's routing state as gauges, on every pass of its loop: each path's plan() state (one
    series per state, 1 on the current one), the routes held per peer (0 for a peer with none or with
    its session down), the overrides in force."""
    for key, state in states.items():
        for s in PathState:
            m.path_state.labels(*key.labels, s.value).set(1 if s is state else 0)
    for peer in peers:
        m.announced_routes.labels(peer).set(len(announced.get(peer, {})))
    for (kind, source), n in override_counts(policy_overrides, runtime).items():
        m.overrides.labels(kind, source).set(n)
