"""`bgpctl replay` refuses a bad recording in one line (exit 3) and never spins: bad and huge lines,
non-UTF-8 and control characters, huge numbers, deep nesting, files that are not files, and a recording
with a long gap in time (which used to be stepped through tick by tick)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from bgpctl.cli.main import cli
from bgpctl.core.recording import MAX_LINE_BYTES, read_recording
from bgpctl.core.replay import ReplaySummary, event_to_dict, quiet_after, replay
from bgpctl.core.types import Health, PathKey
from tests.badinput.support import LAB_POLICY, refused
from tests.core.plans.support import REPLAY_PATCH, lab_policy, recording_lines

USE1 = PathKey("media", "use1", "interconnect")
USW2 = PathKey("media", "usw2", "interconnect")
GOOD = '{"service": "media", "region": "use1", "path": "interconnect", "seq": 1, "sent": 100.0, "received": 100.01}'


def _shape(name: str) -> str:
    return rf"bgpctl: {re.escape(name)}(:\d+)?: \S.*(; | \().+"


def _replay(path: Path | str, watch: Path) -> str:
    return refused(["replay", "--policy", str(LAB_POLICY), str(path)], watch, _shape(str(path)))


def _write(tmp_path: Path, data: bytes) -> Path:
    p = tmp_path / "rec.jsonl"
    p.write_bytes(data)
    return p


def _second_line(tmp_path: Path, bad: bytes) -> tuple[Path, str]:
    """A recording whose second line is ``bad``; the error must name line 2 and come before any output."""
    path = _write(tmp_path, GOOD.encode() + b"\n" + bad + b"\n")
    return path, _replay(path, tmp_path)


def test_non_utf8_is_refused_with_its_line(tmp_path: Path) -> None:
    path, line = _second_line(tmp_path, GOOD.replace("use1", "us\u00e91").encode("latin-1"))
    assert line == f"bgpctl: {path}:2: not UTF-8 text (byte 34 of the line); save the file as UTF-8"


@pytest.mark.parametrize(("char", "code"), [("\x00", "U+0000"), ("\x1b", "U+001B"), ("\x9b", "U+009B")])
def test_a_control_character_is_refused(tmp_path: Path, char: str, code: str) -> None:
    path, line = _second_line(tmp_path, GOOD.replace("use1", f"use{char}1").encode())
    assert line == (f"bgpctl: {path}:2: control character {code} at column 36; a recording is JSON lines of plain text")


@pytest.mark.parametrize("size", [MAX_LINE_BYTES + 1, 8 * 1024 * 1024])
def test_a_huge_line_is_refused_without_reading_it_whole(tmp_path: Path, size: int) -> None:
    path, line = _second_line(tmp_path, b"{" + b" " * (size - 1))
    assert line.startswith(f"bgpctl: {path}:2: line longer than 64 KiB; ")


@pytest.mark.parametrize("digits", [5000, 60_000])
def test_a_huge_integer_is_refused(tmp_path: Path, digits: int) -> None:
    path, line = _second_line(tmp_path, GOOD.replace('"seq": 1', '"seq": ' + "7" * digits).encode())
    assert line.startswith(f"bgpctl: {path}:2: not JSON (a number too long to read); each line must be")


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path, line = _second_line(tmp_path, b"[" * 30_000 + b"]" * 30_000)
    assert line.startswith(f"bgpctl: {path}:2: not JSON (nested too deeply); ")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (b'{"service": "media"', "not JSON (Expecting ',' delimiter)"),
        (
            GOOD.replace("100.0,", "NaN,").encode(),
            "'sent' must be a finite number of seconds, got nan; NaN and Infinity are not times",
        ),
        (
            GOOD.replace("100.01", "Infinity").encode(),
            "'received' must be a finite number of seconds, got inf; NaN and Infinity are not times",
        ),
        (b"\xef\xbb\xbf" + GOOD.encode(), "not JSON (Unexpected UTF-8 BOM (decode using utf-8-sig))"),
    ],
)
def test_bad_lines_are_refused(tmp_path: Path, bad: bytes, message: str) -> None:
    path, line = _second_line(tmp_path, bad)
    assert line.startswith(f"bgpctl: {path}:2: {message}")


def test_random_binary_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, bytes(range(256)) * 8)
    assert _replay(path, tmp_path).startswith(f"bgpctl: {path}:1: ")


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    assert _replay(path, tmp_path) == (
        f"bgpctl: {path}: cannot open it: No such file or directory (check the path and its permissions)"
    )


def test_a_device_is_refused_instead_of_read_forever(tmp_path: Path) -> None:
    assert (
        _replay("/dev/zero", tmp_path)
        == "bgpctl: /dev/zero: is a device (name the recording file, or '-' for standard input)"
    )


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert (
        _replay(tmp_path, tmp_path)
        == f"bgpctl: {tmp_path}: is a directory (name the recording file, or '-' for standard input)"
    )


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rec.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
        assert (
            _replay(path, tmp_path)
            == f"bgpctl: {path}: is a socket (name the recording file, or '-' for standard input)"
        )


def test_bad_input_on_stdin_is_refused_too() -> None:
    result = CliRunner().invoke(cli, ["replay", "--policy", str(LAB_POLICY), "-"], input=b"\xff\xfe\n")
    assert result.exit_code == 3
    assert result.stderr == "bgpctl: <stdin>:1: not UTF-8 text (byte 0 of the line); save the file as UTF-8\n"


@pytest.mark.timeout(60)
def test_a_fifo_without_a_writer_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "rec.jsonl"
    os.mkfifo(fifo)
    run = subprocess.run(
        [sys.executable, "-m", "bgpctl", "replay", "--policy", str(LAB_POLICY), str(fifo)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("replayed 0 samples")


# ------------------------------------------------------------------------------------------
# a long gap in time


def _gap_recording(gap_s: float) -> list[str]:
    rtt = {USE1: 12.0, USW2: 70.0}
    before = recording_lines(rtt, 3.0, 0.02, start=100.0)
    lost_after = recording_lines(rtt, 3.0, 0.02, lost=lambda k, t: k == USE1, start=100.0 + gap_s)
    return before + lost_after


def test_a_day_long_gap_replays_in_seconds() -> None:
    policy = lab_policy(REPLAY_PATCH)
    summary = ReplaySummary()
    began = time.monotonic()
    events = list(replay(policy, read_recording(_gap_recording(86_400.0)), None, summary))
    took = time.monotonic() - began
    assert took < 20.0, took  # measured 0.5 s idle; stepping every 20 ms tick of the day took minutes
    assert summary.ticks < 100_000
    assert summary.final_health[USE1] is Health.DOWN and summary.final_health[USW2] is Health.UP
    assert events


def test_skipping_a_quiet_gap_changes_no_decision() -> None:
    policy = lab_policy(REPLAY_PATCH)
    gap = 3 * quiet_after(policy)  # long enough that the skip happens, short enough to step through
    lines = _gap_recording(gap)
    skipped, stepped = ReplaySummary(), ReplaySummary()
    fast = [event_to_dict(e) for e in replay(policy, read_recording(lines), 0.1, skipped)]
    slow = [event_to_dict(e) for e in replay(policy, read_recording(lines), 0.1, stepped, skip_quiet=False)]
    assert skipped.ticks < stepped.ticks / 2, "the gap was not skipped: the comparison shows nothing"
    assert json.dumps(fast) == json.dumps(slow)
    assert skipped.final_health == stepped.final_health
    assert (skipped.transitions, skipped.route_changes) == (stepped.transitions, stepped.route_changes)
