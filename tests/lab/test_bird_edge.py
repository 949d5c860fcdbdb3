"""The edge as BIRD 2, with and without ADD-PATH receive (issue 9, points 1 and 6), controller mode.

For each edge variant (``bgpctl lab up --edge bird`` / ``bird-no-addpath``) one lab comes up and runs
the region-blackhole and interconnect-cut drills. Both must pass as with FRR: the edge moves to the
surviving region within the controller's bounds, keeps a route for every Connect prefix (signalling and
api checked after the fault, media watched all along: never withdrawn) and the calls stay within 400 ms.

Without ADD-PATH (BIRD keeps the last path it receives per prefix) this only holds because bgpctl reads
what the session negotiated and sends such a peer one best path per prefix: before that fix the edge
held usw2's standby route for api in the steady state, and 0.3 s into a use1 blackhole it routed
signalling into the dead region and had lost media altogether (docs/design.md, "Capabilities as
negotiated"). The steady check of the no-addpath variant (use1 only: the planner's choice) fails on
that code.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgpctl import events as names
from bgpctl_lab.drill import DrillReport, daemon_events, run_drill, summary
from bgpctl_lab.drill_model import load_drill
from bgpctl_lab.pytest_plugin import own_reference_lab
from bgpctl_lab.replay_check import compare
from bgpctl_lab.runner import Lab
from bgpctl_lab.topology import EDGE_VARIANTS, drills_dir
from tests.lab.helpers import REPO, TOPOLOGY

pytestmark = [pytest.mark.lab, pytest.mark.slow]

PREFIXES = ("203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26")
EXPECTED_ADD_PATH = {"bird": ["ipv4-unicast"], "bird-no-addpath": []}


@pytest.fixture(scope="module", params=["bird-no-addpath", "bird"])
def bird_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    if not shutil.which("bird"):
        pytest.skip("BIRD 2 is not installed: apt-get install bird2 (deploy/quickstart.sh does)")
    variant: str = request.param
    prefix = "bn" if variant == "bird-no-addpath" else "ba"
    with own_reference_lab(prefix, REPO / EDGE_VARIANTS[variant], mode="controller") as lab:
        yield lab


def _drill(lab: Lab, name: str, out: Path) -> DrillReport:
    report = run_drill(lab, load_drill(name, drills_dir(TOPOLOGY)), out_dir=out)
    print(summary(report))
    return report


def _capabilities(lab: Lab, since: float) -> list[dict[str, Any]]:
    return [e for e in daemon_events(lab, since) if e.get("event") == names.BGP_CAPABILITIES and e["peer"] == "edge"]


@pytest.mark.parametrize("drill_name", ["region-blackhole", "interconnect-cut"])
def test_bird_edge_passes_the_region_drills(bird_lab: Lab, drill_name: str, tmp_path: Path) -> None:
    variant = bird_lab.edge_variant()
    assert variant in ("bird", "bird-no-addpath") and bird_lab.bird_nodes() == ["edge"]
    report = _drill(bird_lab, drill_name, tmp_path)
    assert report.edge == variant
    assert report.passed, summary(report)
    # a route for every Connect prefix after the fault: signalling and api checked, media never withdrawn
    assert all(r.held for r in report.expect), summary(report)
    assert report.watch is not None and not [c for c in report.route_timeline if not c.nexthops]
    assert report.interruption_ms is not None and report.interruption_ms < 400, summary(report)
    # the daemon said what the edge negotiated, loudly when it refused ADD-PATH
    seen = _capabilities(bird_lab, 0.0)
    assert seen, "no bgp.capabilities event for the edge in the daemon's log"
    assert seen[-1]["add_path_send"] == EXPECTED_ADD_PATH[variant]
    assert (seen[-1]["level"] == "warning") == (variant == "bird-no-addpath")
    # the edge holds what bgpctl planned for it: one path per prefix without ADD-PATH; with it, every
    # announced path (media is back on both regions: the recover check held; api's rise is 20 s, longer)
    paths = {prefix: bird_lab.bird_routes("edge", prefix) for prefix in PREFIXES}
    assert all(paths.values()), paths
    if variant == "bird-no-addpath":
        assert all(len(routes) == 1 for routes in paths.values()), paths
    else:
        assert len(paths[PREFIXES[0]]) == 2 and all(len(routes) <= 2 for routes in paths.values()), paths
    # and a replay of the daemon's recording (with its negotiated lines) makes the same decisions
    check = compare(bird_lab, REPO / "policies/lab.yaml")
    assert check.same, "\n".join(check.problems[:10])
