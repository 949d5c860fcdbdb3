"""A SIGHUP reload always ends in a log line, also when a stop cuts it short or a bug breaks it (the lab test
of the signal itself is tests/daemon/test_daemon_cli.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from bgpctl import events
from bgpctl.daemon.run import Daemon, Options
from bgpctl.daemon.sinks import Metrics
from bgpctl.policy.load import load_policy
from tests.control.support import LAB_POLICY


def _daemon(tmp: Path) -> Daemon:
    return Daemon(load_policy(LAB_POLICY), Options(LAB_POLICY, run_dir=tmp), structlog.get_logger(), Metrics())


def test_a_sighup_reload_of_the_same_file_is_logged_unchanged(tmp_path: Path) -> None:
    d = _daemon(tmp_path)
    with capture_logs() as logs:
        asyncio.run(d._sighup_reload())
    (line,) = [e for e in logs if e["event"] == events.POLICY_RELOAD]
    assert (line["result"], line["by"], line["why"]) == ("unchanged", {"signal": "SIGHUP"}, "SIGHUP")


def test_a_stop_during_a_sighup_reload_logs_it_abandoned(tmp_path: Path) -> None:
    d = _daemon(tmp_path)

    async def main() -> None:
        lock = asyncio.Lock()
        d.policy_desk._lock = lock
        async with lock:  # a `bgpctl reload` under way: the SIGHUP's waits for it
            task = asyncio.create_task(d._sighup_reload())
            await asyncio.sleep(0)
            task.cancel()  # what the daemon's stop does to the reloads under way
            with pytest.raises(asyncio.CancelledError):
                await task

    with capture_logs() as logs:
        asyncio.run(main())
    assert [(e["event"], e.get("action")) for e in logs] == [(events.DAEMON_SIGNAL, "reload abandoned")]
    assert "next start" in logs[0]["hint"]


def test_a_bug_in_a_sighup_reload_is_logged_and_the_old_policy_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _daemon(tmp_path)
    before = d.controller.policy

    def broken(*_: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(d.controller, "preview", broken)
    with capture_logs() as logs:
        asyncio.run(d._sighup_reload())  # returns: the daemon runs on
    (line,) = logs
    assert (line["event"], line["action"], line["error"]) == (
        events.DAEMON_SIGNAL,
        "reload failed",
        "RuntimeError('injected')",
    )
    assert line["log_level"] == "error" and line.get("exc_info") is True
    assert d.controller.policy is before
