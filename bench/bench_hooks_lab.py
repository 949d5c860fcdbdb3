"""Hooks in the lab: how long after the daemon's decision a webhook receiver has the signed ``region.lost``,
and whether dead hooks change how fast the edge moves. Results go to docs/benchmarks.md ("Operations: hooks").

The set-up of tests/daemon/test_hooks_lab.py (the reference lab in controller mode, the daemon with lab.yaml
plus a working webhook to a receiver in the edge's namespace and a dead one to a blackholed address), then
``--runs`` region blackholes (use1's Connect side) with the receiver up, and ``--runs-down`` with the
receiver's process killed too (no listener: both hooks fail). Between runs the lab converges again (the
voice class's hold-down and rise: ~40 s). Needs root; run under the lab lock:

    nice -n 19 flock /tmp/bgpctl-labrun.lock .venv/bin/python -m bench.bench_hooks_lab --runs 5 --runs-down 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from bgpctl_lab import runner
from bgpctl_lab.reference import metric_samples, metrics_text, wait_converged
from tests.daemon.hooks_support import (
    BUDGETS,
    LAB_PREFIX,
    Run,
    blackhole_run,
    hooks_policy,
    start_daemon,
    start_receiver,
)
from tests.lab.helpers import TOPOLOGY

RECOVERED_S = 120.0


def counters(lab: runner.Lab) -> dict[str, float]:
    text = metrics_text(lab)
    out = {}
    for name in ("bgpctl_hook_deliveries_total", "bgpctl_hook_dropped_total"):
        for labels, value in metric_samples(text, name).items():
            out[name + json.dumps(dict(labels), sort_keys=True)] = value
    return out


def summary(label: str, runs: list[Run]) -> None:
    def row(what: str, values: list[float]) -> None:
        if values:
            ms = [round(v * 1000, 1) for v in values]
            print(f"| {label} | {what} | {statistics.median(ms):.1f} | {max(ms):.1f} | {', '.join(map(str, ms))} |")

    row("setting the blackhole took, ms", [r.apply_s for r in runs])
    row("blackhole in place -> edge on usw2 only, ms", [r.edge_s for r in runs])
    row("blackhole in place -> decision (region.lost), ms", [r.decided_s for r in runs])
    row("decision -> receiver has it, ms", [r.delivery_s for r in runs if r.delivery_s is not None])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--runs-down", type=int, default=3)
    args = ap.parse_args()
    name = f"{LAB_PREFIX}{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="bench-hooks-") as d, runner.running(TOPOLOGY, name, "controller") as lab:
        tmp = Path(d)
        received = tmp / "received.jsonl"
        rpid = start_receiver(lab, received)
        start_daemon(lab, hooks_policy(tmp))
        results: dict[str, list[Run]] = {"receiver up": [], "receiver down": []}
        for label, n in (("receiver up", args.runs), ("receiver down", args.runs_down)):
            if label == "receiver down":
                lab.kill_spawned(pid=rpid)
            for i in range(n):
                wait_converged(lab, "converged", budget=RECOVERED_S, interval_s=0.5)
                run = blackhole_run(lab, received if label == "receiver up" else None)
                results[label].append(run)
                print(f"{label} run {i + 1}: {run}", flush=True)
        print(f"budgets: {BUDGETS}")
        print("| receiver | measure | median | max | runs |")
        print("| --- | --- | --- | --- | --- |")
        for label, runs in results.items():
            summary(label, runs)
        print(json.dumps(counters(lab), indent=1))


if __name__ == "__main__":
    main()
