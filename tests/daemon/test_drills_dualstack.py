"""The failover drills over IPv6 (issue 15), with bgpctl on cr running the lab's dual-stack policy
(lab/drills/policies/lab-dual-stack.yaml; each drill installs it and restarts the daemon in its setup, and puts
policies/lab.yaml back in its cleanup). Every run must stay inside the IPv4 drills' controller bounds: the
worst IPv6 call interrupted <= 400 ms, the edge's route moved within 1 s of the fault, nothing withdrawn.

* v6-only-region1: only IPv6 breaks in region 1 (tgw-use1 drops IPv6 on its Connect side); only the IPv6
  media prefix moves (to usw2 and back), the IPv4 prefixes and api's IPv6 prefix change 0 times.
* region-blackhole-v6, interconnect-cut-v6: the IPv4 drills with IPv6 calls and both families watched.

Own lab ``d6<pid>`` (controller mode); every check polls FRR's JSON, the kernel (route watch) or the daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bgpctl_lab.drill import DrillReport, run_drill, summary
from bgpctl_lab.drill_model import load_drill
from bgpctl_lab.pytest_plugin import CONTROLLER_CONVERGED_S, own_reference_lab
from bgpctl_lab.reference import wait_converged
from bgpctl_lab.runner import Lab
from bgpctl_lab.topology import drills_dir
from tests.lab.helpers import TOPOLOGY

pytestmark = [pytest.mark.lab, pytest.mark.slow]

LAB_PREFIX = "d6"
BLACKHOLE_MAX_MS = 400  # the IPv4 region-blackhole drill's bound for one run (tests/daemon/test_drills_controller.py)
MOVED_MAX_S = 1.0  # the IPv4 drills' controller budget for "edge routes media via usw2 only"
MEDIA6, API6 = "2001:db8:c0::/64", "2001:db8:c0:80::/64"
IPV4 = ("203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26")
V6_USE1 = "media/use1/interconnect/ipv6"


@pytest.fixture(scope="module")
def dlab() -> Iterator[Lab]:
    with own_reference_lab(LAB_PREFIX, TOPOLOGY, mode="controller") as lab:
        wait_converged(lab, "daemon converged after up", budget=CONTROLLER_CONVERGED_S)
        yield lab


def drill(lab: Lab, name: str, out: Path) -> DrillReport:
    report = run_drill(lab, load_drill(name, drills_dir(TOPOLOGY)), out_dir=out)
    print(summary(report))
    return report


def _changes(report: DrillReport, prefix: str) -> list[list[str]]:
    return [c.nexthops for c in report.route_timeline if c.prefix == prefix]


def test_an_ipv6_only_break_in_region_1_moves_only_the_ipv6_prefix(dlab: Lab, tmp_path: Path) -> None:
    report = drill(dlab, "v6-only-region1", tmp_path)
    assert report.passed, summary(report)
    assert report.interruption_ms is not None and report.interruption_ms < BLACKHOLE_MAX_MS, summary(report)
    assert report.route_moved_after_s is not None and report.route_moved_after_s < MOVED_MAX_S, summary(report)
    # the IPv6 media prefix went to usw2 alone and came back to both; nothing else moved
    assert _changes(report, MEDIA6) == [["2001:db8:1::12"], ["2001:db8:1::11", "2001:db8:1::12"]], summary(report)
    for prefix in (API6, *IPV4):
        assert _changes(report, prefix) == [], (prefix, summary(report))
    assert report.watch is not None and report.watch["errors"] == []
    assert report.watch["baseline"][MEDIA6] == ["2001:db8:1::11", "2001:db8:1::12"]
    assert report.watch["baseline"]["203.0.113.0/26"] == ["198.18.1.11", "198.18.1.12"]
    # between the fault and the restore only the IPv6 measurement of media in use1 left up (IPv4 on the same link
    # stayed up), and no other measurement was judged down during the whole drill
    assert report.fault is not None and report.restore is not None
    during = [
        d
        for d in report.decisions
        if report.fault.applied_s <= d["at_s"] <= report.restore.applied_s and d["new"] != "up"
    ]
    assert "down" in [d["new"] for d in during], report.decisions
    assert {d["path"] for d in during} == {V6_USE1}, report.decisions
    assert not [d for d in report.decisions if d["new"] == "down" and d["path"] != V6_USE1], report.decisions
    assert report.regions_answered == ["use1", "usw2"]  # IPv6 calls hashed to both regions before the fault


@pytest.mark.parametrize("name", ["region-blackhole-v6", "interconnect-cut-v6"])
def test_a_region_failure_moves_ipv6_calls_in_the_ipv4_bounds(dlab: Lab, tmp_path: Path, name: str) -> None:
    report = drill(dlab, name, tmp_path)
    assert report.passed, summary(report)
    assert report.interruption_ms is not None and report.interruption_ms < BLACKHOLE_MAX_MS, summary(report)
    assert report.route_moved_after_s is not None and report.route_moved_after_s < MOVED_MAX_S, summary(report)
    assert _changes(report, MEDIA6)[0] == ["2001:db8:1::12"], summary(report)  # IPv6 media to usw2 first
    assert ["198.18.1.12"] in _changes(report, "203.0.113.0/26"), summary(report)  # and IPv4 media too
    judged = {d["path"] for d in report.decisions if d["new"] == "down"}
    assert {V6_USE1, "media/use1/interconnect"} <= judged, report.decisions
