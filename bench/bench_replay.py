"""Benchmark: replay a 10-minute recording at 50 samples/s on each of 4 paths (target: under 10 s).

    .venv/bin/python bench/bench_replay.py [--minutes 10] [--rate 50] [--seed 1] [--keep FILE]

The recording is synthetic and deterministic (``--seed``): media's four paths of
policies/examples/two-paths.yaml (interconnect + VPN into use1 and usw2), each with its own base
RTT, Gaussian RTT noise, 0.02 % random loss, and three episodes:

* 120-180 s: use1/interconnect blackholed (every probe lost) -> DOWN, the VPN takes over;
* 300-360 s: usw2/interconnect +60 ms and 3 % loss -> DEGRADED, then recovers with hysteresis;
* 450-452 s: a 2-second burst of extra RTT noise (|N(0, 15 ms)|) on use1/vpn -> inside the
  thresholds: no route change.

It is written to a JSONL file, then timed twice: in-process (read + parse + replay + render the
timeline; wall clock; peak RSS of this process from ``resource``, which includes the generated
recording held in memory; a separate pass under ``tracemalloc`` for the peak Python heap of the
replay itself), and end to end as the CLI an engineer runs (``bgpctl replay --policy ... FILE`` in
a subprocess: interpreter start-up, imports and output included; its own peak RSS). Prints one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from bgpctl.core.recording import read_recording
from bgpctl.core.replay import ReplaySummary, render_event, render_summary, replay
from bgpctl.policy.load import load_policy

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "policies" / "examples" / "two-paths.yaml"

PATHS = {  # (region, path): base RTT in ms
    ("use1", "interconnect"): 12.0,
    ("use1", "vpn"): 25.0,
    ("usw2", "interconnect"): 70.0,
    ("usw2", "vpn"): 85.0,
}


def generate(minutes: float = 10.0, rate: float = 50.0, seed: int = 1) -> list[str]:
    """The recording as JSONL lines, in send order (path by path interleaved)."""
    rnd = random.Random(seed)
    interval = 1.0 / rate
    n = int(minutes * 60 * rate)
    lines: list[str] = []
    for i in range(n):
        for (region, path), base in PATHS.items():
            sent = 1000.0 + i * interval + rnd.uniform(0, interval / 10)
            t = sent - 1000.0
            rtt = base + abs(rnd.gauss(0, 2.0))
            lost = rnd.random() < 0.0002
            if (region, path) == ("use1", "interconnect") and 120 <= t < 180:
                lost = True
            if (region, path) == ("usw2", "interconnect") and 300 <= t < 360:
                rtt += 60.0
                lost = lost or rnd.random() < 0.03
            if (region, path) == ("use1", "vpn") and 450 <= t < 452:
                rtt += abs(rnd.gauss(0, 15.0))
            received = None if lost else sent + rtt / 1000.0
            lines.append(
                json.dumps(
                    {
                        "service": "media",
                        "region": region,
                        "path": path,
                        "seq": i,
                        "sent": round(sent, 6),
                        "received": None if received is None else round(received, 6),
                    }
                )
            )
    return lines


def run_in_process(file: Path) -> tuple[float, ReplaySummary, int]:
    t0 = time.perf_counter()
    policy = load_policy(POLICY)
    summary = ReplaySummary()
    out: list[str] = []
    with file.open() as f:  # read lazily, as bgpctl replay does
        for event in replay(policy, read_recording(f, str(file)), summary=summary):
            out.extend(render_event(event))
    out.extend(render_summary(summary))
    return time.perf_counter() - t0, summary, len(out)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=50.0, help="samples per second per path")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="write the recording here and keep it")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    lines = generate(args.minutes, args.rate, args.seed)
    with tempfile.TemporaryDirectory(prefix="bgpctl-bench-replay-") as tmp:
        file = args.keep or Path(tmp) / "recording.jsonl"
        file.write_text("\n".join(lines) + "\n")

        cpu0 = time.process_time()
        wall, summary, out_lines = run_in_process(file)
        cpu = time.process_time() - cpu0
        peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        tracemalloc.start()
        run_in_process(file)
        _, heap_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

        bgpctl = Path(sys.executable).with_name("bgpctl")
        cmd = [str(bgpctl), "replay", "--policy", str(POLICY), str(file)]
        # GNU time reports the command's own peak RSS and CPU time (a forked child's ru_maxrss would
        # count the pages it shared with this process before exec)
        gnu_time = Path("/usr/bin/time")
        if gnu_time.exists():
            cmd = [str(gnu_time), "-f", "bench-rusage %M %U %S", *cmd]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        cli_wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"bgpctl replay failed ({proc.returncode}): {proc.stderr}")
        cli_rss_mib: float | None = None
        cli_cpu: float | None = None
        for line in proc.stderr.splitlines():
            if line.startswith("bench-rusage "):
                kib, user, system = line.split()[1:]
                cli_rss_mib, cli_cpu = int(kib) / 1024, float(user) + float(system)

    result = {
        "benchmark": "replay",
        "recording": {
            "minutes": args.minutes,
            "rate_per_path": args.rate,
            "paths": len(PATHS),
            "samples": len(lines),
            "seed": args.seed,
        },
        "in_process_wall_s": round(wall, 3),
        "cli_wall_s": round(cli_wall, 3),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "cli_peak_rss_mib": None if cli_rss_mib is None else round(cli_rss_mib, 1),
        "cli_cpu_s": None if cli_cpu is None else round(cli_cpu, 3),
        "in_process_cpu_s": round(cpu, 3),
        "tracemalloc_peak_mib": round(heap_peak / 2**20, 1),
        "ticks": summary.ticks,
        "plans": summary.plans,
        "transitions": summary.transitions,
        "route_changes": summary.route_changes,
        "timeline_lines": out_lines,
        "final_health": {str(k): h.value for k, h in summary.final_health.items()},
        "target_s": 10.0,
        "ok": cli_wall < 10.0 and wall < 10.0,
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": cpu_model(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },  # before, after
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
