"""`bgpctl policy plan --stats FILE` refuses a bad snapshot file in one line (exit 3), never a traceback, a hang
or a plan computed from NaN: not a regular file, too big, not UTF-8, control characters, NaN/Infinity,
huge integers, deep nesting."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bgpctl.cli.main import cli
from bgpctl.cli.policy_plan import MAX_STATS_BYTES
from bgpctl.errors import EXIT_REFUSED
from tests.badinput.support import LAB_POLICY, REPO, refused

GOOD = (REPO / "policies" / "examples" / "lab-snapshot.json").read_text()
KEY = "media/use1/interconnect"


def _shape(name: str) -> str:
    return rf"bgpctl: {re.escape(name)}(:\d+)?: \S.* \(.+\)"


def _plan(path: Path | str, watch: Path) -> str:
    return refused(["policy", "plan", str(LAB_POLICY), "--stats", str(path)], watch, _shape(str(path)))


def _write(tmp_path: Path, text: str | bytes) -> Path:
    p = tmp_path / "stats.json"
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def _with_field(field: str, raw: str) -> str:
    """The good snapshot with one field of KEY replaced by raw JSON text."""
    data = json.loads(GOOD)
    data[KEY][field] = "@@"
    return json.dumps(data, indent=1).replace('"@@"', raw)


def test_the_good_snapshot_plans(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["policy", "plan", str(LAB_POLICY), "--stats", str(_write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["rtt_p50_ms", "mos", "jitter_ms"])
def test_nan_and_infinity_are_refused(tmp_path: Path, token: str, field: str) -> None:
    path = _write(tmp_path, _with_field(field, token))
    line = _plan(path, tmp_path)
    assert re.fullmatch(
        rf"bgpctl: {re.escape(str(path))}:\d+: {re.escape(token)} is not a number JSON allows "
        r"\(write a finite number, or null for no measurement\)",
        line,
    ), line


@pytest.mark.parametrize("digits", [21, 5000, 100_000])
def test_a_huge_integer_is_refused_without_converting_it(tmp_path: Path, digits: int) -> None:
    path = _write(tmp_path, _with_field("samples", "1" * digits))
    assert f": the number {'1' * 20}... has more than 20 digits (fix the value)" in _plan(path, tmp_path)


def test_deep_nesting_is_refused_without_a_recursion_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "[" * 100_000 + "]" * 100_000)
    assert _plan(path, tmp_path) == (
        f"bgpctl: {path}: nested too deeply (a snapshot is two levels deep: see policies/examples/lab-snapshot.json)"
    )


def test_not_utf8_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("media/use1", "m\u00e9dia/use1").encode("latin-1"))
    assert _plan(path, tmp_path) == f"bgpctl: {path}: not UTF-8 text (byte 6, line 2) (save the file as UTF-8)"


@pytest.mark.parametrize(("char", "code"), [("\x00", "U+0000"), ("\x1b", "U+001B"), ("\x85", "U+0085")])
def test_a_control_character_is_refused(tmp_path: Path, char: str, code: str) -> None:
    path = _write(tmp_path, GOOD.replace('"media/use1/interconnect"', f'"media/use1/inter{char}connect"'))
    assert f"{path}:2: control character {code} at column 20 (" in _plan(path, tmp_path)


def test_a_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + " " * MAX_STATS_BYTES)
    assert "more than the 1024 KiB a stats snapshot may have" in _plan(path, tmp_path)


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    assert _plan(path, tmp_path) == f"bgpctl: {path}:1: not JSON (Expecting value)"


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    assert _plan(path, tmp_path) == f"bgpctl: {path}: no such file (check the path)"


def test_a_device_is_refused_instead_of_read_forever(tmp_path: Path) -> None:
    assert _plan("/dev/zero", tmp_path) == (
        "bgpctl: /dev/zero: is a device (name the stats snapshot file itself, e.g. policies/examples/lab-snapshot.json)"
    )


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert f"bgpctl: {tmp_path}: is a directory (" in _plan(tmp_path, tmp_path)


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stats.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
        assert f"bgpctl: {path}: is a socket (" in _plan(path, tmp_path)


@pytest.mark.timeout(60)
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "stats.json"
    os.mkfifo(fifo)
    run = subprocess.run(
        [sys.executable, "-m", "bgpctl", "policy", "plan", str(LAB_POLICY), "--stats", str(fifo)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == EXIT_REFUSED
    assert run.stdout == ""
    assert run.stderr.startswith(f"bgpctl: {fifo}: is a FIFO (named pipe) (")
