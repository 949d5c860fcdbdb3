"""Defect 2 of the HA pair (docs/ha.md "Status", issue 11): cut cr1's host off after restarts of its daemon.

A fresh HA lab; converge; restart cr1's daemon as tests/daemon/test_ha_lab.py does (the plain service replaced by
its supervisor, kill -9 of the supervised daemon, the supervisor replaced by the plain service again: each a
graceful-restart episode on the peers' sessions with cr1), wait until cr1's ``bgpctl status`` says RIB complete
and every FRR peer's session with both controllers is Established with its End-of-RIB, then cut cr1's only link
and poll the edge until its best path for media comes from cr2, within ``--budget`` seconds. FRR's own state on
the edge and the TGWs towards cr1 is recorded after each episode and around the cut (``show bfd peers json``,
``show bfd peers counters json``, ``show bgp neighbors X json``), one ``STATE`` JSON line per node and record;
every FRR and service log of the run (FRR's at debugging level, ``debug bgp bfd``) is copied to ``--out``.

Run (root), from the repository root, not under ``nice`` (the lab's daemons inherit it)::

    .venv/bin/python -m bench.bench_ha_defect2 --runs 3 --out /tmp/defect2

``--episodes`` picks what happens before the cut (default: supervise,kill9,unsupervise; ``isolate``: a cut and
the return, as the session-23 test module ran before its kill -9 test; ``stop``: cr1's daemon stopped and not
started again, so that the cut falls inside the peers' graceful-restart episode, as a host lost during its
daemon's restart; ``none``: a cut from the fresh steady state). ``--cut-wait steady`` waits for the hops only
before the cut, as the session-23 test did (stale routes pass it). The lab (``ha<pid>``) is always taken down.
Exit status 1 when a cut did not move within the budget. Findings: docs/ha.md "Status", defect 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bgpctl_lab import runner
from bgpctl_lab.poll import BudgetExceeded, eventually
from bgpctl_lab.reference import MEDIA
from bgpctl_lab.runner import Lab
from bgpctl_lab.services import TAG_PREFIX
from tests.daemon.test_ha_lab import (
    CR1,
    CR2,
    TOPOLOGY,
    _back_problems,
    _best_from,
    _rib_complete,
    hop_problems,
    steady_problems,
)

PEERS = ("edge", "tgw-use1", "tgw-usw2")
CONVERGED_S = 120.0  # a fresh lab or a restarted daemon up to the steady state (under load)
EPISODES = ("isolate", "supervise", "kill9", "unsupervise", "restart", "stop")
RETURN_S = 180.0  # after a cut: cr1 back, no longer handing over (api: about 52 s), RIB complete
NEIGHBOR_KEYS = (
    "bgpState",
    "bgpTimerUpEstablishedEpoch",
    "connectionsEstablished",
    "connectionsDropped",
    "lastResetDueTo",
    "lastResetCode",
    "lastNotificationReason",
    "lastErrorCodeSubcode",
    "gracefulRestartInfo",
    "peerBfdInfo",
    "hostLocal",
    "portLocal",
    "hostForeign",
    "portForeign",
    "nexthop",
)


def log(tag: str, **fields: Any) -> None:
    print(tag, json.dumps({"utc": time.strftime("%H:%M:%S", time.gmtime()), **fields}, sort_keys=True), flush=True)


def frr_state(lab: Lab, node: str) -> dict[str, Any]:
    """The node's BFD sessions and counters towards cr1 (all of them: a count other than 1 is news) and its
    BGP neighbour cr1 (the fields of NEIGHBOR_KEYS)."""
    bfd = [p for p in lab.vtysh_json(node, "show bfd peers json") if p.get("peer") == CR1]
    counters = [p for p in lab.vtysh_json(node, "show bfd peers counters json") if p.get("peer") == CR1]
    nbr = lab.vtysh_json(node, f"show bgp neighbors {CR1} json").get(CR1, {})
    return {
        "bfd_sessions": len(bfd),
        "bfd": [
            {k: p.get(k) for k in ("id", "local", "status", "uptime", "downtime", "diagnostic", "remote-id")}
            for p in bfd
        ],
        "bfd_counters": [
            {k: p.get(k) for k in ("local", "session-up", "session-down", "control-packet-input")} for p in counters
        ],
        "bgp": {k: nbr.get(k) for k in NEIGHBOR_KEYS if k in nbr},
    }


def record(lab: Lab, label: str) -> None:
    for node in PEERS:
        log("STATE", at=label, node=node, **frr_state(lab, node))


def steady(lab: Lab, what: str, budget: float = CONVERGED_S) -> float:
    """Wait until cr1's daemon says RIB complete and the steady state holds (every peer's session with both
    controllers Established with its End-of-RIB: no graceful-restart episode open); seconds waited."""
    return eventually(
        what,
        budget=budget,
        probe=lambda: lab,
        check=lambda lab: ([] if _rib_complete(lab, "cr1") else ["cr1: RIB not complete"]) + steady_problems(lab),
        interval_s=0.5,
    ).elapsed_s


def episode(lab: Lab, kind: str, *, last: bool = False, cut_wait: str = "rib") -> None:
    t0 = time.monotonic()
    if kind == "supervise":
        runner.supervise_service(lab, "cr1", "daemon", restart_sec=0.5)
    elif kind == "kill9":
        pid = runner.service_pid(lab, "cr1", "daemon")
        if pid is None or runner.supervisor_of(lab, "cr1", "daemon") is None:
            raise SystemExit("kill9 needs a supervised daemon: put 'supervise' before it")
        os.kill(pid, signal.SIGKILL)
        eventually(
            "a new primary daemon, its End-of-RIB at the edge",
            budget=CONVERGED_S,
            probe=lambda: lab,
            check=lambda lab: _back_problems(lab, pid),
            interval_s=0.2,
        )
    elif kind == "unsupervise":
        runner.unsupervise_service(lab, "cr1", "daemon")
    elif kind == "restart":
        runner.restart_service(lab, "cr1", "daemon")
    elif kind == "isolate":
        result = cut(lab, 15.0)
        log("CUT", episode=True, **result)
    elif kind == "stop":  # the daemon stopped (SIGTERM: graceful restart at the peers) and not started again
        lab.kill_spawned(tag=TAG_PREFIX + "daemon", node="cr1", grace=20.0)
        log("EPISODE", kind=kind, s=round(time.monotonic() - t0, 2))
        record(lab, "after stop")
        return
    if last and cut_wait == "steady":  # the session-23 test module's wait: the hops only (stale routes pass it)
        waited = eventually(
            f"steady (hops only) after {kind}", budget=CONVERGED_S, probe=lambda: lab, check=hop_problems
        ).elapsed_s
    else:
        waited = steady(lab, f"steady after {kind}", RETURN_S if kind == "isolate" else CONVERGED_S)
    log("EPISODE", kind=kind, s=round(time.monotonic() - t0, 2), steady_wait_s=round(waited, 2))
    record(lab, f"after {kind}")


def cut(lab: Lab, budget: float) -> dict[str, Any]:
    """Cut cr1's only link; seconds until the edge's best path for media is cr2's (None: not within budget)."""
    record(lab, "before cut")
    t0 = time.monotonic()
    lab.link_set("cr1", "eth1", up=False)
    try:
        try:
            moved = eventually(
                "the edge's best path from cr2",
                budget=budget,
                probe=lambda: _best_from(lab, "edge", MEDIA),
                check=lambda b: [] if b == CR2 else [f"{MEDIA} from {b}"],
                interval_s=0.01,
            )
            took: float | None = round(time.monotonic() - t0, 3)
            polls = moved.polls
        except BudgetExceeded:
            took, polls = None, -1
        record(lab, "after cut")
        why = lab.vtysh_json("edge", f"show bgp neighbors {CR1} json")[CR1].get("lastNotificationReason")
        return {"secondary_best_s": took, "polls": polls, "why": why}
    finally:
        lab.link_set("cr1", "eth1", up=True)


def one_run(i: int, episodes: list[str], budget: float, out: Path | None, cut_wait: str) -> bool:
    lab = runner.up(TOPOLOGY, name=f"ha{os.getpid()}", mode="controller")
    try:
        for node in PEERS:
            lab.configure(node, ["debug bgp bfd", "debug bgp neighbor-events", "debug bfd peer"])
        waited = steady(lab, "HA pair converged")
        log("UP", run=i, steady_wait_s=round(waited, 2))
        record(lab, "fresh")
        for n, kind in enumerate(episodes):
            episode(lab, kind, last=n == len(episodes) - 1, cut_wait=cut_wait)
        result = cut(lab, budget)
        log("CUT", run=i, episodes=episodes, cut_wait=cut_wait, **result)
        if out is not None:
            dest = out / f"run{i}"
            dest.mkdir(parents=True, exist_ok=True)
            for node in (*PEERS, "cr1", "cr2"):
                for src in lab.node_dir(node).glob("*.log"):
                    shutil.copy(src, dest / f"{node}-{src.name}")
        return result["secondary_best_s"] is not None
    finally:
        runner.down(lab.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--episodes", default="supervise,kill9,unsupervise")
    ap.add_argument("--budget", type=float, default=15.0)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--cut-wait",
        choices=("rib", "steady"),
        default="rib",
        help="before the cut: cr1's RIB complete and the steady state (rib), or the steady state of the hops only, "
        "which the peers' stale routes satisfy at once (steady: the session-23 test module's wait)",
    )
    args = ap.parse_args()
    episodes = [] if args.episodes == "none" else args.episodes.split(",")
    if unknown := [e for e in episodes if e not in EPISODES]:
        raise SystemExit(f"unknown episodes {unknown}; use {', '.join(EPISODES)} or none")
    ok = [one_run(i, episodes, args.budget, args.out, args.cut_wait) for i in range(args.runs)]
    log("SUMMARY", moved=sum(ok), runs=len(ok))
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main()
