"""``bgpctl replay --policy FILE SAMPLES.jsonl``: the timeline as text and as JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bgpctl.cli.main import cli
from bgpctl.core.types import PathKey
from bgpctl.errors import EXIT_REFUSED
from bgpctl.render_plot import replay_figure, replay_report
from tests.core.plans.support import recording_lines, replay_policy_file
from tests.plot.figure import PNG_MAGIC, health_bands, path_axes, route_marks

USE1 = PathKey("media", "use1", "interconnect")
USW2 = PathKey("media", "usw2", "interconnect")


def _recording(tmp_path: Path) -> Path:
    f = tmp_path / "rec.jsonl"
    lines = recording_lines({USE1: 12.0, USW2: 70.0}, 30.0, 0.02, lost=lambda k, t: k == USE1 and t >= 20.0)
    f.write_text("\n".join(lines) + "\n")
    return f


def test_json_lines(tmp_path: Path) -> None:
    policy = str(replay_policy_file(tmp_path))
    result = CliRunner().invoke(cli, ["replay", "--policy", policy, "--json", str(_recording(tmp_path))])
    assert result.exit_code == 0, result.stderr
    objs = [json.loads(line) for line in result.stdout.splitlines()]
    summary = objs[-1]["summary"]
    events = [o for o in objs if "transitions" in o]
    series = {o["series"]["path"]: o["series"] for o in objs if "series" in o}
    assert len(events) + len(series) + 1 == len(objs)  # events, then one series line per path, then the summary
    assert [(t["path"], t["old"], t["new"]) for e in events for t in e["transitions"]] == [
        (str(USE1), "unknown", "up"),
        (str(USW2), "unknown", "up"),
        (str(USE1), "up", "suspect"),
        (str(USE1), "suspect", "down"),
    ]
    assert [(c["peer"], c["kind"], c["path_id"]) for c in events[-1]["changes"]] == [
        ("edge", "withdraw", 1),
        ("tgw-use1", "withdraw", 0),
    ]
    assert summary["samples"] == 3000 and summary["transitions"] == 4
    assert summary["final_health"][str(USE1)] == "down"
    assert summary["route_changes"] == sum(len(e["changes"]) for e in events)
    assert sorted(series) == sorted(summary["final_health"])  # every path of the policy
    use1 = series[str(USE1)]
    assert sum(use1["sent"]) == 1500 and use1["rtt_ms"][0] == pytest.approx(12.0)
    assert use1["loss_pct"][-1] == 100.0  # lost from 20 s on
    assert [b["health"] for b in use1["health"]] == ["unknown", "up", "suspect", "down"]
    assert use1["health"][-1]["end"] == summary["duration_s"]
    assert series[str(USW2)]["rtt_ms"][-1] == pytest.approx(70.0)


def test_plot_draws_the_replay_as_its_json_says(tmp_path: Path) -> None:
    policy = str(replay_policy_file(tmp_path))
    out = tmp_path / "replay.png"
    args = ["replay", "--policy", policy, "--json", "--plot", str(out), str(_recording(tmp_path))]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes().startswith(PNG_MAGIC) and 20_000 < out.stat().st_size < 400_000
    report = replay_report(json.loads(line) for line in result.stdout.splitlines())
    fig = replay_figure(report)  # the picture is drawn from exactly this
    assert len(route_marks(fig)) == report["summary"]["route_changes"] == 8
    axes = path_axes(fig)
    assert sorted(axes) == sorted(s["path"] for s in report["series"])
    bands = health_bands(axes[str(USE1)])
    assert [b[0] for b in bands] == ["unknown", "up", "suspect", "down"]
    assert bands[-2][2] == pytest.approx(20.28, abs=0.01)  # down at 20.28 s, as the text timeline says


def test_plot_into_a_missing_directory_is_refused_before_the_replay(tmp_path: Path) -> None:
    out = tmp_path / "no" / "replay.png"
    args = ["replay", "--policy", str(replay_policy_file(tmp_path)), "--plot", str(out), str(_recording(tmp_path))]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and result.stdout == ""
    assert f"--plot {out}: the directory {out.parent} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_text_timeline_from_stdin(tmp_path: Path) -> None:
    text = _recording(tmp_path).read_text()
    result = CliRunner().invoke(cli, ["replay", "--policy", str(replay_policy_file(tmp_path)), "-"], input=text)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    down = next(i for i, line in enumerate(lines) if "suspect -> down" in line)
    assert lines[down].split()[:5] == ["20.280s", str(USE1), "suspect", "->", "down"]
    assert lines[down + 1].split()[:4] == ["edge", "withdraw", "203.0.113.0/26", "id"]
    assert lines[down + 1].endswith("[media/use1/interconnect down: withdrawn]")
    assert lines[-7].startswith("replayed 3000 samples over ")
    # a note is printed once, not again on every later event
    notes = [line.strip() for line in lines if line.strip().startswith("note: fail-static: service api")]
    assert notes == ["note: fail-static: service api: no path is up or degraded, and no previous route to keep"]


def test_a_bad_line_names_the_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.jsonl"
    f.write_text(_recording(tmp_path).read_text().splitlines()[0] + "\n{oops\n")
    result = CliRunner().invoke(cli, ["replay", "--policy", str(replay_policy_file(tmp_path)), str(f)])
    assert result.exit_code == EXIT_REFUSED
    assert f"{f}:2: not JSON" in result.stderr


def test_the_installed_command(tmp_path: Path) -> None:
    bgpctl = Path(sys.executable).with_name("bgpctl")
    policy = str(replay_policy_file(tmp_path))
    proc = subprocess.run(
        [str(bgpctl), "replay", "--policy", policy, "--json", str(_recording(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["summary"]["transitions"] == 4
