"""Benchmark: how long ``bgpctl --help`` and ``bgpctl daemon --help`` take (target: median under 0.3 s).

    .venv/bin/python bench/bench_cli_startup.py [--runs 10] [--bgpctl .venv/bin/bgpctl]

Runs each command ``--runs`` times in a fresh subprocess (interpreter start-up and imports included,
as an operator types it), after one untimed warm-up run each (the page cache and .pyc files are warm,
as on a machine where bgpctl runs), and prints one JSON object: per command the median, min and max
wall time in seconds, plus the machine. Exits 1 if a median is over the target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.3
COMMANDS = (["--help"], ["daemon", "--help"])


def time_command(argv: list[str], runs: int) -> list[float]:
    subprocess.run(argv, check=True, capture_output=True)  # warm-up, not timed
    took = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        took.append(time.perf_counter() - t0)
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    default = Path(sys.executable).parent / "bgpctl"
    ap.add_argument("--bgpctl", default=str(default) if default.exists() else shutil.which("bgpctl"))
    a = ap.parse_args()
    if not a.bgpctl:
        ap.error("no bgpctl found: give --bgpctl PATH")
    results = {}
    for args in COMMANDS:
        took = time_command([a.bgpctl, *args], a.runs)
        results[f"bgpctl {' '.join(args)}"] = {
            "runs": a.runs,
            "median_s": round(statistics.median(took), 3),
            "min_s": round(min(took), 3),
            "max_s": round(max(took), 3),
        }
    load1, _, _ = os.getloadavg()
    print(
        json.dumps(
            {
                "bgpctl": a.bgpctl,
                "results": results,
                "target_median_s": TARGET_S,
                "machine": {
                    "python": platform.python_version(),
                    "kernel": platform.release(),
                    "cpus": os.cpu_count(),
                    "load_average_1min": round(load1, 2),
                },
            },
            indent=2,
        )
    )
    return 0 if all(r["median_s"] < TARGET_S for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
