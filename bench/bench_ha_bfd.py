"""The HA lab's BFD towards the controller hosts: false BFD downs over a window with no fault, then the time
until the edge's best path comes from the secondary when the primary's host is cut off (docs/ha.md "Status").

Run (root), from the repository root, under the lab lock and not under ``nice`` (the lab's daemons inherit it)::

    flock /tmp/bgpctl-labrun.lock .venv/bin/python -m bench.bench_ha_bfd --quiet-s 180 --cuts 2

with the BFD profile ``controller`` of lab/ha/*/frr.conf as it should be measured (load, e.g. ``stress-ng
--cpu 2``, started beside it). Prints the edge's timers, one ``QUIET`` JSON line (per FRR peer and controller:
BFD ``session-down``/``session-up`` and BGP ``connectionsDropped`` over the window) and one ``CUT`` JSON line per
cut. The lab (``ha<pid>``) is always taken down.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from bgpctl_lab import runner
from bgpctl_lab.poll import eventually
from bgpctl_lab.reference import MEDIA
from bgpctl_lab.runner import Lab
from tests.daemon.test_ha_lab import CR1, CR2, TOPOLOGY, _best_from, steady_problems

PEERS = ("edge", "tgw-use1", "tgw-usw2")
CONVERGED_S = 120.0  # up to the steady state (both daemons, BFD, the edge's reflected paths)
STEADY_AGAIN_S = 150.0  # after a cut: cr1 back and no longer handing over (api: about 52 s)


def counters(lab: Lab) -> dict[str, dict[str, Any]]:
    """Per ``peer->controller``: BFD session downs and ups, BGP connections dropped (FRR's counters)."""
    out: dict[str, dict[str, Any]] = {}
    for node in PEERS:
        for p in lab.vtysh_json(node, "show bfd peers counters json"):
            if p.get("peer") in (CR1, CR2):
                out[f"{node}->{p['peer']}"] = {"down": p.get("session-down"), "up": p.get("session-up")}
        for cr in (CR1, CR2):
            n = lab.vtysh_json(node, f"show bgp neighbors {cr} json").get(cr, {})
            out.setdefault(f"{node}->{cr}", {})["bgp_dropped"] = n.get("connectionsDropped")
    return out


def timers(lab: Lab) -> list[tuple[str, Any, Any, Any]]:
    """The edge's BFD sessions to the controllers: (peer, receive, transmit, multiplier) as bfdd applies them."""
    return [
        (p["peer"], p.get("receive-interval"), p.get("transmit-interval"), p.get("detect-multiplier"))
        for p in lab.vtysh_json("edge", "show bfd peers json")
        if p.get("peer") in (CR1, CR2)
    ]


def quiet(lab: Lab, seconds: float) -> dict[str, dict[str, int]]:
    """The counters' change over ``seconds`` with no fault."""
    before = counters(lab)
    t = time.monotonic()
    eventually(
        "the quiet window",
        budget=seconds + 30,
        probe=lambda: time.monotonic() - t,
        check=lambda d: [] if d >= seconds else [f"{d:.0f} s"],
        interval_s=5,
    )
    after = counters(lab)
    return {k: {m: (after[k].get(m) or 0) - (before.get(k, {}).get(m) or 0) for m in after[k]} for k in after}


def cut(lab: Lab) -> dict[str, Any]:
    """Cut cr1's only link from the steady state; seconds until the edge's best path for media is cr2's."""
    eventually("the steady state before the cut", budget=STEADY_AGAIN_S, probe=lambda: lab, check=steady_problems)
    t0 = time.monotonic()
    lab.link_set("cr1", "eth1", up=False)
    try:
        moved = eventually(
            "the edge's best path from cr2",
            budget=10,
            probe=lambda: _best_from(lab, "edge", MEDIA),
            check=lambda b: [] if b == CR2 else [f"{MEDIA} from {b}"],
            interval_s=0.01,
        )
        took = time.monotonic() - t0
        why = lab.vtysh_json("edge", f"show bgp neighbors {CR1} json")[CR1].get("lastNotificationReason")
        return {"secondary_best_s": round(took, 3), "polls": moved.polls, "why": why}
    finally:
        lab.link_set("cr1", "eth1", up=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quiet-s", type=float, default=180.0)
    ap.add_argument("--cuts", type=int, default=2)
    args = ap.parse_args()
    lab = runner.up(TOPOLOGY, name=f"ha{os.getpid()}", mode="controller")
    try:
        eventually("HA pair converged", budget=CONVERGED_S, probe=lambda: lab, check=steady_problems, interval_s=0.5)
        print("timers", timers(lab), flush=True)
        print("QUIET", json.dumps({"seconds": args.quiet_s, "delta": quiet(lab, args.quiet_s)}), flush=True)
        for i in range(args.cuts):
            print("CUT", json.dumps({"i": i, **cut(lab)}), flush=True)
    finally:
        runner.down(lab.name)


if __name__ == "__main__":
    main()
