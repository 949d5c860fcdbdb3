"""The reference lab (containerlab.yml with policies/lab.yaml) as tests read it: its addresses, the daemon
process, and the checks "converged" is made of (each returns the list of what is not yet so; [] = holds,
for :func:`bgpctl_lab.poll.eventually`).

One place for what several lab test modules (daemon, control, sessions, peers, hooks, signals, drills)
assert about the same topology, so that a change of the lab's addresses or policy is made once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bgpctl_lab import netns as labns
from bgpctl_lab.jsonmatch import mismatches
from bgpctl_lab.poll import Waited, eventually
from bgpctl_lab.runner import Lab
from bgpctl_lab.state import Proc

CR, USE1, USW2 = "198.18.1.2", "198.18.1.11", "198.18.1.12"
EDGE_ADDR = "198.18.1.1"
MEDIA, SIGNALLING, API = "203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26"
AGENTS = "192.0.2.0/24"
WATCHED = (MEDIA, SIGNALLING, API)
FRR_PEERS_OF_CR = ("edge", "tgw-use1", "tgw-usw2")
DAEMON_TAG = "service:daemon"  # the lab service that runs `bgpctl daemon` on cr in controller mode
DAEMON_LOG = "daemon.log"  # the daemon's log (JSON lines) in cr's node directory
METRICS_URL = "http://127.0.0.1:9477/metrics"  # the lab policy's metrics endpoint, on cr's loopback
Routes = dict[tuple[str, str], dict[str, Any]]
"""(prefix, next hop) -> the attributes of a route an FRR node holds from cr: AS path, MED, communities."""


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


def exabgp_children(pid: int) -> list[int]:
    """The ExaBGP processes among ``pid``'s children (the daemon's speaker)."""
    try:
        kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return [c for c in kids if _is_exabgp(c)]


def exabgp_in(lab: Lab) -> list[int]:
    """Every ExaBGP process in cr's namespace, whoever its parent."""
    nsid = labns.ns_id(lab.netns("cr"))
    assert nsid is not None
    return [p for p in labns.pids_in([nsid]) if _is_exabgp(p)]


def _is_exabgp(pid: int) -> bool:
    return any(os.path.basename(part) == "exabgp" for part in labns.proc_cmdline(pid) or [])


def metrics_text(lab: Lab) -> str:
    """The daemon's metrics page, fetched from inside cr's namespace (the endpoint listens on its loopback)."""
    code = (
        "import urllib.request, sys; "
        f"sys.stdout.write(urllib.request.urlopen({METRICS_URL!r}, timeout=2).read().decode())"
    )
    proc = subprocess.run(
        ["ip", "netns", "exec", lab.netns("cr"), sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert proc.returncode == 0, f"metrics fetch failed: {proc.stderr.strip()[-300:]}"
    return proc.stdout


def metric_samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of metric ``name`` on a metrics page: sorted label pairs -> value."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def metric_value(lab: Lab, name: str, **labels: str) -> float:
    """The daemon's metric ``name`` with exactly ``labels`` now (0 when it has no such sample yet)."""
    return metric_samples(metrics_text(lab), name).get(tuple(sorted(labels.items())), 0.0)


def daemon_log(lab: Lab) -> list[str]:
    """The lab daemon's log lines."""
    return (lab.node_dir("cr") / DAEMON_LOG).read_text().splitlines()


def log_events(lab: Lab) -> list[dict[str, Any]]:
    """The lab daemon's log, one JSON object a line."""
    return [json.loads(line) for line in daemon_log(lab)]


def rfc3339(text: str) -> float:
    """An RFC 3339 time (the log's and the hook events' timestamps) as Unix seconds."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def event_ts(event: dict[str, Any]) -> float:
    """A log event's timestamp as Unix seconds."""
    return rfc3339(str(event["timestamp"]))


def route_nexthops(lab: Lab, node: str, prefix: str) -> set[str]:
    """Installed next hops of ``prefix`` in the node's FRR RIB (``show ip route PREFIX json``)."""
    data = lab.vtysh_json(node, f"show ip route {prefix} json")
    hops: set[str] = set()
    for entry in data.get(prefix, []):
        if entry.get("selected"):
            hops.update(nh["ip"] for nh in entry.get("nexthops", []) if nh.get("active") and "ip" in nh)
    return hops


def nexthop_problems(lab: Lab, node: str, want: set[str], prefixes: tuple[str, ...] = WATCHED) -> list[str]:
    """[] when ``node``'s RIB has exactly the next hops ``want`` installed for each of ``prefixes``."""
    return [
        f"{node}: {p} via {sorted(got)}, want {sorted(want)}"
        for p in prefixes
        if (got := route_nexthops(lab, node, p)) != want
    ]


def paths_from_cr(lab: Lab, node: str, prefix: str) -> list[dict[str, Any]]:
    """The BGP paths for ``prefix`` that ``node`` holds from cr (``show bgp ipv4 unicast PREFIX json``)."""
    data = lab.vtysh_json(node, f"show bgp ipv4 unicast {prefix} json")
    return [p for p in data.get("paths", []) if p.get("peer", {}).get("peerId") == CR]


def routes_from_cr(lab: Lab, node: str, prefixes: set[str] | frozenset[str] = frozenset()) -> Routes:
    """Every route ``node`` holds from cr (and whatever it holds from cr for ``prefixes``), with its
    AS path, MED and communities."""
    table = lab.vtysh_json(node, "show bgp ipv4 unicast json").get("routes", {})
    from_cr = {p for p, paths in table.items() if any(x.get("peerId") == CR for x in paths)}
    return {
        (prefix, path["nexthops"][0]["ip"]): {
            "as_path": path.get("aspath", {}).get("string", ""),
            "med": path.get("metric"),
            "communities": path.get("community", {}).get("string", ""),
        }
        for prefix in sorted(from_cr | prefixes)
        for path in paths_from_cr(lab, node, prefix)
    }


def cr_neighbor(lab: Lab, node: str) -> dict[str, Any]:
    """``show bgp neighbors <cr> json`` on an FRR peer of cr."""
    data: dict[str, Any] = lab.vtysh_json(node, f"show bgp neighbors {CR} json")[CR]
    return data


def tgw_problems(lab: Lab, community: str = "7224:7300") -> list[str]:
    """[] when both TGWs hold the agents' prefix from cr, next hop the edge, with exactly ``community``."""
    problems: list[str] = []
    for tgw in ("tgw-use1", "tgw-usw2"):
        ours = paths_from_cr(lab, tgw, AGENTS)
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
    problems = nexthop_problems(lab, "edge", media_hops or {USE1, USW2}, (MEDIA, SIGNALLING))
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


def wait_converged(lab: Lab, what: str, *, budget: float, interval_s: float = 0.2) -> Waited[Lab]:
    """Poll :func:`converged_problems` until it holds, within ``budget`` seconds (BudgetExceeded names ``what``)."""
    return eventually(what, budget=budget, probe=lambda: lab, check=converged_problems, interval_s=interval_s)
