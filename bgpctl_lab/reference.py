"""The reference lab (containerlab.yml with policies/lab.yaml) as tests read it: its addresses, the daemon
process, and the checks "converged" is made of (each returns the list of what is not yet so; [] = holds,
for :func:`bgpctl_lab.poll.eventually`).

One place for what several lab test modules (daemon, control, sessions, peers, hooks, signals, drills)
assert about the same topology, so that a change of the lab's addresses or policy is made once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from bgpctl_lab.jsonmatch import mismatches
from bgpctl_lab.runner import Lab
from bgpctl_lab.state import Proc

CR, USE1, USW2 = "198.18.1.2", "198.18.1.11", "198.18.1.12"
EDGE_ADDR = "198.18.1.1"
MEDIA, SIGNALLING, API = "203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26"
AGENTS = "192.0.2.0/24"
WATCHED = (MEDIA, SIGNALLING, API)
FRR_PEERS_OF_CR = ("edge", "tgw-use1", "tgw-usw2")
DAEMON_TAG = "service:daemon"  # the lab service that runs `bgpctl daemon` on cr in controller mode


def daemon_proc(lab: Lab) -> Proc:
    """The lab's running bgpctl daemon (AssertionError when there is not exactly one, or it is gone)."""
    procs = [p for p in lab.spawned() if p.tag == DAEMON_TAG]
    assert len(procs) == 1, f"expected one recorded daemon, got {procs}"
    assert lab.spawned_alive(procs[0]), f"daemon {procs[0].pid} is not running"
    return procs[0]


def daemon_run_dir(lab: Lab) -> Path:
    """The running daemon's run directory (its ``--run-dir``: control socket, overrides, recording)."""
    argv = daemon_proc(lab).argv
    return Path(argv[argv.index("--run-dir") + 1])


def bgpctl_cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, as an operator runs it, against the lab's daemon (``bgpctl ARGS --run-dir DIR``)."""
    return subprocess.run(
        [sys.executable, "-m", "bgpctl", *args, "--run-dir", str(daemon_run_dir(lab))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ask_daemon(lab: Lab, verb: str, *args: str) -> dict[str, Any]:
    """``bgpctl VERB --json ARGS`` against the lab's daemon: its JSON answer (AssertionError on a non-zero exit)."""
    out = bgpctl_cli(lab, verb, "--json", *args)
    assert out.returncode == 0, out.stderr
    data: dict[str, Any] = json.loads(out.stdout)
    return data


def route_nexthops(lab: Lab, node: str, prefix: str) -> set[str]:
    """Installed next hops of ``prefix`` in the node's FRR RIB (``show ip route PREFIX json``)."""
    data = lab.vtysh_json(node, f"show ip route {prefix} json")
    hops: set[str] = set()
    for entry in data.get(prefix, []):
        if entry.get("selected"):
            hops.update(nh["ip"] for nh in entry.get("nexthops", []) if nh.get("active") and "ip" in nh)
    return hops


def cr_neighbor(lab: Lab, node: str) -> dict[str, Any]:
    """``show bgp neighbors <cr> json`` on an FRR peer of cr."""
    data: dict[str, Any] = lab.vtysh_json(node, f"show bgp neighbors {CR} json")[CR]
    return data


def tgw_problems(lab: Lab, community: str = "7224:7300") -> list[str]:
    """[] when both TGWs hold the agents' prefix from cr, next hop the edge, with exactly ``community``."""
    problems: list[str] = []
    for tgw in ("tgw-use1", "tgw-usw2"):
        data = lab.vtysh_json(tgw, f"show bgp ipv4 unicast {AGENTS} json")
        ours = [p for p in data.get("paths", []) if p.get("peer", {}).get("peerId") == CR]
        if len(ours) != 1:
            problems.append(f"{tgw}: {len(ours)} paths for {AGENTS} from cr")
            continue
        want = {
            "valid": True,
            "bestpath": {"overall": True},
            "nexthops": [{"ip": EDGE_ADDR}],
            "community": {"string": community},
            "aspath": {"string": "65000"},
        }
        problems += [f"{tgw}: {p}" for p in mismatches(ours[0], want)]
    return problems


def edge_problems(lab: Lab, media_hops: set[str] | None = None) -> list[str]:
    """[] when the edge's RIB has ``media_hops`` (default: both TGWs) for media and signalling, and for
    the API group use1 best (MED 0, path 65000) over usw2 (MED 100, one prepend)."""
    hops = media_hops or {USE1, USW2}
    problems = [
        f"edge: {p} via {got}, want {sorted(hops)}"
        for p in (MEDIA, SIGNALLING)
        if (got := route_nexthops(lab, "edge", p)) != hops
    ]
    api = lab.vtysh_json("edge", f"show bgp ipv4 unicast {API} json")
    want = {
        "paths": [
            {"__exact_len__": 2},
            {"nexthops": [{"ip": USE1}], "metric": 0, "aspath": {"string": "65000"}, "bestpath": {"overall": True}},
            {"nexthops": [{"ip": USW2}], "metric": 100, "aspath": {"string": "65000 65000"}, "bestpath": None},
        ]
    }
    problems += [f"edge {API}: {p}" for p in mismatches(api, want)]
    if (got := route_nexthops(lab, "edge", API)) != {USE1}:
        problems.append(f"edge: {API} installed via {got}, want {USE1}")
    return problems


def converged_problems(lab: Lab) -> list[str]:
    """[] when every hop holds the daemon's steady-state routes (both TGWs, the edge)."""
    return tgw_problems(lab) + edge_problems(lab)
