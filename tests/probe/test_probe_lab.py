"""Probe accuracy in the reference lab (containerlab.yml on namespaces, real FRR), policies/lab.yaml.

Region use1's media probes (STAMP, DSCP EF, 20 ms, timeout 200 ms) leave cr from 198.18.1.21, pinned
through tgw-use1, to ``bgpctl reflector`` on connect-use1. Impairments go on tgw-use1's eth2 (towards
connect-use1), so they act on the forward direction of exactly that path. The figures each test
measures are attached to the test report (``record_property``) for docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bgpctl import events
from bgpctl.core.stats import PathWindow
from bgpctl.core.types import Sample
from bgpctl.policy.load import load_policy
from bgpctl.probe.paths import ProbeSpec, run_specs, select, specs_from_policy
from bgpctl.probe.pinning import Pinning, pins_from_policy
from bgpctl.probe.protocol import Counters
from bgpctl_lab import impair
from bgpctl_lab.impair import Impairment
from bgpctl_lab.poll import eventually
from bgpctl_lab.runner import Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "lab.yaml"
TAG = "tbprb"
TARGET = "203.0.113.10"
IMPAIRED = ("tgw-use1", "eth2")
READY_BUDGET_S = 15.0
STAMP_PORT = 862  # the probes of policies/lab.yaml's media group
ANSWER_TIMEOUT_S = 2.0  # > 1000 x the lab's RTT: an answer is late only if it is lost
# the loss tests count, they do not time: 1000 probes 5 ms apart (5 s, not the policy's 20 s) crossing the
# impairment; 200 packets a second of 44-byte STAMP probes is nothing for the lab's veth links
COUNT_INTERVAL_S = 0.005
METER_BUDGET_S = 60.0
METER_FLOWS = 12  # the jitter comparison's meter side: see that test's docstring
Record = Callable[[str, object], None]

# Counts what crosses each TGW from region 1's probe source (the pinning check).
_NFT_COUNT = """
table inet tbprb {
    counter r1_stamp { }
    chain through {
        type filter hook forward priority 0; policy accept;
        ip saddr 198.18.1.21 udp dport 862 counter name r1_stamp
    }
}
"""


def reflector_argv() -> list[str]:
    """What a lab node runs to answer the probes of policies/lab.yaml (STAMP on 862, TCP 443 for api)."""
    return [sys.executable, "-m", "bgpctl", "reflector", "--tcp-port", "443", "--seconds", "1800"]


@dataclass
class ProbeLab:
    lab: Lab
    spec: ProbeSpec  # media, use1, interconnect

    def ns(self, node: str) -> str:
        return self.lab.netns(node)

    def run(
        self, count: int, *, timeout_s: float | None = None, interval_s: float | None = None
    ) -> tuple[list[Sample], Counters]:
        spec = dataclasses.replace(
            self.spec,
            timeout_s=self.spec.timeout_s if timeout_s is None else timeout_s,
            interval_s=self.spec.interval_s if interval_s is None else interval_s,
        )
        samples: list[Sample] = []
        counters = asyncio.run(run_specs([spec], lambda _k, s: samples.append(s), count=count, netns=self.ns("cr")))
        return samples, counters[spec.key]

    def r1_stamp_count(self, node: str) -> int:
        out = self.lab.exec(node, ["nft", "-j", "list", "counter", "inet", "tbprb", "r1_stamp"]).stdout
        return int(next(o["counter"]["packets"] for o in json.loads(out)["nftables"] if "counter" in o))


def _log(lab_: Lab, node: str, log: str) -> Callable[[], str]:
    path = lab_.node_dir(node) / log
    return lambda: path.read_text() if path.exists() else ""


def _udp_listening(lab_: Lab, node: str, port: int) -> Callable[[], str]:
    return lambda: lab_.exec(node, ["ss", "-Hlun", "sport", "=", f":{port}"]).stdout


def _ensure(lab_: Lab, node: str, udp_port: int, argv: list[str], name: str, ready: str) -> None:
    """Make sure ``name`` answers on ``udp_port`` in ``node``: the lab's own (lab/services.yaml starts a
    reflector and a meter responder in each connect node) once it listens, else one started here
    (tag ``tbprb-<name>``, stopped by the fixture)."""
    if any(p.node == node and p.tag.endswith(name) for p in lab_.spawned()):
        eventually(
            f"the lab's {name} listening on {node}",
            budget=READY_BUDGET_S,
            probe=_udp_listening(lab_, node, udp_port),
            check=lambda out: [] if out.strip() else [f"nothing listens on UDP {udp_port} yet"],
        )
        return
    log = f"{TAG}-{name}.log"
    lab_.spawn(node, argv, tag=f"{TAG}-{name}", log_name=log)
    eventually(
        f"{name} ready on {node}",
        budget=READY_BUDGET_S,
        probe=_log(lab_, node, log),
        check=lambda text: [] if ready in text else [f"no {ready!r} in {log} yet"],
    )


@pytest.fixture(scope="module")
def plab(lab: Lab) -> Iterator[ProbeLab]:
    policy = load_policy(POLICY)
    spec = select(specs_from_policy(policy), ["media/use1/interconnect"])[0]
    pinning = Pinning(pins_from_policy(policy), netns=lab.netns("cr"))
    try:
        # The lab may already run these (lab/services.yaml): start only what is missing, and stop only
        # what this module started.
        for node in ("connect-use1", "connect-usw2"):
            _ensure(lab, node, 862, reflector_argv(), "reflector", events.REFLECTOR_READY)
        _ensure(
            lab,
            "connect-use1",
            9000,
            [sys.executable, "-m", "bgpctl", "lab", "responder", "--region", "use1", "--seconds", "1800"],
            "responder",
            events.RESPONDER_READY,
        )
        for node in ("tgw-use1", "tgw-usw2"):
            subprocess.run(
                ["ip", "netns", "exec", lab.netns(node), "nft", "-f", "-"],
                input=_NFT_COUNT,
                text=True,
                check=True,
                timeout=30,
            )
        pinning.install()
        yield ProbeLab(lab, spec)
    finally:
        pinning.remove()
        impair.clear_impairment(lab.netns(IMPAIRED[0]), IMPAIRED[1])
        for node in ("tgw-use1", "tgw-usw2"):
            lab.exec(node, ["nft", "delete", "table", "inet", "tbprb"], check=False)
        lab.kill_spawned(tag=f"{TAG}-reflector")
        lab.kill_spawned(tag=f"{TAG}-responder")


@pytest.fixture(scope="module")
def baseline_ms(plab: ProbeLab) -> float:
    """The lab's median RTT on the path with no impairment (the 'lab baseline')."""
    impair.clear_impairment(plab.ns(IMPAIRED[0]), IMPAIRED[1])
    samples, counters = plab.run(250)
    assert counters["lost"] == 0, counters
    return statistics.median(_rtts_ms(samples))


def _rtts_ms(samples: list[Sample]) -> list[float]:
    return [s.rtt * 1000.0 for s in samples if s.rtt is not None]


@pytest.fixture
def impaired(plab: ProbeLab) -> Iterator[Callable[[Impairment], None]]:
    ns, ifname = plab.ns(IMPAIRED[0]), IMPAIRED[1]

    def apply(imp: Impairment) -> None:
        impair.set_impairment(ns, ifname, imp, seconds=300)

    try:
        yield apply
    finally:
        impair.clear_impairment(ns, ifname)


@pytest.mark.parametrize("delay_ms", [0, 20, 150])
def test_median_rtt_is_injected_delay_plus_baseline_within_1ms(
    plab: ProbeLab, baseline_ms: float, impaired: Callable[[Impairment], None], delay_ms: int, record_property: Record
) -> None:
    if delay_ms:
        impaired(Impairment(delay_ms=delay_ms))
    # The policy's 200 ms timeout would count a 150 ms probe delayed 50 ms more by a busy machine as
    # lost; the median is what is measured here, so every reply is kept (timeout 1 s).
    samples, counters = plab.run(250, timeout_s=1.0)
    median = statistics.median(_rtts_ms(samples))
    record_property(
        "probe_delay",
        {
            "injected_ms": delay_ms,
            "baseline_ms": round(baseline_ms, 3),
            "median_ms": round(median, 3),
            "lost": counters["lost"],
        },
    )
    assert counters["lost"] == 0, counters
    assert abs(median - (delay_ms + baseline_ms)) <= 1.0, (median, baseline_ms)


def _impair_loss_counter(plab: ProbeLab) -> int:
    """Packets the nft loss rule on tgw-use1:eth2 has stolen since the impairment was set."""
    out = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            plab.ns(IMPAIRED[0]),
            "nft",
            "-j",
            "list",
            "table",
            "netdev",
            f"bgpctl_impair_{IMPAIRED[1]}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    total = 0
    for obj in json.loads(out)["nftables"]:
        rule = obj.get("rule")
        if rule and any("fwd" in e for e in rule["expr"]):
            total += sum(e["counter"]["packets"] for e in rule["expr"] if "counter" in e)
    return total


@pytest.mark.parametrize("loss_pct", [1, 5, 20])
def test_measured_loss_is_within_2_points_of_injected_loss_over_1000_probes(
    plab: ProbeLab, loss_pct: int, record_property: Record
) -> None:
    # Deterministic injection: of every 100 consecutive probes crossing tgw-use1, exactly loss_pct are
    # dropped (nft numgen inc), so 1000 probes lose exactly 10 x loss_pct.
    rule = [
        "ip",
        "saddr",
        "198.18.1.21",
        "udp",
        "dport",
        "862",
        "numgen",
        "inc",
        "mod",
        "100",
        "<",
        str(loss_pct),
        "drop",
    ]
    echoed = plab.lab.exec(
        "tgw-use1", ["nft", "--echo", "--handle", "insert", "rule", "inet", "tbprb", "through", *rule]
    ).stdout
    handle = re.search(r"# handle (\d+)", echoed)
    assert handle is not None, echoed
    try:
        samples, counters = plab.run(1000, interval_s=COUNT_INTERVAL_S)
    finally:
        plab.lab.exec("tgw-use1", ["nft", "delete", "rule", "inet", "tbprb", "through", "handle", handle[1]])
    measured = 100.0 * counters["lost"] / counters["sent"]
    record_property("probe_loss_deterministic", {"injected_pct": loss_pct, "measured_pct": measured})
    assert len(samples) == counters["sent"] == 1000
    assert abs(measured - loss_pct) <= 2.0, measured


@pytest.mark.parametrize("loss_pct", [1, 5, 20])
def test_random_loss_from_the_lab_impairment_is_counted_exactly(
    plab: ProbeLab, impaired: Callable[[Impairment], None], loss_pct: int, record_property: Record
) -> None:
    """With the lab's own (random, Bernoulli) loss, the probes must count exactly what it dropped.

    Whether 1000 Bernoulli draws land within 2 points of L is the impairment's luck, not the prober's
    accuracy (at L = 20 % one run in nine does not: sigma = 1.26 points); that draw is only checked to be
    plausible (within 4.5 sigma), and the figure is recorded.

    The loss rule matches the probes only (UDP to the STAMP port), so its counter counts nothing else
    that crosses the link (it once counted 197 for 196 lost probes), and the answers get a timeout that
    stays generous on a loaded machine (a late answer counted as lost made the two differ the other way).
    """
    impaired(Impairment(loss_pct=loss_pct, udp_dport=STAMP_PORT))
    samples, counters = plab.run(1000, timeout_s=ANSWER_TIMEOUT_S, interval_s=COUNT_INTERVAL_S)
    dropped = _impair_loss_counter(plab)
    measured = 100.0 * counters["lost"] / counters["sent"]
    record_property(
        "probe_loss_random", {"injected_pct": loss_pct, "measured_pct": measured, "dropped_by_impairment": dropped}
    )
    assert len(samples) == counters["sent"] == 1000
    assert counters["lost"] == dropped, (counters, dropped)  # nothing else loses packets on this path
    sigma = math.sqrt(1000 * loss_pct / 100 * (1 - loss_pct / 100))
    assert abs(dropped - 10 * loss_pct) <= 4.5 * sigma, f"the impairment dropped {dropped} of 1000"


def test_rfc3550_jitter_within_30pct_of_the_call_meter_on_the_same_path(
    plab: ProbeLab, impaired: Callable[[Impairment], None], record_property: Record
) -> None:
    """Probes and the call meter cross the same jittered link at the same time; their RFC 3550 jitters agree.

    RFC 3550's estimator (J += (|D| - J) / 16) remembers about 31 packets, so one reading of it swings by
    about +-15 % around its mean with 10 ms of jitter. Each side is therefore read several times: the
    meter's twelve flows, and the daemon's view of the probes (PathWindow over the voice SLA's 5 s window)
    read once a second (50 probes apart) once the window is full; the means are compared. With four meter
    flows and 11 s the probe/meter ratio had a standard deviation of 0.12 under load (16 runs, docs/
    benchmarks.md "Probes"), so 30 % was a 2.5-sigma bound that failed about one run in a hundred; twelve
    flows over 16 s shrink the spread of both means.
    """
    cr = plab.ns("cr")
    # The meter sends from cr's main table: point it at region 1 for the target only, for this test.
    subprocess.run(["ip", "-n", cr, "route", "replace", f"{TARGET}/32", "via", "198.18.1.11"], check=True)
    try:
        impaired(Impairment(delay_ms=20, jitter_ms=10))
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
                str(METER_FLOWS),
                "--seconds",
                "16",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            samples, counters = plab.run(800, timeout_s=1.0)
            out, err = meter.communicate(timeout=METER_BUDGET_S)
        finally:
            if meter.poll() is None:
                meter.kill()
                meter.communicate()
    finally:
        subprocess.run(["ip", "-n", cr, "route", "del", f"{TARGET}/32", "via", "198.18.1.11"], check=False)
    assert meter.returncode == 0, err
    report = json.loads(out)
    meter_flows = [f["jitter_ms"] for f in report["flows"]]
    assert len(meter_flows) == METER_FLOWS and all(j is not None for j in meter_flows), report["flows"]
    meter_jitter = statistics.fmean(meter_flows)
    window = PathWindow(window_s=load_policy(POLICY).sla_classes["voice"].hysteresis.window_s)
    readings: list[float] = []
    for s in samples:
        window.add(s)
        if s.seq >= 250 and s.seq % 50 == 0:
            j = window.stats(now=s.sent).jitter_ms
            assert j is not None
            readings.append(j)
    probe_jitter = statistics.fmean(readings)
    record_property(
        "probe_jitter",
        {
            "injected_ms": 10,
            "probe_rfc3550_ms": round(probe_jitter, 3),
            "probe_readings_ms": [round(r, 2) for r in readings],
            "meter_rfc3550_ms": round(meter_jitter, 3),
            "meter_flows_ms": [round(m, 2) for m in meter_flows],
            "meter_report_jitter_ms": report["jitter_ms"],
            "lost": counters["lost"],
        },
    )
    assert counters["lost"] == 0, counters
    assert abs(probe_jitter - meter_jitter) <= 0.3 * meter_jitter, (probe_jitter, meter_jitter)


def test_region1_probes_cross_tgw_use1_while_main_points_at_region2(plab: ProbeLab) -> None:
    cr = plab.ns("cr")
    subprocess.run(["ip", "-n", cr, "route", "replace", "203.0.113.0/24", "via", "198.18.1.12"], check=True)
    try:
        before = plab.r1_stamp_count("tgw-use1"), plab.r1_stamp_count("tgw-usw2")
        _, counters = plab.run(100)
        after = plab.r1_stamp_count("tgw-use1"), plab.r1_stamp_count("tgw-usw2")
    finally:
        subprocess.run(["ip", "-n", cr, "route", "del", "203.0.113.0/24", "via", "198.18.1.12"], check=False)
    assert counters["answered"] == 100, counters
    assert (after[0] - before[0], after[1] - before[1]) == (100, 0)
