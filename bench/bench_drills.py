"""Failover drills, N runs each, per lab mode: the figures of docs/benchmarks.md "Failover drills".

Run (root), from the repository root::

    .venv/bin/python -m bench.bench_drills --modes no-controller,no-controller-bfd --runs 5 \\
        --drills region-blackhole,interconnect-cut,region-loss,region-latency [--runs-for region-loss=3]
    .venv/bin/python -m bench.bench_drills --table-from bench/results/drills-A.json,bench/results/drills-B.json
    .venv/bin/python -m bench.bench_drills --modes controller --drills drain-undrain,restart,kill-9 --lab odbench
    .venv/bin/python -m bench.bench_drills --modes controller --drills reload-good,reload-broken --lab rdbench
    .venv/bin/python -m bench.bench_drills --topology containerlab-ha.yml --modes controller --lab habench \
        --drills ha-primary-isolated,ha-region-blackhole-isolated,ha-restart-both,ha-primary-probes-impaired

For each mode it brings a lab up (``bd<pid>``), runs the drills in sequence, each ``--runs`` times
(``--runs-for DRILL=N`` overrides one drill), and takes the lab down at the end of the mode, also on
Ctrl-C or SIGTERM. Per run it keeps the worst flow's interruption (call meter), when the edge's
route moved (route watch, seconds after the fault), when each expectation held, and pass/fail. It
prints a markdown table of medians and maxima and writes every run to
``bench/results/drills-<UTC time>.json`` (rewritten after each run, so an interrupted bench keeps
what it measured).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bgpctl.errors import BgpctlError
from bgpctl_lab import frr, runner
from bgpctl_lab.drill import DrillReport, run_drill, summary
from bgpctl_lab.drill_model import load_drill
from bgpctl_lab.poll import eventually
from bgpctl_lab.replay_check import compare
from bgpctl_lab.runner import Lab
from bgpctl_lab.topology import drills_dir

REPO = Path(__file__).resolve().parents[1]
TOPOLOGY = REPO / "containerlab.yml"
RESULTS = REPO / "bench" / "results"


@dataclass
class Run:
    mode: str
    drill: str
    run: int
    passed: bool
    interruption_ms: float | None
    route_moved_after_s: float | None
    route_changes: int | None
    lost: int | None
    regions: list[str]
    expect: dict[str, float | None]  # check name -> seconds after the fault (None: did not hold)
    recover: dict[str, float | None]
    violations: list[str]
    report: str = ""  # the drill report's file
    judgements: dict[str, int] = field(default_factory=dict)  # the daemon's health changes by new state
    lost_worst_flow: int | None = None  # the most packets one flow (one call) lost
    fault_took_s: float | None = None  # carrying the fault out (a daemon restart waits for the stop)
    session_resets: int | None = None  # BGP session resets the drill's `sessions` saw (None: not read)
    updates: int | None = None  # UPDATEs the `sessions` nodes received from the peer (cr) during the drill


@dataclass
class Bench:
    started_utc: str
    command: list[str]
    machine: dict[str, Any]
    runs: list[Run] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    replays: list[dict[str, Any]] = field(default_factory=list)  # controller mode: replay == daemon?


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "host": platform.node(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def to_run(mode: str, drill: str, i: int, r: DrillReport, path: str) -> Run:
    return Run(
        mode=mode,
        drill=drill,
        run=i,
        passed=r.passed,
        interruption_ms=r.interruption_ms,
        route_moved_after_s=r.route_moved_after_s,
        route_changes=r.route_changes,
        lost=r.meter.lost if r.meter else None,
        regions=r.regions_answered,
        expect={c.name: c.after_s for c in r.expect},
        recover={c.name: c.after_s for c in r.recover},
        violations=r.violations,
        report=path,
        judgements={h: sum(1 for d in r.decisions if d["new"] == h) for h in ("suspect", "down", "degraded")},
        lost_worst_flow=max((f.lost for f in r.meter.flows), default=0) if r.meter else None,
        fault_took_s=r.fault.took_s if r.fault else None,
        session_resets=r.session_resets,
        updates=r.updates,
    )


def _stat(values: Sequence[float | None], fmt: str) -> str:
    """'median / max' of the values that exist, and how many did not (e.g. the route never moved)."""
    got = [v for v in values if v is not None]
    missing = len(values) - len(got)
    if not got:
        return f"never ({missing}/{len(values)})" if missing else "-"
    text = f"{fmt.format(statistics.median(got))} / {fmt.format(max(got))}"
    return text + (f" (never in {missing}/{len(values)})" if missing else "")


def table(runs: Sequence[Run], modes: Sequence[str], drills: Sequence[str]) -> str:
    """Markdown: one row per drill and measure, one column per mode (median / max over the runs)."""
    head = "| drill | measure | " + " | ".join(modes) + " |"
    lines = [head, "|" + " --- |" * (len(modes) + 2)]
    measures: list[tuple[str, str, Any]] = [
        ("worst-flow interruption, ms", "{:.0f}", lambda r: r.interruption_ms),
        (
            "first expectation held after the fault, s",
            "{:.2f}",
            lambda r: next(iter(r.expect.values())) if r.expect else None,
        ),
        ("edge route moved after the fault, s", "{:.2f}", lambda r: r.route_moved_after_s),
        (
            "last expectation held after the fault, s",
            "{:.2f}",
            lambda r: list(r.expect.values())[-1] if r.expect else None,
        ),
        ("edge next-hop changes (whole drill)", "{:.0f}", lambda r: r.route_changes),
        ("packets lost, all flows", "{:.0f}", lambda r: r.lost),
        ("packets lost, worst flow", "{:.0f}", lambda r: r.lost_worst_flow),
        (
            "last recovery check held after the restore, s",
            "{:.2f}",
            lambda r: list(r.recover.values())[-1] if r.recover else None,
        ),
        (
            "daemon 'down' / 'suspect' judgements",
            "{:.0f}",
            lambda r: r.judgements.get("down", 0) + r.judgements.get("suspect", 0) if r.mode == "controller" else None,
        ),
        ("BGP session resets at the peers (sessions)", "{:.0f}", lambda r: r.session_resets),
        ("UPDATEs from cr at the peers (sessions)", "{:.0f}", lambda r: r.updates),
        ("runs passed", "", None),
    ]
    only_if_read = {"BGP session resets at the peers (sessions)", "UPDATEs from cr at the peers (sessions)"}
    for d in drills:
        for label, fmt, get in measures:
            if label in only_if_read and all(get(r) is None for r in runs if r.drill == d):
                continue  # the drill reads no sessions
            cells = []
            for m in modes:
                rs = [r for r in runs if r.mode == m and r.drill == d]
                if not rs:
                    cells.append("-")
                elif get is None:
                    cells.append(f"{sum(r.passed for r in rs)}/{len(rs)}")
                else:
                    cells.append(_stat([get(r) for r in rs], fmt))
            lines.append(f"| {d} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


_MAIN_PID = os.getpid()


SETTLE_BUDGET_S = 60.0  # a fresh lab's sessions (and BFD) come up and stay up
SETTLED_UPTIME_MS = 5000


def settled(lab: Lab) -> list[str]:
    """Why the lab is not yet settled: FRR<->FRR sessions Established for 5 s, BFD up where the mode has it."""
    problems = []
    for node, peers in lab.established().items():
        summary_ = lab.vtysh_json(node, "show bgp summary json").get("ipv4Unicast", {}).get("peers", {})
        for peer, state in peers.items():
            up_ms = summary_.get(peer, {}).get("peerUptimeMsec", 0)
            if state != "Established" or up_ms < SETTLED_UPTIME_MS:
                problems.append(f"{node}: {peer} {state} for {up_ms} ms")
    if lab.mode in frr.BFD_MODES:
        for p in lab.vtysh_json("edge", "show bfd peers json"):
            if p.get("status") != "up":
                problems.append(f"edge: BFD with {p.get('peer')} is {p.get('status')}")
    return problems


def wait_settled(lab: Lab) -> None:
    eventually(f"lab {lab.name} settled", budget=SETTLE_BUDGET_S, probe=lambda: lab, check=settled)


def _terminate(signum: int, _frame: FrameType | None) -> None:
    if os.getpid() != _MAIN_PID:  # a forked helper (pyroute2 forks to create namespaces): die as usual
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise KeyboardInterrupt  # unwinds through the `finally` that takes the lab down


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="no-controller,no-controller-bfd")
    ap.add_argument("--drills", default="region-blackhole,interconnect-cut,region-loss,region-latency")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--runs-for", default="", help="per-drill runs, e.g. region-loss=3,region-latency=3")
    ap.add_argument("--lab", default=f"bd{os.getpid()}", help="lab name (one lab at a time, per mode)")
    ap.add_argument(
        "--topology", type=Path, default=TOPOLOGY, help="the lab's topology (the HA drills: containerlab-ha.yml)"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--table-from",
        default="",
        metavar="FILE[,FILE]",
        help="print the table of earlier results (merged, e.g. one file per mode) and exit",
    )
    a = ap.parse_args(argv)
    if a.table_from:
        runs = [Run(**r) for f in a.table_from.split(",") for r in json.loads(Path(f).read_text())["runs"]]
        seen_modes = list(dict.fromkeys(r.mode for r in runs))
        seen_drills = list(dict.fromkeys(r.drill for r in runs))
        print(table(runs, seen_modes, seen_drills))
        return 0
    modes = [m for m in a.modes.split(",") if m]
    drills = [d for d in a.drills.split(",") if d]
    unknown = [m for m in modes if m not in frr.MODES]
    if unknown:
        ap.error(f"unknown mode(s) {unknown}; use: {', '.join(frr.MODES)}")
    runs_for = {d: a.runs for d in drills}
    for item in filter(None, a.runs_for.split(",")):
        d, _, n = item.partition("=")
        runs_for[d] = int(n)
    topology = a.topology if a.topology.is_absolute() else REPO / a.topology
    loaded = {d: load_drill(d, drills_dir(topology)) for d in drills}  # refuse a bad drill before any lab is up
    signal.signal(signal.SIGTERM, _terminate)

    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    a.out.mkdir(parents=True, exist_ok=True)
    out_file = a.out / f"drills-{stamp}.json"
    reports_dir = a.out / f"drills-{stamp}"
    bench = Bench(
        started_utc=stamp,
        command=[sys.executable, "-m", "bench.bench_drills", *(argv or sys.argv[1:])],
        machine=machine(),
    )
    t_start = time.monotonic()
    try:
        for mode in modes:
            try:
                t0 = time.monotonic()
                lab = runner.up(topology, name=a.lab, mode=mode)
                if frr.frr_only(mode):
                    wait_settled(lab)
                print(f"== mode {mode}: lab {a.lab} up and settled in {time.monotonic() - t0:.1f} s", flush=True)
                for d in drills:
                    for i in range(1, runs_for[d] + 1):
                        t1 = time.monotonic()
                        report = run_drill(lab, loaded[d], out_dir=reports_dir)
                        path = sorted(reports_dir.glob(f"drill-{d}-{mode}-*.json"))[-1]
                        bench.runs.append(to_run(mode, d, i, report, str(path)))
                        print(
                            f"-- {mode} {d} run {i}/{runs_for[d]} ({time.monotonic() - t1:.0f} s)\n{summary(report)}",
                            flush=True,
                        )
                        out_file.write_text(json.dumps(asdict(bench), indent=2))
                restarted = [
                    d for d in drills if any(o.daemon is not None or o.policy is not None for _, o in loaded[d].ops())
                ]
                if mode == "controller" and restarted:  # a new recording at each start; another policy at a reload
                    print(
                        f"== replay check skipped: {', '.join(restarted)} restarted or reloaded the daemon", flush=True
                    )
                elif mode == "controller" and topology != TOPOLOGY:
                    print("== replay check skipped: the daemons of this topology run their own policies", flush=True)
                elif mode == "controller":  # the daemon's recording replays to the daemon's decisions
                    check = compare(lab, REPO / "policies" / "lab.yaml")
                    bench.replays.append({"mode": mode, **asdict(check)})
                    print(
                        f"== replay of the daemon's recording: {check.transitions} health and {check.route_changes} "
                        f"route changes, {'the same' if check.same else check.problems}",
                        flush=True,
                    )
            except BgpctlError as e:  # this mode could not run (lab up, a drill's action): go on with the next
                print(f"== mode {mode} aborted: {e}", file=sys.stderr, flush=True)
                bench.errors.append(f"{mode}: {e}")
            finally:
                runner.down(a.lab)
    except KeyboardInterrupt:
        print("interrupted: the lab is down; partial results below", file=sys.stderr)
    bench.machine["wall_s"] = round(time.monotonic() - t_start, 1)
    out_file.write_text(json.dumps(asdict(bench), indent=2))
    print(f"\n{table(bench.runs, modes, drills)}\n\nresults: {out_file} ({bench.machine['wall_s']:.0f} s)")
    return 1 if bench.errors else 0


if __name__ == "__main__":
    sys.exit(main())
