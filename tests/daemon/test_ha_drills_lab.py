"""The HA pair's drills (issue 11, "Done when"), in the HA lab (containerlab-ha.yml, docs/ha.md).

One lab for the module (``ha<pid>``: bgpctl on cr1 and cr2, BFD from the edge and the TGWs to both hosts), always
taken down; run under the lab lock. Each test runs a drill from lab/drills/ exactly as ``bgpctl lab drill NAME``
does (the call meter and the edge's route watch running) and checks the issue's bound on its report:

* ha-primary-isolated: the edge's routes from cr2 within 1 s, 0 next-hop changes, at most 1 packet lost per
  flow; on its return cr1 hands over until it judged every path again (never followed while partial: defect 1);
* ha-region-blackhole-isolated: a region fails 5 s after cr1's host was cut off; cr2 moves the calls;
* ha-restart-both: cr1 then cr2 restarted, 0 next-hop changes at the edge;
* ha-primary-probes-impaired-short: 20 % of cr1's own media probes lost for 60 s: no flap at the edge.

The benchmark of the same drills (5 runs each, the 5-minute impairment) is ``bench/bench_drills.py --topology
containerlab-ha.yml``; its figures are in docs/benchmarks.md, "HA pair".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bgpctl_lab.drill import DrillReport, summary
from bgpctl_lab.poll import eventually
from bgpctl_lab.pytest_plugin import own_reference_lab
from bgpctl_lab.runner import Lab
from tests.daemon import support
from tests.daemon.support import held
from tests.daemon.test_ha_lab import CONVERGED_S, LAB_PREFIX, TAKEOVER_S, TOPOLOGY, steady_problems

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture(scope="module")
def ha_lab() -> Iterator[Lab]:
    with own_reference_lab(LAB_PREFIX, TOPOLOGY, mode="controller") as lab:
        eventually("HA pair converged", budget=CONVERGED_S, probe=lambda: lab, check=steady_problems, interval_s=0.5)
        yield lab


def drill(lab: Lab, name: str, out: Path) -> DrillReport:
    return support.drill(lab, name, out, TOPOLOGY)


def test_the_primary_cut_off_and_back_moves_no_next_hop_and_is_not_followed_while_partial(
    ha_lab: Lab, tmp_path: Path
) -> None:
    report = drill(ha_lab, "ha-primary-isolated", tmp_path)
    assert report.passed, summary(report)  # 0 next-hop changes, nothing withdrawn, <= 1 packet lost per flow
    assert held(report, "the edge uses the secondary's route for media (issue 11 - within 1 s)") <= TAKEOVER_S
    assert report.meter is not None and max(f.lost for f in report.meter.flows) <= 1
    back = held(report, "cr1 judged every path again, stopped handing over, and its routes are in use")
    assert back >= 20, summary(report)  # the drill's not-before: cr1 was not followed at once (defect 1)


def test_a_region_blackholed_while_the_primary_is_cut_off_moves_the_calls(ha_lab: Lab, tmp_path: Path) -> None:
    report = drill(ha_lab, "ha-region-blackhole-isolated", tmp_path)
    assert report.passed, summary(report)
    assert held(report, "edge routes media via usw2 only") <= 1.0
    assert report.regions_answered == ["use1", "usw2"]  # calls in use1 before the fault, usw2 after it


def test_both_controllers_restarted_in_turn_change_no_next_hop(ha_lab: Lab, tmp_path: Path) -> None:
    report = drill(ha_lab, "ha-restart-both", tmp_path)
    assert report.passed, summary(report)
    assert report.route_changes == 0 and report.meter is not None and report.meter.sent > 0


def test_the_primarys_own_probes_impaired_make_no_flap_at_the_edge(ha_lab: Lab, tmp_path: Path) -> None:
    report = drill(ha_lab, "ha-primary-probes-impaired-short", tmp_path)
    assert report.passed, summary(report)  # no flap between the fault and the restore, nothing withdrawn
    assert any(d["path"].startswith("media/") for d in report.decisions), summary(report)  # cr1 did judge
