"""The replay benchmark's synthetic recording tells the story its docstring promises (keeps bench/ honest)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from bgpctl.core.recording import read_recording
from bgpctl.core.replay import ReplaySummary, replay
from bgpctl.core.types import Health
from bgpctl.policy.load import load_policy

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_replay.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_replay", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_first_seven_minutes_of_the_benchmark_recording() -> None:
    bench = _bench()
    lines = bench.generate(minutes=7.0, rate=50.0, seed=1)
    assert len(lines) == 7 * 60 * 50 * 4
    policy = load_policy(bench.POLICY)
    summary = ReplaySummary()
    events = list(replay(policy, read_recording(lines), summary=summary))
    story = [
        (round(e.t), str(t.key), t.old.value, t.new.value)
        for e in events
        for t in e.transitions
        if t.old is not Health.UNKNOWN
    ]
    # the blackhole (120-180 s): suspect (de-preferred) within 0.1 s, down when the timeouts confirm it,
    # back after hold-down and rise
    assert story[:2] == [
        (120, "media/use1/interconnect", "up", "suspect"),
        (120, "media/use1/interconnect", "suspect", "down"),
    ]
    assert [s[1:] for s in story[2:4]] == [
        ("media/use1/interconnect", "down", "degraded"),
        ("media/use1/interconnect", "degraded", "up"),
    ]
    assert 180 < story[2][0] < 210
    # the slow episode (300-360 s): degraded (its loss confidently over 1 %), not down, and recovered
    assert [s[1:] for s in story[4:]] == [
        ("media/usw2/interconnect", "up", "degraded"),
        ("media/usw2/interconnect", "degraded", "up"),
    ]
    assert 300 <= story[4][0] <= 305 and story[5][0] > 360  # 3 % loss: confidently over 1 % within 5 s
    assert all(h is Health.UP for k, h in summary.final_health.items() if k.service == "media")
