"""Weighted split end to end in the reference lab (issue 14, point 1), controller mode.

One lab of its own (``controller_lab``, ``wg<pid>``), always torn down; run under the lab lock. The
media service gets weights at run time through the control API (``bgpctl weight media use1=80 usw2=20``),
and every hop is checked:

1. the daemon: ``status`` lists the override, ``routes`` carries each region's weight;
2. the edge's BGP RIB: both media paths from cr carry the link-bandwidth extended community that ExaBGP
   was told to send (``LB:65000:<bytes/s>``), 80 and 20 Mbit/s;
3. the edge's FIB: zebra's route has both next hops with weights 80 and 20 (FRR weighs multipath by link
   bandwidth), and so has the kernel's route (``ip -j route`` or its nexthop group);
4. the data path: the call meter's 128 flows (one 5-tuple each; the edge hashes L4, see containerlab.yml's
   ``net.ipv4.fib_multipath_hash_policy: 1``) each stay on one region, and the number that reach use1 lies
   in the exact binomial interval of Binomial(128, 0.8) at α = 1e-6.

Then, with the weights still in force: use1's region link down -> the edge routes media via usw2 only and
every flow reaches usw2 (100 % of the traffic goes to the other region); link up -> the 80/20 split comes
back through the rise rules. A drain of use1 -> every flow to usw2 (0/100); undrain -> the weighted split
returns only after the voice class's rise_s (the returning hold), and the flows split 80/20 again.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from bgpctl.policy.load import load_policy
from bgpctl.speaker.commands import LINK_BANDWIDTH_UNIT
from bgpctl_lab.binomial import ALPHA, binomial_interval
from bgpctl_lab.meter import run_meter
from bgpctl_lab.meter_report import MeterReport
from bgpctl_lab.poll import eventually
from bgpctl_lab.reference import CR, MEDIA, USE1, USW2, route_nexthops
from bgpctl_lab.reference import ask_daemon as ask
from bgpctl_lab.runner import Lab
from tests.control.support import schema_errors
from tests.lab.helpers import LAB_POLICY

pytestmark = pytest.mark.lab

LAB_PREFIX = "wg"
POLICY = load_policy(LAB_POLICY)
VOICE = POLICY.sla_classes[POLICY.services["media"].sla].hysteresis
HOLD, RISE = VOICE.hold_down_s, VOICE.rise_s
WEIGHTS = {"use1": 80, "usw2": 20}
HOP = {"use1": USE1, "usw2": USW2}
REGION_OF_HOP = {v: k for k, v in HOP.items()}
MEDIA_TARGET = "203.0.113.10"  # the meter's responders listen on 9000 in both regions
FLOWS = 128
SECONDS = 2.0
RATE_PPS = 384.0  # 3 packets per flow per second: each flow is seen several times, so a flow on two paths shows
LOCAL_AS = POLICY.speaker.local_as
USE1_LINK = ("tgw-use1", "eth2")  # tgw-use1 <-> connect-use1 (lab/README.md), as the region-blackhole drill

BUDGETS: dict[str, float] = {
    # the override: one control round trip, the daemon's next evaluation (<= 1 s), ExaBGP, FRR's bestpath
    # and zebra (advertisement-interval 0)
    "weighted_fib": 15.0,
    # use1's link down: probes unanswered (~110 ms) -> down -> withdraw -> FRR
    "use1_gone": 10.0,
    # use1's link back: hold-down (15 s) and rise (10 s) of clean probes, then BGP and FRR
    "use1_back": HOLD + RISE + 20.0,
    "drained": 10.0,
    # undrain: the returning hold of rise_s, then BGP and FRR
    "undrained": RISE + 15.0,
}


@pytest.fixture(scope="module")
def weighted(controller_lab: Lab) -> Iterator[Lab]:
    """The lab with media weighted 80/20 by a runtime override; removed (unweight) afterwards."""
    ask(controller_lab, "weight", "media", "use1=80", "usw2=20", "--reason", "wg: 80/20 canary")
    try:
        yield controller_lab
    finally:
        ask(controller_lab, "unweight", "media", "--reason", "wg: end of test")


# --------------------------------------------------------------------------------------------------------
# each hop, as structured state


def edge_bgp_bandwidths(lab: Lab) -> dict[str, str | None]:
    """Next hop -> the extended-community string of each media path from cr in the edge's BGP RIB."""
    data = lab.vtysh_json("edge", f"show bgp ipv4 unicast {MEDIA} json")
    out: dict[str, str | None] = {}
    for p in data.get("paths", []):
        if p.get("peer", {}).get("peerId") != CR:
            continue
        for nh in p.get("nexthops", []):
            out[nh["ip"]] = p.get("extendedCommunity", {}).get("string")
    return out


def edge_fib_weights(lab: Lab) -> dict[str, int | None]:
    """Next hop -> weight of the selected media route in zebra (``show ip route PREFIX json``)."""
    data = lab.vtysh_json("edge", f"show ip route {MEDIA} json")
    out: dict[str, int | None] = {}
    for entry in data.get(MEDIA, []):
        if entry.get("selected"):
            for nh in entry.get("nexthops", []):
                if nh.get("active") and "ip" in nh:
                    out[nh["ip"]] = nh.get("weight")
    return out


def kernel_weights(lab: Lab) -> dict[str, int]:
    """Gateway -> weight of the edge kernel's media route: its ``nexthops`` (weight 1 when not given), or
    the group of its nexthop object (``nhid``, zebra's default where the kernel has nexthop objects)."""
    routes = json.loads(lab.exec("edge", ["ip", "-j", "route", "show", "exact", MEDIA]).stdout or "[]")
    out: dict[str, int] = {}
    for r in routes:
        if "nhid" in r and "nexthops" not in r and "gateway" not in r:
            (nhg,) = json.loads(lab.exec("edge", ["ip", "-j", "nexthop", "show", "id", str(r["nhid"])]).stdout)
            for member in nhg.get("group", [{"id": r["nhid"], "weight": 1}]):
                (nh,) = json.loads(lab.exec("edge", ["ip", "-j", "nexthop", "show", "id", str(member["id"])]).stdout)
                out[nh["gateway"]] = int(member.get("weight", 1))
        for nh in r.get("nexthops") or ([r] if "gateway" in r else []):
            out[nh["gateway"]] = int(nh.get("weight", 1))
    return out


def weighted_problems(lab: Lab, weights: dict[str, int]) -> list[str]:
    """[] when the daemon, the edge's RIB, zebra and the kernel all hold media split by ``weights``."""
    problems: list[str] = []
    routes = ask(lab, "routes", "--peer", "edge", "--prefix", MEDIA)
    problems += schema_errors("routes", routes)
    got = {r["next_hop"]: r.get("weight") for p in routes["peers"] for r in p["routes"] if r["prefix"] == MEDIA}
    want = {HOP[region]: w for region, w in weights.items()}
    if got != want:
        problems.append(f"daemon routes: {got}, want {want}")
    bw = edge_bgp_bandwidths(lab)
    for region, w in weights.items():
        token = f"LB:{LOCAL_AS}:{w * LINK_BANDWIDTH_UNIT}"
        if token not in (bw.get(HOP[region]) or ""):
            problems.append(f"edge RIB: {MEDIA} via {HOP[region]} carries {bw.get(HOP[region])!r}, want {token}")
    if (fib := edge_fib_weights(lab)) != want:
        problems.append(f"edge zebra: {MEDIA} next hops {fib}, want {want}")
    if (kernel := kernel_weights(lab)) != want:
        problems.append(f"edge kernel: {MEDIA} next hops {kernel}, want {want}")
    return problems


def only_via(lab: Lab, hop: str) -> list[str]:
    got = route_nexthops(lab, "edge", MEDIA)
    return [] if got == {hop} else [f"edge: {MEDIA} via {sorted(got)}, want {hop} only"]


# --------------------------------------------------------------------------------------------------------
# the data path


def meter(lab: Lab) -> MeterReport:
    return run_meter(lab.netns("agents"), MEDIA_TARGET, 9000, rate_pps=RATE_PPS, flows=FLOWS, seconds=SECONDS)


def flows_by_region(report: MeterReport) -> Counter[str]:
    """How many of the meter's flows each region answered. A flow is one 5-tuple, so one path: a flow
    answered by two regions (a per-packet split) or by none fails the test."""
    per: Counter[str] = Counter()
    for f in report.flows:
        answered = {r for r, n in f.regions.items() if n}
        assert len(answered) == 1, f"flow {f.flow} (port {f.source_port}) answered by {f.regions}: not one path"
        per[answered.pop()] += 1
    assert sum(per.values()) == FLOWS
    return per


def assert_split(report: MeterReport, weights: dict[str, int], record: Any, name: str) -> Counter[str]:
    per = flows_by_region(report)
    share = weights["use1"] / sum(weights.values())
    lo, hi = binomial_interval(FLOWS, share, ALPHA)
    record(name, {"flows": dict(per), "use1_interval": [lo, hi], "alpha": ALPHA, "lost": report.lost})
    assert lo <= per["use1"] <= hi, f"{per['use1']} of {FLOWS} flows to use1, outside [{lo}, {hi}] at {ALPHA}"
    return per


# --------------------------------------------------------------------------------------------------------


def test_80_20_is_on_every_hop_and_the_flows_split_within_the_binomial_bound(
    weighted: Lab, record_property: Any
) -> None:
    lab = weighted
    status = ask(lab, "status")
    assert schema_errors("status", status) == []
    rows = [o for o in status["overrides"] if o["kind"] == "weight"]
    assert [(o["target"], o["weights"], o["source"]) for o in rows] == [
        ("media use1=80 usw2=20", WEIGHTS, "runtime")
    ], rows
    took = eventually(
        "media 80/20 in the daemon, the edge's RIB, zebra and the kernel",
        budget=BUDGETS["weighted_fib"],
        probe=lambda: lab,
        check=lambda lab_: weighted_problems(lab_, WEIGHTS),
        interval_s=0.2,
    )
    record_property("weighted_fib_s", took.elapsed_s)
    record_property(
        "hops",
        {"edge_rib": edge_bgp_bandwidths(lab), "edge_zebra": edge_fib_weights(lab), "edge_kernel": kernel_weights(lab)},
    )
    report = meter(lab)
    assert report.lost == 0, report.lost
    assert_split(report, WEIGHTS, record_property, "split_80_20")


def test_region_down_sends_every_flow_to_the_other_and_the_split_returns_after_the_rise_rules(
    weighted: Lab, record_property: Any
) -> None:
    lab = weighted
    eventually(
        "media 80/20", budget=BUDGETS["weighted_fib"], probe=lambda: lab, check=lambda x: weighted_problems(x, WEIGHTS)
    )
    node, iface = USE1_LINK
    lab.link_set(node, iface, False)
    try:
        gone = eventually(
            "edge: media via usw2 only",
            budget=BUDGETS["use1_gone"],
            probe=lambda: lab,
            check=lambda x: only_via(x, USW2),
            interval_s=0.05,
        )
        record_property("use1_gone_s", gone.elapsed_s)
        assert kernel_weights(lab).keys() == {USW2}
        assert flows_by_region(meter(lab)) == Counter({"usw2": FLOWS})
    finally:
        lab.link_set(node, iface, True)
    up_at = time.monotonic()
    eventually(
        "media 80/20 again",
        budget=BUDGETS["use1_back"],
        probe=lambda: lab,
        check=lambda x: weighted_problems(x, WEIGHTS),
        interval_s=0.2,
    )
    back = time.monotonic() - up_at
    record_property("use1_back_s", back)
    assert back >= HOLD - 1.0, f"use1 came back {back:.1f} s after its link, before the hold-down ({HOLD:g} s)"
    assert_split(meter(lab), WEIGHTS, record_property, "split_after_failover")


def test_drain_sends_every_flow_to_the_other_and_undrain_returns_the_split_after_rise_s(
    weighted: Lab, record_property: Any
) -> None:
    lab = weighted
    eventually(
        "media 80/20", budget=BUDGETS["weighted_fib"], probe=lambda: lab, check=lambda x: weighted_problems(x, WEIGHTS)
    )
    ask(lab, "drain", "use1", "--service", "media", "--reason", "wg: drain with weights")
    eventually(
        "edge: media via usw2 only",
        budget=BUDGETS["drained"],
        probe=lambda: lab,
        check=lambda x: only_via(x, USW2),
        interval_s=0.1,
    )
    assert flows_by_region(meter(lab)) == Counter({"usw2": FLOWS})
    undrained_at = time.monotonic()
    ask(lab, "undrain", "use1", "--service", "media", "--reason", "wg: undrain")
    holds = [o for o in ask(lab, "status")["overrides"] if o["kind"] == "drain" and o.get("returning")]
    assert [o["target"] for o in holds] == ["use1 for media"], holds
    assert holds[0]["expires"] - holds[0]["since"] == pytest.approx(max(RISE, VOICE.min_dwell_s))
    eventually(
        "media 80/20 after the returning hold",
        budget=BUDGETS["undrained"],
        probe=lambda: lab,
        check=lambda x: weighted_problems(x, WEIGHTS),
        interval_s=0.2,
    )
    back = time.monotonic() - undrained_at
    record_property("undrain_back_s", back)
    assert back >= RISE - 0.5, f"the split came back {back:.1f} s after undrain, before rise_s ({RISE:g} s)"
    assert_split(meter(lab), WEIGHTS, record_property, "split_after_undrain")
