"""Measurement harness (issue 12): probe vs call-meter RFC 3550 jitter under 2 CPU hogs, user-space send
times and kernel transmit stamps alternated in one lab and one load. It uses the probe lab tests' fixtures, so
it runs as a test module; it is kept here, not in tests/, because it is a benchmark (minutes, stress-ng):

    cp bench/txstamp_jitter_harness.py tests/probe/test_zz_txstamp_measure.py
    TXSTAMP_RUNS=8 TXSTAMP_OUT=/tmp/x.jsonl flock /tmp/bgpctl-labrun.lock \
        .venv/bin/pytest -p no:cacheprovider tests/probe/test_zz_txstamp_measure.py -q
    rm tests/probe/test_zz_txstamp_measure.py

Results of 2026-12-01: bench/results/txstamp/*.jsonl, summarised in docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from bgpctl.core.stats import PathWindow
from bgpctl.policy.load import load_policy
from bgpctl.probe.datagram import DatagramProbe
from bgpctl_lab.impair import Impairment
from tests.probe.test_probe_lab import POLICY, TARGET, ProbeLab, impaired, plab  # noqa: F401

pytestmark = [pytest.mark.lab, pytest.mark.slow]
OUT = os.environ.get("TXSTAMP_OUT", "/tmp/txstamp-measure.jsonl")
RUNS = int(os.environ.get("TXSTAMP_RUNS", "8"))
STRESS = os.environ.get("TXSTAMP_STRESS", "1") == "1"


def _one(plab: ProbeLab, mode: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:  # noqa: F811 - the fixture
    deltas: list[float] = []
    orig = DatagramProbe._transmit

    def rec(self: DatagramProbe, seq: int, data: bytes, addr: object, user_ns: int) -> float:
        t = orig(self, seq, data, addr, user_ns)  # type: ignore[arg-type]
        deltas.append(t - user_ns / 1e9)
        return t

    with monkeypatch.context() as m:
        m.setattr(DatagramProbe, "_transmit", rec)
        if mode == "user":
            m.setattr("bgpctl.probe.datagram.enable_transmit_stamps", lambda _s: False)
        cr = plab.ns("cr")
        subprocess.run(["ip", "-n", cr, "route", "replace", f"{TARGET}/32", "via", "198.18.1.11"], check=True)
        try:
            meter = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bgpctl",
                    "lab",
                    "meter",
                    "--netns",
                    cr,
                    "--to",
                    TARGET,
                    "--flows",
                    "4",
                    "--seconds",
                    "11",
                    "--json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            samples, counters = plab.run(550, timeout_s=1.0)
            out, _err = meter.communicate(timeout=60)
        finally:
            subprocess.run(["ip", "-n", cr, "route", "del", f"{TARGET}/32", "via", "198.18.1.11"], check=False)
    report = json.loads(out)
    meter_j = statistics.fmean(f["jitter_ms"] for f in report["flows"])
    window = PathWindow(window_s=load_policy(POLICY).sla_classes["voice"].hysteresis.window_s)
    readings = []
    for s in sorted(samples, key=lambda s: s.seq):
        window.add(s)
        if s.seq >= 250 and s.seq % 50 == 0:
            j = window.stats(now=s.sent).jitter_ms
            assert j is not None
            readings.append(j)
    probe_j = statistics.fmean(readings)
    d_us = sorted(d * 1e6 for d in deltas)
    return {
        "mode": mode,
        "probe_jitter_ms": round(probe_j, 3),
        "meter_jitter_ms": round(meter_j, 3),
        "ratio": round(probe_j / meter_j, 3),
        "within_30pct": abs(probe_j - meter_j) <= 0.3 * meter_j,
        "lost": counters["lost"],
        "user_tx_stamp": counters["user_tx_stamp"],
        "send_minus_user_us": {
            "p50": round(d_us[len(d_us) // 2], 1),
            "p99": round(d_us[int(len(d_us) * 0.99)], 1),
            "max": round(d_us[-1], 1),
            "over_1ms": sum(1 for d in d_us if d > 1000),
        },
        "meter_send_late_ms": {k: v for k, v in report.items() if k.startswith("send_late")},
    }


def test_measure(
    plab: ProbeLab,  # noqa: F811 - plab and impaired are the probe lab's fixtures, imported for pytest
    impaired: Callable[[Impairment], None],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    impaired(Impairment(delay_ms=20, jitter_ms=10))
    hog = None
    if STRESS:
        hog = subprocess.Popen(["stress-ng", "--cpu", "2", "--timeout", "120"], stdout=subprocess.DEVNULL)
        time.sleep(2)
    t0 = time.monotonic()
    try:
        with open(OUT, "a") as f:
            for i in range(RUNS):
                row = _one(plab, "user" if i % 2 == 0 else "kernel", monkeypatch)
                row["t_s"] = round(time.monotonic() - t0, 1)
                row["stress"] = STRESS and hog is not None and hog.poll() is None
                f.write(json.dumps(row) + "\n")
                f.flush()
    finally:
        if hog is not None:
            hog.wait(timeout=150)
