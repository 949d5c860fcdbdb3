"""`bgpctl status` and `bgpctl routes` against the real daemon in the reference lab (controller mode),
checked against what FRR on the edge and the TGWs holds, and against the shipped JSON Schemas.

One lab of its own (``dc<pid>``), always torn down; run under the lab lock. The runtime overrides in the
lab (drain/undrain with calls running, an override across a restart or a kill -9) are the operations
drills of tests/daemon/test_ops_drills.py.
"""

from __future__ import annotations

import stat
from typing import Any

import pytest

from bgpctl_lab import faults
from bgpctl_lab.poll import eventually
from bgpctl_lab.reference import (
    FRR_PEERS_OF_CR,
    Routes,
    converged_problems,
    cr_neighbor,
    daemon_proc,
    exabgp_children,
    routes_from_cr,
)
from bgpctl_lab.reference import ask_daemon as ask
from bgpctl_lab.reference import bgpctl_cli as bgpctl
from bgpctl_lab.reference import daemon_run_dir as run_dir
from bgpctl_lab.runner import Lab
from tests.control.support import schema_errors

pytestmark = pytest.mark.lab

LAB_PREFIX = "dc"
BUDGETS = {
    "daemon_converged": 30.0,
    "status_settled": 20.0,
}


def status_problems(status: dict[str, Any]) -> list[str]:
    problems = schema_errors("status", status)
    problems += [f"session {s['peer']} {s['state']}" for s in status["sessions"] if s["state"] != "up"]
    problems += [f"path {p['path']} {p['health']}" for p in status["paths"] if p["health"] != "up"]
    if not (status["exabgp"]["running"] and status["exabgp"]["api_connected"]):
        problems.append(f"exabgp {status['exabgp']}")
    if not status["daemon"]["rib_complete"]:
        problems.append("RIB not complete")
    return problems


def test_status_shows_every_session_and_path_as_frr_and_the_process_tree_see_them(controller_lab: Lab) -> None:
    w = eventually(
        "status: every session and path up",
        budget=BUDGETS["status_settled"],
        probe=lambda: ask(controller_lab, "status", "-n", "50"),
        check=status_problems,
        interval_s=0.5,
    )
    status = w.value
    daemon = daemon_proc(controller_lab)
    assert status["daemon"]["pid"] == daemon.pid
    assert [status["exabgp"]["pid"]] == exabgp_children(daemon.pid)
    for node in FRR_PEERS_OF_CR:
        frr = cr_neighbor(controller_lab, node)
        assert frr["bgpState"] == "Established", node
    sessions = {s["peer"]: s for s in status["sessions"]}
    assert set(sessions) == set(FRR_PEERS_OF_CR)
    assert all(s["uptime_s"] is not None and s["uptime_s"] >= 0 for s in sessions.values())
    for p in status["paths"]:
        st = p["stats"]
        assert st["samples"] > 0 and st["rtt_p50_ms"] is not None and st["mos"] is not None, p
        assert st["loss_pct"] is not None and st["loss_pct"] < 50, p
        assert p["state"] in ("preferred", "standby") and p["why"], p
    assert status["overrides"] == []
    assert any(d["event"] == "route.change" for d in status["decisions"])
    text = bgpctl(controller_lab, "status")
    assert text.returncode == 0 and "media/use1/interconnect" in text.stdout and "tgw-usw2" in text.stdout


def _daemon_routes(peer: dict[str, Any]) -> Routes:
    return {
        (r["prefix"], r["next_hop"]): {
            "as_path": " ".join(map(str, r["as_path"])),
            "med": r["med"],
            "communities": " ".join(r["communities"]),
        }
        for r in peer["routes"]
    }


def routes_problems(lab: Lab, routes: dict[str, Any]) -> list[str]:
    problems = schema_errors("routes", routes)
    for peer in routes["peers"]:
        problems += [
            f"{peer['peer']} {r['prefix']}: {r['status']}" for r in peer["routes"] if r["status"] != "announced"
        ]
        ours = _daemon_routes(peer)
        frr = routes_from_cr(lab, peer["peer"], {k[0] for k in ours})
        if ours != frr:
            problems.append(f"{peer['peer']}: daemon says {ours}, FRR holds {frr}")
    return problems


def test_routes_are_what_frr_holds_from_cr_with_every_attribute_and_their_rule(controller_lab: Lab) -> None:
    w = eventually(
        "routes: the daemon's announcements are what FRR holds",
        budget=BUDGETS["status_settled"],
        probe=lambda: ask(controller_lab, "routes"),
        check=lambda r: routes_problems(controller_lab, r),
        interval_s=0.5,
    )
    routes = w.value
    peers = {p["peer"]: p for p in routes["peers"]}
    assert set(peers) == set(FRR_PEERS_OF_CR)
    assert all(p["session"] == "up" for p in peers.values())
    edge = peers["edge"]["routes"]
    assert len(edge) == 6  # 3 prefixes x 2 regions (ADD-PATH)
    api_standby = next(r for r in edge if r["prefix"] == "203.0.113.128/26" and r["next_hop"] == "198.18.1.12")
    assert api_standby["rule"]["state"] == "standby" and api_standby["rule"]["action"] == "actions.standby.edge"
    assert all(r["rule"]["health"] == "up" and r["rule"]["kept"] is None for p in peers.values() for r in p["routes"])

    only = ask(controller_lab, "routes", "--peer", "edge", "--prefix", "203.0.113.10")
    assert [p["peer"] for p in only["peers"]] == ["edge"]
    assert {r["prefix"] for r in only["peers"][0]["routes"]} == {"203.0.113.0/26"}
    text = bgpctl(controller_lab, "routes", "--peer", "tgw-use1")
    assert text.returncode == 0 and "192.0.2.0/24" in text.stdout and "7224:7300" in text.stdout


def test_the_socket_is_root_only_and_bad_requests_leave_the_daemon_routing(controller_lab: Lab) -> None:
    sock = run_dir(controller_lab) / "control.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and sock.stat().st_uid == 0
    bad = bgpctl(controller_lab, "routes", "--peer", "nope")
    assert bad.returncode == 2 and bad.stderr.startswith("bgpctl: the daemon refused: no peer 'nope'")
    daemon = daemon_proc(controller_lab)
    assert controller_lab.spawned_alive(daemon)
    assert status_problems(ask(controller_lab, "status")) == []
    assert converged_problems(controller_lab) == []


def down_problems(lab: Lab, status: dict[str, Any]) -> list[str]:
    """[] when status has usw2's paths down with a reason naming the metric, and routes match FRR again."""
    problems = schema_errors("status", status)
    for p in status["paths"]:
        want = "down" if p["region"] == "usw2" else "up"
        if p["health"] != want:
            problems.append(f"{p['path']} {p['health']}, want {want}")
        elif want == "down" and not any("down_after_lost" in r for r in p["reasons"]):
            problems.append(f"{p['path']}: reasons {p['reasons']} name no threshold")
    if problems:
        return problems
    return routes_problems(lab, ask(lab, "routes"))


def test_a_blackholed_region_shows_down_with_its_reason_and_routes_follow_frr(controller_lab: Lab) -> None:
    faults.blackhole_node(controller_lab, "tgw-usw2", "eth2", True)  # usw2's Connect side: probes die, BGP stays up
    try:
        w = eventually(
            "status: usw2 down with reasons, routes as FRR holds them",
            budget=BUDGETS["status_settled"],
            probe=lambda: ask(controller_lab, "status", "-n", "200"),
            check=lambda s: down_problems(controller_lab, s),
            interval_s=0.5,
        )
        downs = [d for d in w.value["decisions"] if d["event"] == "path.health" and d["new"] == "down"]
        assert {d["path"] for d in downs} >= {f"{s}/usw2/interconnect" for s in ("media", "signalling", "api")}
        edge = ask(controller_lab, "routes", "--peer", "edge")["peers"][0]["routes"]
        assert {r["next_hop"] for r in edge} == {"198.18.1.11"}
        (tgw,) = ask(controller_lab, "routes", "--peer", "tgw-usw2")["peers"]
        assert tgw["routes"] == []  # the agents' prefix follows media's state: down means withdrawn
    finally:
        faults.clear_node(controller_lab, "tgw-usw2", "eth2")
