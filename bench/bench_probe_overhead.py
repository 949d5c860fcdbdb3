"""CPU cost of probing: N paths (default 16) of STAMP probes at 20 ms spacing, from one process.

    # as root, from the repository root:
    .venv/bin/python -m bench.bench_probe_overhead [--paths 16] [--interval-ms 20] [--seconds 10]

Brings up tests/topologies/probe.clab.yml with the lab runner (lab ``bpo<pid>``, namespaces
``bpo<pid>-*``, taken down at the end, also on failure), pins N probe sources
(198.18.200.11, .12, ...) alternately through tgw1 and tgw2, runs one reflector process per connect
namespace, and measures this process's CPU time (``time.process_time``: user + system, all threads)
over the probing run's wall time. The reflectors' CPU is reported separately (``RUSAGE_CHILDREN``, after
they exit). Prints one JSON object; exits 1 if any path lost probes or the cost is 5 % of a core or more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time

from bgpctl.core.types import PathKey, Sample
from bgpctl.policy.model import ProbeProtocol
from bgpctl.probe.paths import ProbeSpec, run_specs
from bgpctl.probe.pinning import Pin, Pinning
from bgpctl_lab.poll import eventually
from tests.probe.topo import TARGET, TGW, Topo, topology

BUDGET_PCT = 5.0
REFLECTOR_START_BUDGET_S = 10.0


def _listening(topo: Topo, node: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", topo.ns(node), "ss", "-Hlun"], capture_output=True, text=True, check=True
    ).stdout


def measure(paths: int = 16, interval_ms: float = 20.0, seconds: float = 10.0) -> dict[str, object]:
    count = int(seconds * 1000 / interval_ms)
    with topology(f"bpo{os.getpid()}") as topo:
        regions = ["r1" if i % 2 == 0 else "r2" for i in range(paths)]
        pins = [Pin(f"198.18.200.{11 + i}", 301 + i, TGW[r], f"{r}/p{i}") for i, r in enumerate(regions)]
        specs = [
            ProbeSpec(
                PathKey("media", r, f"p{i}"),
                ProbeProtocol.UDP,
                pins[i].source,
                TARGET,
                862,
                46,
                interval_ms / 1000.0,
                0.2,
            )
            for i, r in enumerate(regions)
        ]
        reflectors = [
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    topo.ns(n),
                    sys.executable,
                    "-m",
                    "bgpctl",
                    "reflector",
                    "--seconds",
                    str(seconds + 60),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in ("c1", "c2")
        ]
        try:
            for n in ("c1", "c2"):
                eventually(
                    f"reflector in {n}",
                    budget=REFLECTOR_START_BUDGET_S,
                    probe=lambda n=n: _listening(topo, n),  # type: ignore[misc]
                    check=lambda out: [] if ":862" in out else ["not listening yet"],
                )
            rtts: dict[PathKey, list[float]] = {s.key: [] for s in specs}

            def sink(key: PathKey, sample: Sample) -> None:
                if sample.rtt is not None:
                    rtts[key].append(sample.rtt * 1000.0)

            with Pinning(pins, netns=topo.ns("cr")):
                ru0, cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.monotonic()
                counters = asyncio.run(run_specs(specs, sink, count=count, netns=topo.ns("cr")))
                cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
                ru1 = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            for p in reflectors:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                p.communicate(timeout=10)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
    lost = sum(c["lost"] for c in counters.values())
    sent = sum(c["sent"] for c in counters.values())
    all_rtts = [r for v in rtts.values() for r in v]
    return {
        "paths": paths,
        "interval_ms": interval_ms,
        "probes_sent": sent,
        "lost": lost,
        "skipped_slots": sum(c["skipped"] for c in counters.values()),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "cpu_pct_of_one_core": round(100 * cpu / wall, 2),
        "user_s": round(ru1.ru_utime - ru0.ru_utime, 3),
        "system_s": round(ru1.ru_stime - ru0.ru_stime, 3),
        "probes_per_s": round(sent / wall, 1),
        "reflectors_cpu_s": round(children.ru_utime + children.ru_stime, 3),
        "rtt_p50_ms": round(statistics.median(all_rtts), 3) if all_rtts else None,
        "rtt_max_ms": round(max(all_rtts), 3) if all_rtts else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--paths", type=int, default=16)
    ap.add_argument("--interval-ms", type=float, default=20.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    result = measure(args.paths, args.interval_ms, args.seconds)
    print(json.dumps(result))
    pct = result["cpu_pct_of_one_core"]
    assert isinstance(pct, float)
    sys.exit(0 if result["lost"] == 0 and pct < BUDGET_PCT else 1)


if __name__ == "__main__":
    main()
