"""The lab's systemd-like supervisor (``python -m bgpctl_lab.supervise``): real processes, no root needed.

It restarts its child whatever way the child ended (a clean exit, ``kill -9``), after ``--restart-sec``;
SIGTERM stops the child and the supervisor and restarts nothing (``systemctl stop``); ``--seconds``
bounds it; bad options are one line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgpctl_lab import netns
from bgpctl_lab.poll import eventually

CHILD = [sys.executable, "-c", "import time; time.sleep(60)"]


def started(log: Path) -> list[int]:
    return [int(m) for m in re.findall(r"started pid (\d+)", log.read_text())]


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = tmp_path / "supervise.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bgpctl_lab.supervise", "--restart-sec", "0.2", "--seconds", "30", "--", *CHILD],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, log
    finally:
        kids = started(log)
        netns.terminate([proc.pid], grace=5)
        netns.terminate([k for k in kids if netns.alive(k)], grace=1)
        proc.wait(timeout=5)


def test_kill_9_of_the_child_is_restarted_and_sigterm_stops_both(
    supervisor: tuple[subprocess.Popen[bytes], Path],
) -> None:
    proc, log = supervisor
    first = eventually("first start", budget="supervisor_restart", probe=lambda: started(log), check=_one).value[0]
    os.kill(first, signal.SIGKILL)
    w = eventually(
        "restarted after kill -9",
        budget="supervisor_restart",
        probe=lambda: started(log),
        check=lambda pids: [] if len(pids) == 2 else [f"starts: {pids}"],
    )
    second = w.value[1]
    assert second != first and netns.alive(second)
    assert f"pid {first} exited (rc -9); restarting in 0.2 s" in log.read_text()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert not netns.alive(second) and started(log) == [first, second]  # stopped, nothing restarted
    assert f"stopped pid {second} (rc -15)" in log.read_text()


def _one(pids: list[int]) -> list[str]:
    return [] if len(pids) == 1 else [f"starts: {pids}"]


def test_a_clean_exit_is_restarted_too_and_the_lifetime_is_bounded(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    with log.open("ab") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "bgpctl_lab.supervise", "--restart-sec", "0", "--seconds", "1.5", "--",
             "sleep", "0.2"],  # coreutils' sleep: starts at once, so 3 starts fit in 1.5 s on a loaded machine too
            stdout=out, stderr=subprocess.STDOUT, timeout=30, check=False,
        )  # fmt: skip
    assert proc.returncode == 0
    assert len(started(log)) >= 3 and "exited (rc 0); restarting" in log.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seconds", "5"], "give the command to supervise after --"),
        (["--seconds", "0", "--", "true"], "--restart-sec 0-30, --seconds up to 86400"),
        (["--seconds", "5", "--restart-sec", "99", "--", "true"], "--restart-sec 0-30"),
        (["--", "true"], "--seconds"),
    ],
)
def test_bad_options_are_one_line(args: list[str], message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bgpctl_lab.supervise", *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
