"""Failover drills against the real lab (session ``lab`` fixture, mode no-controller), and lab mode
``no-controller-bfd`` (BFD 300 ms x 3 on the edge<->TGW sessions).

Each test runs a drill from lab/drills/ exactly as ``bgpctl lab drill NAME`` does and checks its
report. The drills restore what they break; the BFD test puts the lab back into no-controller mode
(also when it fails).

Why 3 s..12 s for an interconnect cut in no-controller mode: nothing on the edge's side of the
shared segment goes down, so the edge only drops tgw-use1 when its hold timer (9 s) expires. The
timer restarts at every keepalive (every 3 s, FRR sends them a little early), so it expires 6 to 9 s
after the cut, depending on when the last keepalive came; bgpd, zebra and the kernel then move the
route within tens of ms. The meter's worst flow (one that hashed onto region 1) is silent from the
cut to that moment. 3 s is far above what a detected link-down or BFD gives (< 1.5 s), so a pass
means "the hold timer did it"; 12 s leaves 3 s of margin over the longest expiry for a loaded CI host.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgpctl_lab.drill import DrillReport, run_drill, summary
from bgpctl_lab.drill_model import load_drill
from bgpctl_lab.poll import eventually
from bgpctl_lab.runner import Lab
from bgpctl_lab.topology import drills_dir
from tests.lab.helpers import TOPOLOGY, all_established

pytestmark = [pytest.mark.lab, pytest.mark.slow]

HOLD_CUT_MIN_MS, HOLD_CUT_MAX_MS = 3000, 12000  # see the module docstring
BFD_CUT_MIN_MS, BFD_CUT_MAX_MS = 500, 1500  # BFD detects after 600..900 ms (3 x 300 ms after the last packet)
TGW_PEERS = {"198.18.1.11", "198.18.1.12"}


def drill(lab: Lab, name: str, out: Path) -> DrillReport:
    report = run_drill(lab, load_drill(name, drills_dir(TOPOLOGY)), out_dir=out)
    print(summary(report))
    return report


def check(report: DrillReport, name: str) -> Any:
    return next(r for r in [*report.steady, *report.expect, *report.recover] if r.name == name)


def test_interconnect_cut_no_controller_moves_after_the_hold_time(lab: Lab, tmp_path: Path) -> None:
    assert lab.mode == "no-controller"
    report = drill(lab, "interconnect-cut", tmp_path)
    assert report.passed, summary(report)
    assert "use1" in report.regions_answered  # some flows used region 1, so a call heard the cut
    assert report.interruption_ms is not None
    assert HOLD_CUT_MIN_MS <= report.interruption_ms <= HOLD_CUT_MAX_MS, summary(report)
    edge = check(report, "edge routes media via usw2 only")
    assert edge.held and HOLD_CUT_MIN_MS / 1000 <= edge.after_s <= HOLD_CUT_MAX_MS / 1000
    assert report.route_moved_after_s is not None
    assert HOLD_CUT_MIN_MS / 1000 <= report.route_moved_after_s <= HOLD_CUT_MAX_MS / 1000
    assert report.route_changes == 2  # to usw2 only, and back to both after the restore
    files = list(tmp_path.glob("drill-interconnect-cut-no-controller-*.json"))
    assert len(files) == 1
    written = json.loads(files[0].read_text())
    assert written["passed"] is True and written["interruption_ms"] == report.interruption_ms


def test_region_blackhole_no_controller_fails_its_expectation(lab: Lab, tmp_path: Path) -> None:
    report = drill(lab, "region-blackhole", tmp_path)
    assert not report.passed
    assert "expect check 'edge routes media via usw2 only' did not hold within 10 s" in report.violations
    assert check(report, "tgw-usw2 routes the agents' prefix to the edge").held  # the hop before it did
    assert not check(report, "edge routes media via usw2 only").held
    assert report.route_changes == 0  # plain BGP never saw the blackhole
    assert check(report, "edge load-shares media over both regions again").held
    assert report.meter is not None and report.meter.lost > 0  # the calls on region 1 did hear it
    assert "did NOT hold within 10 s" in summary(report)


def test_active_active_no_controller(lab: Lab, tmp_path: Path) -> None:
    report = drill(lab, "active-active", tmp_path)
    assert report.passed, summary(report)
    assert report.regions_answered == ["use1", "usw2"]
    assert report.route_changes == 0 and report.fault is None


def test_soak_short_no_route_change_under_healthy_jitter(lab: Lab, tmp_path: Path) -> None:
    report = drill(lab, "soak-jitter-short", tmp_path)
    assert report.passed, summary(report)
    assert report.route_changes == 0 and report.regions_answered == ["use1", "usw2"]
    assert report.watch is not None and report.watch["polls"] >= 0.8 * 30 / 0.020  # it watched all along
    m = report.meter
    assert m is not None and m.rtt is not None
    assert 10 <= m.rtt.p50_ms <= 40, m.rtt  # the 20 ms +- 10 ms jitter was in force on both regions


def bfd_peers(lab: Lab, node: str) -> dict[str, dict[str, Any]]:
    return {p["peer"]: p for p in lab.vtysh_json(node, "show bfd peers json")}


def assert_bfd_up(lab: Lab) -> None:
    edge = bfd_peers(lab, "edge")
    assert set(edge) == TGW_PEERS, edge
    for node, peers in (
        ("edge", edge),
        ("tgw-use1", bfd_peers(lab, "tgw-use1")),
        ("tgw-usw2", bfd_peers(lab, "tgw-usw2")),
    ):
        for peer, p in peers.items():
            assert p["status"] == "up", f"{node}: BFD with {peer} is {p['status']}"
            assert (p["receive-interval"], p["transmit-interval"], p["detect-multiplier"]) == (300, 300, 3), p
    all_established(lab)


@pytest.fixture
def bfd_mode(lab: Lab) -> Iterator[Lab]:
    try:
        lab.set_mode("no-controller-bfd")
        eventually("BFD sessions up, BGP Established", budget="bgp_established", probe=lambda: assert_bfd_up(lab))
        yield lab
    finally:
        lab.set_mode("no-controller")
        eventually("back in no-controller mode", budget="bgp_established", probe=lambda: all_established(lab))


def test_bfd_mode_moves_an_interconnect_cut_in_about_a_second(bfd_mode: Lab, tmp_path: Path) -> None:
    lab = bfd_mode
    assert lab.mode == "no-controller-bfd"
    report = drill(lab, "interconnect-cut", tmp_path)
    assert report.passed, summary(report)
    assert report.interruption_ms is not None
    assert BFD_CUT_MIN_MS <= report.interruption_ms <= BFD_CUT_MAX_MS, summary(report)
    assert report.route_moved_after_s is not None and report.route_moved_after_s <= 1.5
    eventually("BFD back up after the restore", budget="bgp_established", probe=lambda: assert_bfd_up(lab))
    lab.set_mode("no-controller")  # leaving the mode removes the BFD sessions (the fixture checks BGP)
    eventually("BFD sessions removed", budget="bgp_established", probe=lambda: _no_bfd(lab))


def _no_bfd(lab: Lab) -> None:
    for node in ("edge", "tgw-use1", "tgw-usw2"):
        assert bfd_peers(lab, node) == {}, f"{node} still has BFD peers"
