"""HookSink on a real controller: which events a blackholed region makes, that they fit the schema, and that
the daemon's side only ever enqueues (full queue -> drop, counted, one log line)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from bgpctl import events
from bgpctl.control.service import OverrideDesk
from bgpctl.core.controller import Controller
from bgpctl.core.types import PathKey, Sample
from bgpctl.daemon.sinks import Metrics
from bgpctl.hooks.sink import DROP_LOG_EVERY_S, HookSink, read_hook_secrets
from bgpctl.policy.model import Policy
from bgpctl.policy.secrets import SecretError
from tests.control.support import T0, schema_errors
from tests.hooks.support import with_hooks


def recorder(
    policy: Policy, controller: Controller, metrics: Metrics, secrets: dict[str, bytes] | None = None
) -> HookSink:
    return HookSink(policy, controller, metrics=metrics, log=structlog.get_logger(), secrets=secrets or {}, host="cr")


def queued(sink: HookSink, hook: str) -> list[dict[str, Any]]:
    (h,) = [h for h in sink._hooks if h.name == hook]
    items = []
    while not h.queue.empty():
        items.append(dict(h.queue.get_nowait().data))
    return items


def drive(c: Controller, sink: HookSink, seconds: float, lost: Callable[[PathKey, float], bool], start: float) -> float:
    """The daemon's loop, on a clock of its own: 10 probes a second per path, a step after each, every sink call."""
    now = start
    for i in range(int(seconds * 10)):
        t = start + i * 0.1
        for k in c.keys:
            c.sent(k, int(t * 10), t)
            c.add(k, Sample(int(t * 10), t, None if lost(k, t) else t + 0.012))
        now = t + 0.05
        step = c.step(now)
        for tr in step.transitions:
            sink.transition(tr)
        if step.plan is not None:
            sink.planned(step.plan, at=step.at, new_notes=step.plan.notes)
    return now


def test_a_blackholed_region_is_lost_once_and_regained_once_and_every_event_fits_the_schema() -> None:
    policy = with_hooks(
        {
            "all": {"kind": "exec", "argv": ["/bin/true"], "queue": 10000},
            "regions": {"kind": "exec", "argv": ["/bin/true"], "events": ["region.lost", "region.regained"]},
        }
    )
    c = Controller(policy)
    metrics = Metrics()
    sink = recorder(policy, c, metrics)
    clock = [T0]
    sink.clock = lambda: clock[0]
    dead = (T0 + 10, T0 + 20)

    def lost(k: PathKey, t: float) -> bool:
        clock[0] = t
        return k.region == "use1" and dead[0] <= t < dead[1]

    drive(c, sink, 120, lost, T0)
    every = queued(sink, "all")
    regions = queued(sink, "regions")
    assert [schema_errors("hook-event", e) for e in every if schema_errors("hook-event", e)] == []
    assert [(e["type"], e["payload"]["region"]) for e in regions] == [
        ("region.lost", "use1"),
        ("region.regained", "use1"),
    ]
    lost_event, regained = regions
    assert lost_event["payload"]["usable_regions"] == ["usw2"] and lost_event["payload"]["lost_regions"] == ["use1"]
    assert {p["health"] for p in lost_event["payload"]["paths"]} == {"down"}
    assert regained["payload"]["usable_regions"] == ["use1", "usw2"]
    # the loss is decided in the step that takes the last use1 path down, within the fast path's 5 probes
    assert lost_event["time"] < "2026-05-28T20:26:52Z"  # T0 + 10 s blackhole + 0.5 s of probes + margin
    types = [e["type"] for e in every]
    assert set(types) == {"path.state", "route.change", "region.lost", "region.regained"}
    assert [e["id"] for e in every if e["type"].startswith("region.")] == [e["id"] for e in regions]  # made once
    downs = [e for e in every if e["type"] == "path.state" and e["payload"]["new"] == "down"]
    assert {e["payload"]["path"] for e in downs} == {f"{s}/use1/interconnect" for s in ("media", "signalling", "api")}


def test_override_events_come_from_the_desk(tmp_path: Path) -> None:
    policy = with_hooks(
        {"ops": {"kind": "exec", "argv": ["/bin/true"], "events": ["override.set", "override.expired"]}}
    )
    c = Controller(policy)
    sink = recorder(policy, c, Metrics())
    now = drive(c, sink, 3, lambda k, t: False, T0)
    desk = OverrideDesk(c, tmp_path, structlog.get_logger(), on_event=sink.override, clock=lambda: now)
    desk.change(
        "drain", {"target": ("use1", None), "reason": "CHG-1", "for": 5.0, "by": {"pid": 1, "uid": 0, "gid": 0}}
    )
    desk.expired(c.step(now + 6).expired)
    got = queued(sink, "ops")
    assert [(e["type"], e["payload"]["target"], e["payload"]["reason"]) for e in got] == [
        ("override.set", "use1", "CHG-1"),
        ("override.expired", "use1", "CHG-1"),
    ]
    assert all(schema_errors("hook-event", e) == [] for e in got)


def test_a_full_queue_drops_counts_and_logs_once_per_interval_and_stop_abandons_the_rest() -> None:
    policy = with_hooks({"slow": {"kind": "exec", "argv": ["/bin/true"], "queue": 2}})
    metrics = Metrics()
    sink = recorder(policy, Controller(policy), metrics)

    def sample(name: str, **labels: str) -> float:
        value = metrics.registry.get_sample_value(name, labels)
        return value if value is not None else float("nan")

    with capture_logs() as logs:
        for i in range(5):  # no worker runs: nothing leaves the queue
            sink.emit(events.ROUTE_CHANGE, {"n": i}, at=T0)
    assert sample("bgpctl_hook_dropped_total", hook="slow") == 3
    assert sample("bgpctl_hook_queue_depth", hook="slow") == 2
    (line,) = [e for e in logs if e["event"] == events.HOOK_DROPPED]
    assert line["hook"] == "slow" and line["dropped"] == 1 and line["log_level"] == "warning"
    assert DROP_LOG_EVERY_S >= 1

    async def stop() -> None:
        sink.start()
        sink._hooks[0].deliver = lambda e: asyncio.sleep(30)  # type: ignore[assignment,return-value]
        await sink.stop(flush_s=0.2)

    with capture_logs() as logs:
        asyncio.run(stop())
    (gone,) = [e for e in logs if e["event"] == events.HOOK_ABANDONED]
    assert gone["events"] == 2
    assert sample("bgpctl_hook_dropped_total", hook="slow") == 5
    assert sample("bgpctl_hook_deliveries_total", hook="slow", result="ok") == 0


def test_workers_deliver_in_order_and_count(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    prog = tmp_path / "hook.sh"
    prog.write_text(f"#!/bin/sh\ncat >> {out}; echo >> {out}\n")
    prog.chmod(0o755)
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\nexit 7\n")
    bad.chmod(0o755)
    policy = with_hooks(
        {
            "good": {"kind": "exec", "argv": [str(prog)]},
            "bad": {"kind": "exec", "argv": [str(bad)], "events": ["region.lost"]},
        }
    )
    metrics = Metrics()
    sink = recorder(policy, Controller(policy), metrics)

    async def go() -> None:
        sink.start()
        for i in range(3):
            sink.emit(events.REGION_LOST, {"n": i}, at=T0)
        await sink.stop(flush_s=10)

    with capture_logs() as logs:
        asyncio.run(go())
    assert [json.loads(line)["payload"]["n"] for line in out.read_text().splitlines()] == [0, 1, 2]
    get = metrics.registry.get_sample_value
    assert get("bgpctl_hook_deliveries_total", {"hook": "good", "result": "ok"}) == 3
    assert get("bgpctl_hook_deliveries_total", {"hook": "bad", "result": "failed"}) == 3
    failed = [e for e in logs if e["event"] == events.HOOK_FAILED]
    assert len(failed) == 3 and all(e["hook"] == "bad" and e["result"] == "exit 7" for e in failed)


def test_webhook_secrets_are_read_at_start_and_never_shown(tmp_path: Path) -> None:
    key = tmp_path / "hook.key"
    key.write_text("s3cret\n")
    policy = with_hooks(
        {
            "a": {"kind": "webhook", "url": "https://h.example.net/", "secret": {"file": str(key)}},
            "b": {"kind": "webhook", "url": "https://h.example.net/", "secret": {"env": "HOOK_KEY"}},
        }
    )
    assert read_hook_secrets(policy, {"HOOK_KEY": "k2"}) == {"a": b"s3cret", "b": b"k2"}
    with pytest.raises(SecretError, match=r"^environment variable HOOK_KEY \(named by hooks.b.secret\) is not set"):
        read_hook_secrets(policy, {})
    with pytest.raises(SecretError, match=r"^hooks.b.secret names an empty secret") as e:
        read_hook_secrets(policy, {"HOOK_KEY": ""})
    key.unlink()
    with pytest.raises(SecretError, match=r"cannot read the webhook key file .*hook.key: No such file") as e:
        read_hook_secrets(policy, {"HOOK_KEY": "k2"})
    assert "s3cret" not in str(e.value) and "k2" not in str(e.value)
