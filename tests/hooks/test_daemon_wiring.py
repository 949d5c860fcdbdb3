"""The daemon builds its HookSink from the policy: a sink among the others, the desk's listener, secrets
read at construction (a missing one stops the start with one line naming the source)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import structlog

from bgpctl import events
from bgpctl.control.reload import Result
from bgpctl.daemon.run import Daemon, Options
from bgpctl.daemon.sinks import Metrics
from bgpctl.hooks.sink import HookSink
from bgpctl.policy.secrets import SecretError
from tests.control.support import LAB_POLICY
from tests.hooks.support import with_hooks


def daemon(tmp: Path, hooks: dict[str, Any]) -> Daemon:
    return Daemon(with_hooks(hooks), Options(LAB_POLICY, run_dir=tmp), structlog.get_logger(), Metrics())


def test_a_policy_with_hooks_gets_a_hook_sink_that_hears_the_override_desk(tmp_path: Path) -> None:
    d = daemon(tmp_path, {"ops": {"kind": "exec", "argv": ["/bin/true"], "events": ["override.set"]}})
    assert isinstance(d.hooks, HookSink) and d.hooks in d.sinks
    d.desk.on_event(events.OVERRIDE_SET, {"kind": "drain", "target": "use1"})
    (h,) = d.hooks._hooks
    assert h.queue.get_nowait().data["payload"] == {"kind": "drain", "target": "use1"}


def test_a_policy_without_hooks_has_no_hook_sink(tmp_path: Path) -> None:
    d = daemon(tmp_path, {})
    assert d.hooks is None and not any(isinstance(s, HookSink) for s in d.sinks)


def test_a_webhook_secret_that_cannot_be_read_stops_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BGPCTL_TEST_HOOK_KEY", raising=False)
    hooks = {"noc": {"kind": "webhook", "url": "https://h.example.net/", "secret": {"env": "BGPCTL_TEST_HOOK_KEY"}}}
    with pytest.raises(SecretError, match=r"environment variable BGPCTL_TEST_HOOK_KEY .* is not set"):
        daemon(tmp_path, hooks)


@pytest.mark.parametrize("result", ["applied", "unchanged", "refused"])
def test_every_reload_outcome_is_counted_and_told_to_the_hooks(tmp_path: Path, result: Result) -> None:
    d = daemon(tmp_path, {"ops": {"kind": "exec", "argv": ["/bin/true"], "events": ["policy.reload"]}})
    d.policy_desk.on_result(result, 1_764_000_000.0)  # what PolicyDesk calls at the end of every real reload
    assert d.hooks is not None
    (h,) = d.hooks._hooks
    event = h.queue.get_nowait().data
    assert event["type"] == events.POLICY_RELOAD
    assert event["payload"] == {"result": result, "file": str(LAB_POLICY)}
    assert d.metrics.reloads.labels(result)._value.get() == 1
    assert d.metrics.last_reload_successful._value.get() == (0 if result == "refused" else 1)
