"""Operations drills (issue 8, point 5) in controller mode: drain/undrain, restart, kill -9.

One lab for the module (the plugin's ``controller_lab``, ``od<pid>``: bgpctl's daemon on cr, converged on
every hop), always torn down; run under the lab lock.
Each test runs a drill from lab/drills/ exactly as ``bgpctl lab drill NAME`` does, with the call meter and
the edge's route watch running, and checks the issue's "done when" on the report:

* drain-undrain: the edge on usw2 within 1 s of the drain, 0 packets lost (make-before-break); after the
  undrain use1 returns only after the rise rules (voice rise_s 10 s, api rise_s 20 s);
* restart (SIGTERM + start) and kill-9 (under a systemd-like supervisor): 0 next-hop changes at the edge,
  at most 1 packet lost per flow, and the drain set before the restart is in force after it.

The benchmark of the same drills (5 runs each) is ``bench/bench_drills.py``; its figures are in
docs/benchmarks.md, "Operations drills".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpctl import events as names
from bgpctl.policy.load import load_policy
from bgpctl_lab import netns as labns
from bgpctl_lab import runner
from bgpctl_lab.drill import DrillReport, daemon_events, summary
from bgpctl_lab.poll import eventually
from bgpctl_lab.reference import exabgp_children, exabgp_in, wait_converged
from bgpctl_lab.runner import Lab
from tests.daemon.support import drill, held
from tests.lab.helpers import REPO

pytestmark = [pytest.mark.lab, pytest.mark.slow]

LAB_PREFIX = "od"
POLICY = load_policy(REPO / "policies" / "lab.yaml")
RISE_S = {s: POLICY.sla_classes[POLICY.services[s].sla].hysteresis.rise_s for s in POLICY.services}
DRAIN_LIMIT_S = 1.0  # issue 8: the edge is on usw2 within 1 s


def test_drain_moves_the_edge_to_usw2_within_1s_losing_nothing_and_undrain_returns_after_rise(
    controller_lab: Lab, tmp_path: Path
) -> None:
    report = drill(controller_lab, "drain-undrain", tmp_path)
    assert report.passed, summary(report)  # bounds: 0 lost, nothing withdrawn, no path judged down
    assert report.fault is not None and report.fault.answer is not None
    assert report.fault.answer["set"]["target"] == "use1" and report.fault.answer["set"]["by"]["uid"] == 0
    for prefix in ("media", "signalling", "api"):
        assert held(report, f"edge routes {prefix} via usw2 only") <= DRAIN_LIMIT_S
    assert report.route_moved_after_s is not None and report.route_moved_after_s <= DRAIN_LIMIT_S
    assert report.meter is not None and report.meter.lost == 0 and report.meter.sent > 0, summary(report)
    # the return: not before each service's rise_s, and not much after it either (the hold's expiry plans)
    media_back = held(report, "edge load-shares media over both regions again")
    api_back = held(report, "edge routes api via use1 again")
    assert RISE_S["media"] <= media_back <= RISE_S["media"] + 3, summary(report)
    assert RISE_S["api"] <= api_back <= RISE_S["api"] + 3, summary(report)
    expired = [
        e for e in daemon_events(controller_lab, report.started_unix) if e.get("event") == names.OVERRIDE_EXPIRED
    ]
    assert {e["target"] for e in expired} == {"use1 for media", "use1 for signalling", "use1 for api"}
    assert all(e["returning"] is True for e in expired)
    (cleanup,) = report.cleanup  # undrain --now found nothing left: the return had ended by itself
    assert cleanup.ok and cleanup.error is not None and "no runtime drain of use1" in cleanup.error


def _restarts(lab: Lab, report: DrillReport) -> list[int]:
    """The pids of the daemons that started after the fault (daemon.start events of cr's log)."""
    assert report.fault is not None
    fault_unix = report.started_unix + report.fault.applied_s  # close enough: the meter starts right away
    return [
        int(e["pid"])
        for e in daemon_events(lab, report.started_unix)
        if e.get("event") == names.DAEMON_START and e["at_unix"] >= fault_unix - 0.5
    ]


@pytest.mark.parametrize("name", ["restart", "kill-9"])
def test_a_restart_changes_no_next_hop_at_the_edge_and_keeps_the_override(
    controller_lab: Lab, tmp_path: Path, name: str
) -> None:
    report = drill(controller_lab, name, tmp_path)
    assert report.passed, summary(report)  # bounds: 0 next-hop changes, <= 1 lost per flow, nothing down
    assert report.route_changes == 0 and report.watch is not None and report.watch["polls"] > 100
    assert report.meter is not None and max(f.lost for f in report.meter.flows) <= 1, summary(report)
    assert held(report, "the new daemon answers with the drain set before the restart in force, RIB complete")
    assert len(_restarts(controller_lab, report)) == 1, summary(report)  # exactly one new daemon after the fault
    if name == "kill-9":
        assert runner.supervisor_of(controller_lab, "cr", "daemon") is None  # the plain daemon is back after the drill
    daemon = runner.service_pid(controller_lab, "cr", "daemon")
    assert daemon is not None
    # no ExaBGP outlived its daemon (SIGKILL included: PR_SET_PDEATHSIG): one, the current daemon's child
    eventually(
        "one ExaBGP in cr, the daemon's",
        budget=10,
        probe=lambda: exabgp_in(controller_lab),
        check=lambda pids: [] if pids == exabgp_children(daemon) and len(pids) == 1 else [f"ExaBGP pids {pids}"],
    )


def test_a_supervised_daemon_counts_as_the_service_and_restarts_under_its_supervisor(controller_lab: Lab) -> None:
    """The runner's side of the kill-9 drill: while the supervisor runs, ``up`` starts no second daemon, a
    restart keeps the supervisor, and the plain service is back after it."""
    sup = runner.supervise_service(controller_lab, "cr", "daemon", restart_sec=0.2)
    try:
        assert runner.supervisor_of(controller_lab, "cr", "daemon") is not None
        first = eventually(
            "the supervised daemon runs",
            budget=30,
            probe=lambda: runner.service_pid(controller_lab, "cr", "daemon"),
            check=lambda pid: [] if pid is not None else ["no daemon yet"],
        ).value
        assert runner.start_services(controller_lab) == []  # the supervised daemon is the service
        runner.restart_service(controller_lab, "cr", "daemon")
        again = runner.supervisor_of(controller_lab, "cr", "daemon")
        assert again is not None and again.pid != sup  # systemctl restart: stop the unit, start it
        second = eventually(
            "the restarted daemon runs",
            budget=30,
            probe=lambda: runner.service_pid(controller_lab, "cr", "daemon"),
            check=lambda pid: [] if pid not in (None, first) else [f"daemon pid {pid}"],
        ).value
        assert first is not None and second is not None and not labns.alive(first)
    finally:
        runner.unsupervise_service(controller_lab, "cr", "daemon")
    assert runner.supervisor_of(controller_lab, "cr", "daemon") is None
    assert [p.tag for p in controller_lab.spawned() if p.node == "cr"] == ["service:daemon"]
    wait_converged(controller_lab, "converged again", budget=40)
