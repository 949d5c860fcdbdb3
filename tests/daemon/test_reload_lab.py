"""Policy reload of the running daemon in the reference lab (controller mode), checked at the real FRR edge.

The lab's daemon runs its own copy of policies/lab.yaml, ``policy.yaml`` in cr's node directory, which
``lab up`` installed (lab/services.yaml ``install``); the module changes that copy and reloads. Then:

1. a broken policy: ``bgpctl reload`` exits 3 with FILE:LINE, the edge receives no UPDATE from cr, the
   daemon's route-change counter does not move, the daemon answers ``status`` (last reload refused);
2. a policy whose standby MED changes (only api's usw2 route is standby: api is active-standby, media and
   signalling active-active): the dry run names exactly that route, the reload changes exactly that route
   at the edge (MED in ``show bgp ipv4 unicast PREFIX json``), every other route from cr is untouched, and
   no BGP session of cr was reset (FRR's established/dropped counters and up-since epoch, ExaBGP's pid);
3. SIGHUP does the same as ``bgpctl reload``.

One lab of its own (``controller_lab``, named ``rl<pid>``), always torn down; run under the lab lock. The same
reloads with calls running are the drills reload-good and reload-broken (tests/daemon/test_reload_drills.py).
Measured figures (route changes, session transitions, reload latency) are printed at the end of the module
(run with ``-s``): docs/benchmarks.md, "Operations: reload".
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgpctl_lab import runner
from bgpctl_lab.drill import sessions_settled
from bgpctl_lab.drill_model import Sessions
from bgpctl_lab.poll import eventually
from bgpctl_lab.reference import (
    API,
    CR,
    FRR_PEERS_OF_CR,
    USW2,
    Routes,
    cr_neighbor,
    daemon_proc,
    metric_samples,
    metrics_text,
    routes_from_cr,
    wait_converged,
)
from bgpctl_lab.reference import ask_daemon as ask
from bgpctl_lab.reference import bgpctl_cli as bgpctl
from bgpctl_lab.runner import Lab
from tests.lab.helpers import LAB_POLICY

pytestmark = pytest.mark.lab

LAB_PREFIX = "rl"
BUDGETS = {
    "daemon_converged": 45.0,  # the daemon's routes on every FRR peer
    "status": 20.0,
    "loop_passed": 5.0,  # the daemon's loop passed after a refused reload (it passes at least once a second)
    "med_at_edge": 10.0,  # generous, to measure; the figure goes to docs/benchmarks.md
    "refresh_passed": 30.0,  # every session of cr older than FRR's route-map delay (bgpctl_lab.drill)
}
STANDBY_MED = "    edge: { med: 100, prepend: 1 }\n"
PEERS = FRR_PEERS_OF_CR
RESULTS: dict[str, Any] = {}


def policy_file(lab: Lab) -> Path:
    """The daemon's policy file: its copy of policies/lab.yaml that ``lab up`` installed."""
    path, source = runner.service_file(lab, "cr", "daemon", "--policy")
    assert source == LAB_POLICY and path == lab.node_dir("cr") / "policy.yaml"
    return path


def status_problems(status: dict[str, Any]) -> list[str]:
    problems = [f"session {s['peer']} {s['state']}" for s in status["sessions"] if s["state"] != "up"]
    problems += [f"path {p['path']} {p['health']}" for p in status["paths"] if p["health"] != "up"]
    if not status["daemon"]["rib_complete"]:
        problems.append("RIB not complete")
    return problems


@pytest.fixture(scope="module")
def rlab(controller_lab: Lab) -> Iterator[Lab]:
    """The module's controller lab (``rl<pid>``), its daemon on the installed copy of the policy."""
    lab = controller_lab
    assert policy_file(lab).read_text() == LAB_POLICY.read_text()
    wait_converged(lab, "the daemon converged", budget=BUDGETS["daemon_converged"])
    eventually(
        "status: every session and path up",
        budget=BUDGETS["status"],
        probe=lambda: ask(lab, "status"),
        check=status_problems,
        interval_s=0.5,
    )
    # FRR's start-up ROUTE-REFRESH and its answer are behind us (bgpctl_lab.drill.FRR_ROUTE_MAP_DELAY_S)
    sessions_settled(lab, Sessions(nodes=list(PEERS), peer=CR), budget=BUDGETS["refresh_passed"])
    yield lab
    if RESULTS:
        print(f"\nreload figures: {json.dumps(RESULTS, sort_keys=True, indent=1)}")


# ------------------------------------------------------------------------------------------ observations


def sessions_seen(lab: Lab) -> dict[str, tuple[int, int, int]]:
    """Per FRR peer of cr: (connections established, connections dropped, ms the session has been up)."""
    out = {}
    for node in PEERS:
        n = cr_neighbor(lab, node)
        assert n.get("bgpState") == "Established", (node, n.get("bgpState"))
        up_ms = int(n.get("bgpTimerUpMsec", n.get("bgpTimerUp", -1)))
        out[node] = (int(n["connectionsEstablished"]), int(n["connectionsDropped"]), up_ms)
    return out


def session_resets(before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]) -> list[str]:
    """[] when no session of cr was reset between the two readings: the same established/dropped counts and
    an uptime that only grew (FRR's up-since epoch is derived and rounded: not compared)."""
    problems = []
    for node in PEERS:
        (e0, d0, up0), (e1, d1, up1) = before[node], after[node]
        if (e1, d1) != (e0, d0):
            problems.append(f"{node}: established/dropped {e0}/{d0} -> {e1}/{d1}")
        if up1 < up0:
            problems.append(f"{node}: up {up0} ms -> {up1} ms")
    return problems


def updates_from_cr(lab: Lab) -> dict[str, tuple[int, int]]:
    """Per FRR peer of cr: (UPDATE messages received from cr, ROUTE-REFRESH messages sent to cr) so far; a
    refresh the peer asked for is answered with UPDATEs that the daemon did not decide."""
    stats = {node: cr_neighbor(lab, node)["messageStats"] for node in PEERS}
    return {node: (int(s["updatesRecv"]), int(s["routeRefreshSent"])) for node, s in stats.items()}


def frr_routes(lab: Lab) -> dict[str, Routes]:
    """Every route each FRR peer of cr holds from cr, with AS path, MED and communities."""
    return {node: routes_from_cr(lab, node) for node in PEERS}


def route_changes(lab: Lab) -> float:
    return sum(metric_samples(metrics_text(lab), "bgpctl_route_changes_total").values())


def reload_metric(lab: Lab) -> dict[str, float]:
    text = metrics_text(lab)
    out = {dict(k)["result"]: v for k, v in metric_samples(text, "bgpctl_policy_reloads_total").items()}
    (ok,) = metric_samples(text, "bgpctl_policy_last_reload_successful").values()
    out["last_successful"] = ok
    return out


def api_standby_med(lab: Lab) -> int | None:
    med = routes_from_cr(lab, "edge", {API}).get((API, USW2), {}).get("med")
    return int(med) if med is not None else None


def with_standby_med(med: int) -> str:
    text = LAB_POLICY.read_text()
    assert text.count(STANDBY_MED) == 1
    return text.replace(STANDBY_MED, f"    edge: {{ med: {med}, prepend: 1 }}\n")


def expect_only_api_standby_med(
    before: dict[str, Routes],
    after: dict[str, Routes],
    med: int,
) -> None:
    changed = {
        (node, key)
        for node in PEERS
        for key in before[node].keys() | after[node].keys()
        if before[node].get(key) != after[node].get(key)
    }
    assert changed == {("edge", (API, USW2))}, changed
    assert after["edge"][(API, USW2)]["med"] == med


# ------------------------------------------------------------------------------------------ tests


def test_a_broken_policy_is_refused_with_file_line_and_nothing_changes_at_the_edge(rlab: Lab) -> None:
    copy = policy_file(rlab)
    good = copy.read_text()
    routes, updates, sessions = frr_routes(rlab), updates_from_cr(rlab), sessions_seen(rlab)
    changes, daemon = route_changes(rlab), daemon_proc(rlab)
    # a region that does not exist in api's order: an xref error, refused with its file:line
    broken = good.replace("    order: [use1, usw2]\n", "    order: [use1, usw3]\n")
    copy.write_text(broken)
    try:
        t0 = time.time()
        out = bgpctl(rlab, "reload", "--reason", "lab: broken policy")
        assert out.returncode == 3, (out.returncode, out.stdout, out.stderr)
        assert f"{copy}:" in out.stderr and "usw3" in out.stderr, out.stderr
        lines = [ln for ln in out.stderr.splitlines() if ln.startswith(f"{copy}:")]
        assert lines and all(re.match(rf"{re.escape(str(copy))}:\d+ services\.api\.order", ln) for ln in lines), lines
        # the daemon's loop passed at least once since: anything it would have sent is sent by then
        w = eventually(
            "status after the refused reload",
            budget=BUDGETS["loop_passed"],
            probe=lambda: ask(rlab, "status"),
            check=lambda s: [] if s["at"] >= t0 + 1.5 else [f"status of {s['at']:.3f}, reload at {t0:.3f}"],
            interval_s=0.2,
        )
        last = w.value["daemon"]["policy_source"]["last_reload"]
        at = good.splitlines().index("    order: [use1, usw2]") + 1
        assert last["result"] == "refused" and last["error"].startswith(f"{copy}:{at} services.api.order"), last
        assert status_problems(w.value) == []
    finally:
        copy.write_text(good)
    assert rlab.spawned_alive(daemon) and daemon_proc(rlab).pid == daemon.pid
    assert route_changes(rlab) == changes
    assert updates_from_cr(rlab) == updates  # not one UPDATE reached any peer (and none asked for a refresh)
    assert frr_routes(rlab) == routes
    assert session_resets(sessions, sessions_seen(rlab)) == []
    metric = reload_metric(rlab)
    assert metric["refused"] == 1 and metric["last_successful"] == 0
    RESULTS["refused"] = {"route_changes": route_changes(rlab) - changes, "updates_at_peers": 0}
    RESULTS["refused_stderr"] = out.stderr


def _reload_med(rlab: Lab, med: int, trigger: str) -> dict[str, Any]:
    """Change the standby MED to ``med`` by ``trigger`` (cli or sighup); check and measure it at the edge."""
    copy = policy_file(rlab)
    routes, sessions, changes = frr_routes(rlab), sessions_seen(rlab), route_changes(rlab)
    status = ask(rlab, "status")
    exabgp = (status["exabgp"]["pid"], status["exabgp"]["starts"])
    copy.write_text(with_standby_med(med))
    t0 = time.time()
    if trigger == "cli":
        answer = ask(rlab, "reload", "--reason", f"lab: standby MED {med}")
        assert answer["result"] == "applied" and answer["diff"]["sections"] == ["actions"], answer
        assert [(c["peer"], c["kind"], c["prefix"], c["next_hop"], c["med"]) for c in answer["changes"]] == [
            ("edge", "announce", API, USW2, med)
        ]
    else:
        os.kill(daemon_proc(rlab).pid, signal.SIGHUP)  # `ip netns exec` exec'd the daemon: the same pid
    w = eventually(
        f"edge: api via usw2 with MED {med}",
        budget=BUDGETS["med_at_edge"],
        probe=lambda: api_standby_med(rlab),
        expect=med,
        interval_s=0.02,
    )
    latency_s = time.time() - t0
    after = frr_routes(rlab)
    expect_only_api_standby_med(routes, after, med)
    transitions = session_resets(sessions, sessions_seen(rlab))
    assert transitions == []  # no session reset, on any peer
    st = ask(rlab, "status")
    assert (st["exabgp"]["pid"], st["exabgp"]["starts"]) == exabgp  # ExaBGP was not restarted
    last = st["daemon"]["policy_source"]["last_reload"]
    assert last["result"] == "applied", last
    if trigger == "sighup":
        assert last["by"] == {"signal": "SIGHUP"}
    assert route_changes(rlab) - changes == 1
    return {
        "route_changes": route_changes(rlab) - changes,
        "session_transitions": len(transitions),
        "latency_s": round(latency_s, 3),
        "polls": w.polls,
    }


def test_a_new_standby_med_changes_only_that_route_at_the_edge_and_no_session(rlab: Lab) -> None:
    copy = policy_file(rlab)
    copy.write_text(with_standby_med(150))
    changes = route_changes(rlab)
    dry = ask(rlab, "reload", "--dry-run")
    assert dry["dry_run"] is True and dry["result"] == "applied"
    assert [(c["peer"], c["kind"], c["prefix"], c["path_id"], c["med"]) for c in dry["changes"]] == [
        ("edge", "announce", API, 2, 150)
    ]
    text = bgpctl(rlab, "reload", "--dry-run")
    assert text.returncode == 0 and "dry run, nothing changed" in text.stdout and "med 150" in text.stdout
    RESULTS["dry_run_text"] = text.stdout
    assert api_standby_med(rlab) == 100 and route_changes(rlab) == changes  # the dry run changed nothing
    RESULTS["cli"] = _reload_med(rlab, 150, "cli")


def test_sighup_reloads_like_bgpctl_reload(rlab: Lab) -> None:
    RESULTS["sighup"] = _reload_med(rlab, 200, "sighup")
    metric = reload_metric(rlab)
    assert metric["applied"] == 2 and metric["last_successful"] == 1
