"""Accuracy and CPU cost of the NFQUEUE delayer, with real packets between the two nodes of
tests/topologies/impair-pair.clab.yml (lab ``bd<pid>_<n>``, brought up and taken down by the lab runner).

Run (root), from the repository root::

    .venv/bin/python -m bench.bench_delayer [--seconds 10] [--rates 50,500]

For each rate and impairment it sends a bounded UDP stream (rate x seconds packets) through the
impaired veth and prints the delay added (mean and median, baseline subtracted), the one-way delay's
p95, p99, max and standard deviation (baseline one-way is ~0.02 ms), packets lost and arriving out of
order, and the delayer's CPU use (utime+stime from /proc over the stream's wall time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bgpctl_lab import impair
from bgpctl_lab.impair import Impairment
from tests.lab.pairs import make_pair, udp_stream

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    impairment: str
    rate_pps: int
    packets: int
    lost: int
    out_of_order: int
    added_mean_ms: float
    added_median_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    stddev_ms: float
    cpu_pct: float
    backend: str


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15 of stat)


def measure(imp: Impairment, label: str, rate: int, seconds: float) -> Row:
    with make_pair() as p:
        base = udp_stream(p, max(50, rate), rate)
        b_mean, b_median = statistics.fmean(base.delays), statistics.median(base.delays)
        a = impair.set_impairment(p.a, p.ifname, imp, seconds=seconds + 60)
        c0, t0 = cpu_seconds(a.delayer_pid), time.monotonic()
        s = udp_stream(p, int(rate * seconds), rate)
        c1, t1 = cpu_seconds(a.delayer_pid), time.monotonic()
        d = s.delays
        q = statistics.quantiles(d, n=100)
        return Row(
            label,
            rate,
            s.sent,
            s.lost,
            s.out_of_order,
            round(statistics.fmean(d) - b_mean, 3),
            round(statistics.median(d) - b_median, 3),
            round(q[94], 3),
            round(q[98], 3),
            round(max(d), 3),
            round(statistics.stdev(d), 3),
            round(100 * (c1 - c0) / (t1 - t0), 2),
            a.backend,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rates", default="50,500")
    args = ap.parse_args()
    cases = [
        (Impairment(delay_ms=50), "delay 50"),
        (Impairment(delay_ms=50, jitter_ms=10, seed=1), "delay 50 jitter 10"),
    ]
    for rate in (int(r) for r in args.rates.split(",")):
        for imp, label in cases:
            print(json.dumps(measure(imp, label, rate, args.seconds).__dict__), flush=True)


if __name__ == "__main__":
    main()
