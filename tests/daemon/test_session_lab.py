"""A TGW session is part of the path (issue 9, point 3), end to end in the reference lab (controller mode).

One lab of its own (``dt<pid>``), always torn down; run under the lab lock. The BGP session between
tgw-use1 (FRR) and cr (the daemon's ExaBGP) is shut on the TGW (``neighbor 198.18.1.2 shutdown``) while
every probe keeps answering (they return over the interconnect, not through BGP). Each hop is checked and
timed (wall clock, to compare with the daemon's log timestamps):

1. tgw-use1: the session with cr leaves Established;
2. the daemon: ``bgpctl status --json`` shows the session down and use1's three paths DOWN with the session
   as the reason; its log has ``path.session`` and ``path.health`` events naming it;
3. the edge: FRR's RIB (``show ip route json``) uses usw2 only for every group.

Then ``no neighbor 198.18.1.2 shutdown``: the session is Established again, and the daemon brings use1 back
only after the SLA class's rise rules (rise_s of clean measurements, hold-down from the last time it saw the
session down), and the edge uses use1 again.

Last, ExaBGP SIGKILLed under the daemon: every session goes away with it, but that is not a TGW session
down (the TGWs keep our routes by graceful restart): no path changes health.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from bgpctl import events as names
from bgpctl.policy.load import load_policy
from bgpctl_lab.poll import eventually
from bgpctl_lab.reference import (
    API,
    CR,
    MEDIA,
    SIGNALLING,
    USE1,
    USW2,
    cr_neighbor,
    daemon_proc,
    edge_problems,
    event_ts,
    exabgp_children,
    log_events,
    wait_converged,
)
from bgpctl_lab.reference import ask_daemon as ask
from bgpctl_lab.runner import Lab
from tests.daemon.support import connections, session_problems
from tests.lab.helpers import LAB_POLICY, route_nexthops

pytestmark = pytest.mark.lab

LAB_PREFIX = "dt"
POLICY = load_policy(LAB_POLICY)
TGW, TGW_AS = "tgw-use1", 64512
USE1_PATHS = {f"{s}/use1/interconnect" for s in ("media", "signalling", "api")}
HYST = {f"{s}/use1/interconnect": POLICY.sla_classes[POLICY.services[s].sla].hysteresis for s in POLICY.services}

# Named budgets (seconds), generous for a loaded machine.
BUDGETS: dict[str, float] = {
    "daemon_converged": 30.0,
    "tgw_session_down": 10.0,  # FRR shuts the session (Cease, administrative shutdown)
    "daemon_paths_down": 5.0,  # from the TGW's session down to the daemon's paths down
    "edge_left_use1": 5.0,  # from the daemon's decision to the edge's RIB
    "tgw_session_up": 30.0,  # FRR's connect timer is 1 s; ExaBGP reconnects
    # from the daemon seeing the session up: the slowest class's hold-down (api: 30 s) plus slack
    "edge_back_on_use1": max(h.hold_down_s for h in HYST.values()) + 20.0,
}
SLACK_S = 1.5  # the daemon steps on probe events (every 20 ms) or at least once a second


def tgw_state(lab: Lab) -> str:
    return str(cr_neighbor(lab, TGW).get("bgpState"))


def daemon_view(lab: Lab) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """The daemon's state of the TGW session and its use1 paths, from ``bgpctl status --json``."""
    status = ask(lab, "status")
    session = next((s["state"] for s in status["sessions"] if s["peer"] == TGW), None)
    return session, {p["path"]: p for p in status["paths"] if p["path"] in USE1_PATHS}


def daemon_down_problems(view: tuple[str | None, dict[str, dict[str, Any]]]) -> list[str]:
    session, paths = view
    problems = [] if session not in (None, "up") else [f"daemon: session {TGW} is {session}"]
    for name in sorted(USE1_PATHS):
        p = paths.get(name)
        if p is None or p["health"] != "down":
            problems.append(f"daemon: {name} is {None if p is None else p['health']}")
        elif not any(f"BGP session to {TGW} is down" in r for r in p["reasons"]):
            problems.append(f"daemon: {name} down for {p['reasons']}, not the session")
    return problems


def edge_hops(lab: Lab) -> dict[str, set[str]]:
    return {p: route_nexthops(lab, "edge", p) for p in (MEDIA, SIGNALLING, API)}


def edge_usw2_only(hops: dict[str, set[str]]) -> list[str]:
    return [f"edge: {p} via {sorted(h)}" for p, h in hops.items() if h != {USW2}]


def session_events(lab: Lab, t0: float) -> list[dict[str, Any]]:
    return [
        e for e in log_events(lab) if e.get("event") == names.PATH_SESSION and e["peer"] == TGW and event_ts(e) >= t0
    ]


def health_events(lab: Lab, t0: float, new: str) -> dict[str, dict[str, Any]]:
    """The first path.health event of each use1 path to ``new`` since ``t0``."""
    out: dict[str, dict[str, Any]] = {}
    for e in log_events(lab):
        if e.get("event") == names.PATH_HEALTH and e["path"] in USE1_PATHS and e["new"] == new and event_ts(e) >= t0:
            out.setdefault(e["path"], e)
    return out


def test_tgw_session_shut_moves_the_edge_off_the_region_and_back_after_the_rise_rules(
    controller_lab: Lab, record_property: Any
) -> None:
    timings: dict[str, float] = {}
    t0 = time.time()
    controller_lab.configure(TGW, [f"router bgp {TGW_AS}", f"neighbor {CR} shutdown"])
    shut = True
    try:
        # 1. the TGW's session
        eventually(
            f"{TGW}: session with cr down",
            budget=BUDGETS["tgw_session_down"],
            probe=lambda: tgw_state(controller_lab),
            check=lambda s: [] if s != "Established" else [f"{TGW}: {s}"],
        )
        timings["tgw_session_down_s"] = time.time() - t0
        # 2. the daemon: session down, use1's paths down for it (control API and log)
        eventually(
            "daemon: use1 down for the session",
            budget=BUDGETS["daemon_paths_down"],
            probe=lambda: daemon_view(controller_lab),
            check=daemon_down_problems,
            interval_s=0.1,
        )
        timings["daemon_status_down_s"] = time.time() - t0
        downs = eventually(
            "daemon log: use1 paths down",
            budget=BUDGETS["daemon_paths_down"],
            probe=lambda: health_events(controller_lab, t0, "down"),
            check=lambda d: [] if set(d) == USE1_PATHS else [f"logged down: {sorted(d)}"],
        ).value
        seen_down = [e for e in session_events(controller_lab, t0) if e["state"] != "up"]
        assert seen_down and TGW in seen_down[0]["sessions_down"], session_events(controller_lab, t0)
        timings["daemon_saw_session_down_s"] = event_ts(seen_down[0]) - t0
        for e in downs.values():
            assert e["level"] == "warning", e
            assert e["measurements"] == {"session": 0.0}, e
            assert any(f"BGP session to {TGW} is down" in r for r in e["reasons"]), e
            # decided in the step that saw the session down (the loop steps at least once a second)
            assert event_ts(e) - event_ts(seen_down[0]) <= SLACK_S, (e, seen_down[0])
        timings["daemon_paths_down_s"] = max(event_ts(e) for e in downs.values()) - t0
        # 3. the edge: usw2 only
        eventually(
            "edge: use1 left",
            budget=BUDGETS["edge_left_use1"],
            probe=lambda: edge_hops(controller_lab),
            check=edge_usw2_only,
        )
        timings["edge_left_use1_s"] = time.time() - t0
        # usw2's paths never moved
        assert all(p["health"] == "up" for p in ask(controller_lab, "status")["paths"] if p["region"] == "usw2")

        # the session returns
        t1 = time.time()
        controller_lab.configure(TGW, [f"router bgp {TGW_AS}", f"no neighbor {CR} shutdown"])
        shut = False
        eventually(
            f"{TGW}: session with cr Established",
            budget=BUDGETS["tgw_session_up"],
            probe=lambda: tgw_state(controller_lab),
            check=lambda s: [] if s == "Established" else [f"{TGW}: {s}"],
            interval_s=0.1,
        )
        timings["tgw_session_up_s"] = time.time() - t1
        seen_up = eventually(
            "daemon log: session up",
            budget=BUDGETS["tgw_session_up"],
            probe=lambda: [e for e in session_events(controller_lab, t1) if e["state"] == "up"],
            check=lambda es: [] if es else ["no path.session up yet"],
        ).value[0]
        t_up = event_ts(seen_up)
        timings["daemon_saw_session_up_s"] = t_up - t1
        # right after: the session is up but the paths stay down (rise rules), the edge still on usw2
        session, paths = daemon_view(controller_lab)
        assert session == "up"
        assert {n: p["health"] for n, p in paths.items()} == dict.fromkeys(USE1_PATHS, "down"), paths
        back: dict[str, float] = {}

        def edge_back(hops: dict[str, set[str]]) -> list[str]:
            now = time.time()
            for p, h in hops.items():
                if USE1 in h:
                    back.setdefault(p, now)
            return [] if len(back) == len(hops) else [f"edge: {p} via {sorted(h)}" for p, h in hops.items()]

        eventually(
            "edge: use1 back",
            budget=BUDGETS["edge_back_on_use1"],
            probe=lambda: edge_hops(controller_lab),
            check=edge_back,
            interval_s=0.1,
        )
        ups = eventually(
            "daemon log: use1 paths up",
            budget=5.0,
            probe=lambda: health_events(controller_lab, t1, "up"),
            check=lambda d: [] if set(d) == USE1_PATHS else [f"logged up: {sorted(d)}"],
        ).value
        for name, e in ups.items():
            h = HYST[name]
            after = event_ts(e) - t_up
            timings[f"{name.split('/')[0]}_up_after_session_up_s"] = after
            # not before the rise rules: rise_s of clean measurements counted from the session's return,
            # and the hold-down from the last step that saw it down (just before the return)
            assert after >= max(h.rise_s, h.hold_down_s - SLACK_S), (name, after, e)
            assert after <= max(h.rise_s, h.hold_down_s) + SLACK_S + 5.0, (name, after, e)
            assert any(r.startswith("clean for") for r in e["reasons"]), e
        for p, at in back.items():
            timings[f"edge_{p}_back_after_session_up_s"] = at - t_up
        assert back[MEDIA] - t_up >= HYST["media/use1/interconnect"].hold_down_s - SLACK_S
        assert back[API] - t_up >= HYST["api/use1/interconnect"].hold_down_s - SLACK_S
        eventually(
            "edge converged again", budget=10.0, probe=lambda: controller_lab, check=edge_problems, interval_s=0.2
        )
    finally:
        if shut:
            controller_lab.configure(TGW, [f"router bgp {TGW_AS}", f"no neighbor {CR} shutdown"])
        rounded = {k: round(v, 2) for k, v in timings.items()}
        record_property("timings", rounded)
        print(f"TGW session timings: {rounded}")


def test_an_exabgp_restart_is_not_a_session_down(controller_lab: Lab, record_property: Any) -> None:
    wait_converged(controller_lab, "converged", budget=BUDGETS["daemon_converged"])
    daemon = daemon_proc(controller_lab)
    (old,) = exabgp_children(daemon.pid)
    before = connections(controller_lab)
    t0 = time.time()
    os.kill(old, signal.SIGKILL)
    w = eventually(
        "sessions back after ExaBGP was killed",
        budget=BUDGETS["tgw_session_up"],
        probe=lambda: controller_lab,
        check=lambda lab: session_problems(lab, before),
        interval_s=0.1,
    )
    record_property("exabgp_kill_sessions_back_s", round(w.elapsed_s, 2))

    # the new API connection voids what the old ExaBGP said (every session unknown), then the sessions are up
    # again: never counted down (ExaBGP may report a session connected before up)
    def told(lab: Lab) -> list[tuple[str, str, list[str]]]:
        return [
            (e["peer"], e["told"], e["sessions_down"])
            for e in log_events(lab)
            if e.get("event") == names.PATH_SESSION and event_ts(e) >= t0
        ]

    want = {(tgw, t) for tgw in ("tgw-use1", "tgw-usw2") for t in ("unknown", "up")}
    seen = eventually(
        "daemon told of the new ExaBGP's sessions",
        budget=10.0,
        probe=lambda: told(controller_lab),
        check=lambda t: [] if {(p, s) for p, s, _ in t} >= want else [f"told: {t}"],
    ).value
    assert all(down == [] for _, _, down in seen), seen
    moved = [e for e in log_events(controller_lab) if e.get("event") == names.PATH_HEALTH and event_ts(e) >= t0]
    assert moved == [], moved
    assert all(p["health"] == "up" for p in ask(controller_lab, "status")["paths"])
