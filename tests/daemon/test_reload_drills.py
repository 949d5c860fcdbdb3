"""Reload drills (issue 8, point 5) in controller mode: a reviewed policy change and a broken one, applied
with ``bgpctl reload`` through the daemon's control socket while calls run.

One lab for the module (the plugin's ``controller_lab``, ``rd<pid>``: bgpctl's daemon on cr, converged on
every hop), always torn down; run under the lab lock. The lab's daemon runs its own copy of the policy,
``{node_dir}/policy.yaml`` that ``lab up`` installed (lab/services.yaml ``install``); each drill replaces it
with a file of lab/drills/policies/, reloads, and puts the installed one back and reloads again at cleanup.
Each test runs the drill exactly as ``bgpctl lab drill NAME`` does, with the call meter, the edge's route
watch and the BGP sessions of cr on every FRR peer read before and after, and checks issue 8's "done when":

* reload-good (api's standby MED 100 -> 150): exactly that route changes at the edge (FRR's ``show bgp``),
  one UPDATE from cr in all, 0 next-hop changes, no session reset, 0 packets lost, status and the log show
  the reload with the new file's sha256;
* reload-broken (a misspelt field): the reload is refused with the file:line of ``bgpctl policy check``,
  the daemon keeps the old policy (status, sha256), no UPDATE at any peer, no next-hop change, no
  withdrawal, no session reset, 0 lost, the reload-failed metric set while it stands.

The benchmark of the same drills (5 runs each) is ``bench/bench_drills.py``; figures in docs/benchmarks.md,
"Operations drills".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from bgpctl import events as names
from bgpctl_lab import runner
from bgpctl_lab.drill import DrillReport, daemon_events, run_drill, summary
from bgpctl_lab.drill_model import load_drill
from bgpctl_lab.poll import eventually
from bgpctl_lab.reference import API, USW2, converged_problems, metric_samples, metrics_text
from bgpctl_lab.reference import ask_daemon as ask
from bgpctl_lab.runner import Lab
from bgpctl_lab.topology import drills_dir
from tests.lab.helpers import REPO, TOPOLOGY

pytestmark = [pytest.mark.lab, pytest.mark.slow]

LAB_PREFIX = "rd"
DRILLS = drills_dir(TOPOLOGY)
LAB_POLICY = REPO / "policies" / "lab.yaml"
REVIEWED = DRILLS / "policies" / "reload-med.yaml"
BROKEN = DRILLS / "policies" / "reload-broken.yaml"
MED_AT_EDGE_S = 2.0  # the drill's budget for the new MED at the edge (reload-good.yaml)
BUDGETS = {"cleanup_at_edge": 10.0}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def installed(lab: Lab) -> Path:
    """The daemon's policy file: the copy of policies/lab.yaml that `lab up` installed in cr's node directory."""
    target, source = runner.service_file(lab, "cr", "daemon", "--policy")
    assert target == lab.node_dir("cr") / "policy.yaml" and source == LAB_POLICY
    return target


def reloads(lab: Lab, report: DrillReport) -> list[dict[str, Any]]:
    """The daemon's ``policy.reload`` log events since the drill started (the fault's, then the cleanup's)."""
    return [e for e in daemon_events(lab, report.started_unix) if e.get("event") == names.POLICY_RELOAD]


def reload_metrics(lab: Lab) -> dict[str, float]:
    text = metrics_text(lab)
    out = {dict(k)["result"]: v for k, v in metric_samples(text, "bgpctl_policy_reloads_total").items()}
    (ok,) = metric_samples(text, "bgpctl_policy_last_reload_successful").values()
    return {**out, "last_successful": ok}


def standby_med(lab: Lab) -> int | None:
    """The MED of api's usw2 route from cr at the edge (FRR's ``show bgp``)."""
    data = lab.vtysh_json("edge", f"show bgp ipv4 unicast {API} json")
    meds = [p.get("metric") for p in data.get("paths", []) if p["nexthops"][0]["ip"] == USW2]
    return int(meds[0]) if len(meds) == 1 and meds[0] is not None else None


def drill(lab: Lab, name: str, out: Path, on_progress: Any = None) -> DrillReport:
    def progress(message: str) -> None:
        print(message)
        if on_progress is not None:
            on_progress(message)

    report = run_drill(lab, load_drill(name, DRILLS), out_dir=out, progress=progress)
    print(summary(report))
    return report


def common(lab: Lab, report: DrillReport) -> None:
    """What both drills demand beyond their bounds, and that the installed policy is back afterwards."""
    assert report.passed, summary(report)  # bounds: 0 lost, 0 next-hop changes/withdrawals, 0 resets, UPDATEs
    assert report.meter is not None and report.meter.lost == 0 and report.meter.sent > 0, summary(report)
    assert report.route_changes == 0 and report.watch is not None and report.watch["polls"] > 100
    assert report.sessions is not None and set(report.sessions) == {"edge", "tgw-use1", "tgw-usw2"}
    assert report.session_resets == 0, report.sessions
    assert all(c["established"][0] >= 1 for c in report.sessions.values())  # read from live sessions
    assert all(c.ok for c in report.cleanup), report.cleanup
    assert installed(lab).read_bytes() == LAB_POLICY.read_bytes()  # cleanup put the installed policy back
    status = ask(lab, "status")
    assert status["daemon"]["policy_source"]["sha256"] == sha256(LAB_POLICY)
    eventually(
        "the edge holds api's standby route with MED 100 again",
        budget=BUDGETS["cleanup_at_edge"],
        probe=lambda: standby_med(lab),
        expect=100,
    )
    assert converged_problems(lab) == []


def test_the_lab_daemon_runs_its_installed_copy_of_the_lab_policy_and_the_lab_serves_its_relay(
    controller_lab: Lab,
) -> None:
    policy = installed(controller_lab)
    assert policy.read_bytes() == LAB_POLICY.read_bytes()
    status = ask(controller_lab, "status")
    source = status["daemon"]["policy_source"]
    assert source["file"] == str(policy) and source["sha256"] == sha256(LAB_POLICY)
    # the policy's `relay` signal is served by the lab (edge/signal-relay) and says nothing: no warning
    (relay,) = [s for s in status["signals"] if s["name"] == "relay"]
    assert relay["state"] == "fresh" and relay["marks"] == [], relay
    ignored = [e for e in daemon_events(controller_lab) if e.get("event") == names.SIGNAL_IGNORED]
    assert ignored == []


def test_a_reviewed_med_change_reaches_the_edge_alone_without_a_session_reset_or_a_lost_packet(
    controller_lab: Lab, tmp_path: Path
) -> None:
    policy = installed(controller_lab)
    report = drill(controller_lab, "reload-good", tmp_path)
    common(controller_lab, report)
    assert report.updates == 1, report.sessions  # api's usw2 route to the edge, nothing else to anyone
    assert (
        report.sessions is not None
        and report.sessions["edge"]["updates"][1] == report.sessions["edge"]["updates"][0] + 1
    )
    (setup,) = report.setup
    assert setup.answer is not None and setup.answer["sha256"] == sha256(REVIEWED)
    assert report.fault is not None and report.fault.error is None and report.fault.answer is not None
    answer = report.fault.answer
    assert answer["result"] == "applied" and answer["diff"]["sections"] == ["actions"], answer
    assert answer["policy"]["file"] == str(policy) and answer["policy"]["sha256"] == sha256(REVIEWED)
    assert answer["previous"]["sha256"] == sha256(LAB_POLICY)
    assert [(c["peer"], c["kind"], c["prefix"], c["next_hop"], c["med"]) for c in answer["changes"]] == [
        ("edge", "announce", API, USW2, 150)
    ]
    (at_edge,) = [r for r in report.expect if r.name.startswith("edge has api's usw2 route with MED 150")]
    assert at_edge.held and at_edge.after_s is not None and at_edge.after_s <= MED_AT_EDGE_S, summary(report)
    fault_event, cleanup_event = reloads(controller_lab, report)
    assert (fault_event["result"], fault_event["sha256"], fault_event["why"]) == (
        "applied",
        sha256(REVIEWED),
        "drill: reviewed change: standby MED 150",
    )
    assert fault_event["by"]["uid"] == 0 and fault_event["route_changes"] == 1
    assert (cleanup_event["result"], cleanup_event["sha256"]) == ("applied", sha256(LAB_POLICY))
    assert reload_metrics(controller_lab)["last_successful"] == 1


def test_a_broken_policy_is_refused_with_file_line_and_nothing_changes_at_any_peer(
    controller_lab: Lab, tmp_path: Path
) -> None:
    policy = installed(controller_lab)
    line = BROKEN.read_text().splitlines().index("    edge: { med: 150, prepnd: 1 }") + 1
    before = reload_metrics(controller_lab)
    during: list[dict[str, float]] = []

    def on_progress(message: str) -> None:  # the metrics while the refusal stands (the cleanup reloads)
        if message.startswith("expect: status shows the reload refused"):
            during.append(reload_metrics(controller_lab))

    report = drill(controller_lab, "reload-broken", tmp_path, on_progress)
    common(controller_lab, report)
    assert report.updates == 0, report.sessions  # not one UPDATE reached any peer
    assert not [c for c in report.route_timeline if not c.nexthops]  # no withdrawal at the edge
    assert report.fault is not None and report.fault.answer is None and report.fault.error_code == "refused"
    error = report.fault.error or ""
    assert f"{policy}:{line} actions.standby.edge.prepnd: unknown field 'prepnd'" in error, error
    assert "(did you mean 'prepend'?" in error and "bgpctl policy check FILE" in error
    fault_event, cleanup_event = reloads(controller_lab, report)
    assert fault_event["result"] == "refused" and fault_event["sha256"] == sha256(BROKEN)
    assert fault_event["problems"][0].startswith(f"{policy}:{line} actions.standby.edge.prepnd")
    assert cleanup_event["result"] == "unchanged"  # the daemon had kept the old policy
    (metrics,) = during
    assert metrics["refused"] == before.get("refused", 0) + 1 and metrics["last_successful"] == 0
    assert reload_metrics(controller_lab)["last_successful"] == 1  # the installed policy reloaded at cleanup
