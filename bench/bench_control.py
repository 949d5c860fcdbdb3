"""Benchmark: what a control request costs the daemon's loop, and what `bgpctl status` costs an operator.

    .venv/bin/python bench/bench_control.py [--runs 20]

1. The daemon's loop is held, per request, for the pure build of the answer plus its encoding (the socket
   I/O around it is asynchronous): timed on the lab policy's snapshot (6 paths, 3 peers, 200 decisions).
2. `bgpctl status --json` / `bgpctl routes --json` as a fresh process against the daemon's control server
   (run here on a socket in a thread, answering from the same snapshot): interpreter start-up included.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bgpctl.control import protocol
from bgpctl.control.state import routes_result, status_result
from tests.control.support import judge, lab_policy, serving, snapshot


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    j = judge(lab_policy(), seconds=60, lost=lambda k, t: k.region == "use1" and int(t) % 20 < 3)
    snap = snapshot(j)
    build: dict[str, dict[str, float]] = {}

    def status() -> bytes:
        return protocol.encode(protocol.ok(1, status_result(snap, protocol.MAX_DECISIONS)))

    def routes() -> bytes:
        return protocol.encode(protocol.ok(1, routes_result(snap)))

    answers: list[tuple[str, Callable[[], bytes]]] = [("status", status), ("routes", routes)]
    for name, f in answers:
        n = 500
        times = [t / n * 1e3 for t in timeit.repeat(f, number=n, repeat=7)]
        build[name] = {
            "min_ms": round(min(times), 3),
            "median_ms": round(statistics.median(times), 3),
            "bytes": len(f()),
        }
    cli: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, serving(Path(tmp), lambda: snap):
        bgpctl = str(Path(sys.executable).with_name("bgpctl"))
        for verb in ("status", "routes"):
            argv = [bgpctl, verb, "--run-dir", tmp, "--json"]
            subprocess.run(argv, check=True, capture_output=True)  # warm-up
            took = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True)
                took.append(time.perf_counter() - t0)
            cli[verb] = {"median_s": round(statistics.median(took), 3), "max_s": round(max(took), 3)}
    print(
        json.dumps(
            {
                "decisions_kept": len(snap.decisions),
                "loop_held_per_request": build,
                "cli_round_trip": cli,
                "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()[0], "python": platform.python_version()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
