"""A small systemd-like supervisor for a lab service: ``Restart=always`` with ``RestartSec``.

``python -m bgpctl_lab.supervise --restart-sec 0.5 --seconds 3600 -- ARGV...`` runs ARGV, and whenever it
exits (any exit code, a signal included: ``kill -9``) starts it again after ``--restart-sec``, as systemd
does for ``bgpctl.service`` (deploy/bgpctl.service). SIGTERM or SIGINT stops it the way ``systemctl stop``
does: the child gets SIGTERM, is waited for (SIGKILL after ``--stop-grace``), and nothing is restarted.
Bounded: after ``--seconds`` it stops its child and exits.

The lab runner starts it with ``Lab.spawn`` under the tag ``supervised:<service>``
(:func:`bgpctl_lab.runner.supervise_service`), so ``down`` and the drill's cleanup find exactly it; the
child is its only child (``/proc/PID/task/PID/children``). Each start and exit is one line on stdout,
starting with ``supervise:`` (the service's own JSON log lines share the file).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

PREFIX = "supervise:"


def _say(text: str) -> None:
    print(f"{PREFIX} {time.time():.3f} {text}", flush=True)


def _stop(child: subprocess.Popen[bytes], grace_s: float) -> int:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            return child.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            _say(f"pid {child.pid} still running {grace_s:g} s after SIGTERM: SIGKILL")
            child.kill()
    return child.wait()


def supervise(argv: Sequence[str], *, restart_sec: float, seconds: float, stop_grace_s: float) -> int:
    """Keep ``argv`` running until SIGTERM/SIGINT or ``seconds``; returns the number of starts."""
    stopping: list[int] = []

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    deadline = time.monotonic() + seconds
    starts = 0
    while not stopping and time.monotonic() < deadline:
        child = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL)
        starts += 1
        _say(f"started pid {child.pid} (start {starts})")
        while child.poll() is None and not stopping and time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.05)
        if child.poll() is None:  # asked to stop, or out of time: systemctl stop
            rc = _stop(child, stop_grace_s)
            _say(f"stopped pid {child.pid} (rc {rc})")
            break
        _say(f"pid {child.pid} exited (rc {child.returncode}); restarting in {restart_sec:g} s")
        end = time.monotonic() + restart_sec
        while not stopping and time.monotonic() < end:
            time.sleep(min(0.02, max(0.0, end - time.monotonic())))
    return starts


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bgpctl_lab.supervise", description=__doc__.split("\n\n")[0])
    parser.add_argument("--restart-sec", type=float, default=0.5, help="pause before each restart (RestartSec)")
    parser.add_argument("--seconds", type=float, required=True, help="lifetime bound")
    parser.add_argument("--stop-grace", type=float, default=15.0, help="SIGKILL the child this long after SIGTERM")
    parser.add_argument("argv", nargs=argparse.REMAINDER, help="-- the command to keep running")
    ns = parser.parse_args(args)
    argv = ns.argv[1:] if ns.argv[:1] == ["--"] else ns.argv
    if not argv:
        parser.error("give the command to supervise after --")
    if not (0 <= ns.restart_sec <= 30 and 0 < ns.seconds <= 86400 and 0 < ns.stop_grace <= 60):
        parser.error("--restart-sec 0-30, --seconds up to 86400 and --stop-grace up to 60")
    supervise(argv, restart_sec=ns.restart_sec, seconds=ns.seconds, stop_grace_s=ns.stop_grace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
