"""``bgpctl replay --policy FILE SAMPLES.jsonl``: the timeline as text and as JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from bgpctl.cli.main import cli
from bgpctl.core.types import PathKey
from bgpctl.errors import EXIT_REFUSED
from tests.core.plans.support import recording_lines, replay_policy_file

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
    events, summary = objs[:-1], objs[-1]["summary"]
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
