"""The daemon's signal feed (bgpctl.signals.feed) with a real flag file, a real controller, real metrics and
the real recorder: what the controller is told, what is logged (and how often), counted and shown in status."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import structlog
from structlog.testing import capture_logs

from bgpctl import events
from bgpctl.core.controller import Controller
from bgpctl.core.recording import Signalled, parse_line
from bgpctl.core.types import Health, SignalMark
from bgpctl.daemon.sinks import Metrics
from bgpctl.policy.model import Policy
from bgpctl.probe.recorder import Recorder
from bgpctl.signals.feed import WARN_EVERY_S, SignalFeed
from tests.signals.support import REPO, policy_with

FREEZE = SignalMark("freeze", "use1", None, Health.DOWN, "change freeze: use1 maintenance")


def _policy(tmp_path: Path, flag: Path) -> Policy:
    return policy_with(
        tmp_path,
        f"  freeze:\n    kind: file\n    path: {flag}\n    max_age_s: 30\n"
        "    present: { region: use1, reason: 'change freeze: use1 maintenance' }\n",
    )


def _state(m: Metrics, name: str) -> dict[str, float | None]:
    return {
        s: m.registry.get_sample_value("bgpctl_signal_state", {"signal": name, "state": s})
        for s in ("pending", "fresh", "stale", "error")
    }


def _errors(m: Metrics, name: str, reason: str) -> float:
    return m.registry.get_sample_value("bgpctl_signal_errors_total", {"signal": name, "reason": reason}) or 0.0


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.flag = tmp_path / "flags" / "freeze"
        self.flag.parent.mkdir()
        self.policy = _policy(tmp_path, self.flag)
        self.metrics = Metrics()
        self.woken = 0
        self.feed = SignalFeed(self.policy, structlog.get_logger(), self.metrics, wake=self._woken)
        self.ctl = Controller(self.policy)
        self.recording = tmp_path / "rec.jsonl"
        self.recorder = Recorder(self.recording)

    def _woken(self) -> None:
        self.woken += 1

    def read_and_feed(self, now: float) -> list[MutableMapping[str, Any]]:
        with capture_logs() as logs:
            source = self.feed.sources["freeze"]
            self.feed.take("freeze", asyncio.run(source.read()))
            self.feed.feed(self.ctl, now, self.recorder)
        return [e for e in logs if e["event"] in (events.SIGNAL_STATE, events.SIGNAL_IGNORED)]

    def recorded(self) -> list[Signalled]:
        self.recorder.__exit__(None, None, None)  # flushed and closed (the fixture's exit is then a no-op)
        lines = self.recording.read_text().splitlines()
        return [ev for ev in (parse_line(line, "rec") for line in lines) if isinstance(ev, Signalled)]


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    with harness.recorder:
        yield harness


def test_a_flag_file_appearing_and_going_is_told_logged_and_recorded(h: Harness, tmp_path: Path) -> None:
    assert _state(h.metrics, "freeze") == {"pending": 1.0, "fresh": 0.0, "stale": 0.0, "error": 0.0}
    now = os.stat(tmp_path).st_mtime + 1
    (absent,) = h.read_and_feed(now)  # no flag: fresh, says nothing
    assert (absent["event"], absent["state"], absent["marks"]) == (events.SIGNAL_STATE, "fresh", [])
    assert h.ctl.signals == {}
    h.flag.touch()
    (told,) = h.read_and_feed(os.stat(h.flag).st_mtime + 1)
    assert told["marks"] == ["signal freeze: region use1 down: change freeze: use1 maintenance"]
    assert h.ctl.signals == {"freeze": (FREEZE,)}
    assert h.read_and_feed(os.stat(h.flag).st_mtime + 2) == []  # the same again: no news, no log
    h.flag.unlink()
    (cleared,) = h.read_and_feed(now + 5)
    assert cleared["marks"] == [] and h.ctl.signals == {}
    assert [(e.signal, e.marks) for e in h.recorded()] == [("freeze", (FREEZE,)), ("freeze", ())]
    assert h.woken == 3  # absent (first reading), present, absent again: a repeated reading wakes nobody
    assert _state(h.metrics, "freeze")["fresh"] == 1.0


def test_a_stale_flag_is_ignored_with_one_warning_then_one_a_minute(h: Harness) -> None:
    h.flag.touch()
    born = os.stat(h.flag).st_mtime
    h.read_and_feed(born + 1)
    assert h.ctl.signals == {"freeze": (FREEZE,)}
    (warned,) = h.read_and_feed(born + 31)  # max_age_s 30: stale
    assert warned["log_level"] == "warning" and warned["event"] == events.SIGNAL_IGNORED
    assert (warned["signal"], warned["state"], warned["reason"]) == ("freeze", "stale", "stale")
    assert "more than max_age_s 30" in warned["error"] and "probes alone decide" in warned["hint"]
    assert h.ctl.signals == {}  # ignored: the probes decide
    assert _errors(h.metrics, "freeze", "stale") == 1.0
    assert _state(h.metrics, "freeze") == {"pending": 0.0, "fresh": 0.0, "stale": 1.0, "error": 0.0}
    assert h.read_and_feed(born + 31 + WARN_EVERY_S - 1) == []  # still stale: quiet within the minute
    (again,) = h.read_and_feed(born + 31 + WARN_EVERY_S)
    assert again["state"] == "stale"
    assert _errors(h.metrics, "freeze", "stale") == 1.0  # counted once per time it goes stale
    os.utime(h.flag)  # touched again: fresh
    (back,) = h.read_and_feed(os.stat(h.flag).st_mtime + 1)
    assert back["state"] == "fresh" and h.ctl.signals == {"freeze": (FREEZE,)}


def test_status_rows_follow_the_schema(h: Harness) -> None:
    h.flag.touch()
    h.read_and_feed(os.stat(h.flag).st_mtime + 1)
    schema = json.loads((REPO / "bgpctl" / "schemas" / "status.schema.json").read_text())
    rows = list(h.feed.rows())
    jsonschema.validate(rows, schema["properties"]["signals"])
    (row,) = rows
    assert row["state"] == "fresh" and row["source"] == str(h.flag) and row["error"] is None
    assert row["marks"] == [{"region": "use1", "path": None, "state": "down", "reason": FREEZE.reason}]
