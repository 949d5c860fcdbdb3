"""Helpers for lab tests: polling with named budgets, JSON subset matching, vtysh checks, failure dumps.

Never sleep-and-hope: poll structured state with ``eventually(check, "budget_name")`` until ``check``
stops raising AssertionError (or LabError), or the named budget runs out.
"""

from __future__ import annotations

import functools
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bgpctl.errors import LabError
from bgpctl_lab.jsonmatch import mismatches
from bgpctl_lab.runner import Lab

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "containerlab.yml"
TEST_RUNS = Path("/tmp/bgpctl-test-runs")

# Named budgets (seconds). A test names the budget it relies on, so a slow machine shows *which*
# expectation was too tight, and the numbers live in one place.
BUDGETS: dict[str, float] = {
    "lab_up": 20.0,             # `up` until every FRR<->FRR session is Established (issue: < 20 s)
    "lab_down": 10.0,           # `down` removes everything (issue: < 10 s)
    "bgp_established": 20.0,    # a (re)configured or restarted session comes back
    "bgp_down": 15.0,           # a session notices its peer is gone (hold time 9 s + margin)
    "admin_down": 5.0,          # a session is administratively shut (local, immediate)
    "route_converged": 10.0,    # a BGP change reaches the RIB / kernel of a neighbour
    "process_exit": 5.0,        # a killed process is gone
}

T = TypeVar("T")


def budget_seconds(budget: str | float) -> tuple[str, float]:
    if isinstance(budget, str):
        try:
            return budget, BUDGETS[budget]
        except KeyError:
            raise KeyError(f"unknown budget {budget!r}; known: {', '.join(BUDGETS)}") from None
    return f"{budget:g} s", float(budget)


def eventually(check: Callable[[], T], budget: str | float, *, interval: float = 0.1, what: str = "") -> T:
    """Call ``check`` until it returns without raising AssertionError/LabError; return its value.

    When the budget runs out, raise AssertionError with the last failure, the budget's name and the
    number of tries."""
    name, seconds = budget_seconds(budget)
    t0 = time.monotonic()
    tries = 0
    while True:
        tries += 1
        try:
            return check()
        except (AssertionError, LabError) as e:
            last = e
        if time.monotonic() - t0 >= seconds:
            label = what or getattr(check, "__name__", "condition")
            raise AssertionError(f"{label}: still failing after budget {name} ({seconds:g} s, {tries} tries); "
                                 f"last: {last}") from last
        time.sleep(interval)


def json_mismatches(expected: Any, actual: Any) -> list[str]:
    """Where ``actual`` does not contain ``expected`` (bgpctl_lab.jsonmatch: dict keys are a subset, None
    means "absent", list items match distinct actual items in any order); [] when it matches."""
    return mismatches(actual, expected)


def assert_json_subset(actual: Any, expected: Any) -> None:
    problems = json_mismatches(expected, actual)
    assert not problems, "JSON does not match:\n  " + "\n  ".join(problems)


def vtysh_matches(lab: Lab, node: str, command: str, expected: Any) -> Any:
    """``show ... json`` on ``node`` contains ``expected``; returns the JSON (for use with eventually)."""
    data = lab.vtysh_json(node, command)
    problems = json_mismatches(expected, data)
    assert not problems, f"{node}: {command}:\n  " + "\n  ".join(problems)
    return data


def all_established(lab: Lab) -> dict[str, dict[str, str]]:
    """Every FRR<->FRR session that is not administratively shut is Established."""
    sessions = lab.established()
    bad = {n: {p: s for p, s in peers.items() if s != "Established"} for n, peers in sessions.items()}
    bad = {n: p for n, p in bad.items() if p}
    assert sessions and not bad, f"not Established: {bad}"
    return sessions


def route_nexthops(lab: Lab, node: str, prefix: str) -> set[str]:
    """Installed next hops of ``prefix`` in the node's FRR RIB (``show ip route PREFIX json``)."""
    data = lab.vtysh_json(node, f"show ip route {prefix} json")
    hops: set[str] = set()
    for entry in data.get(prefix, []):
        if entry.get("selected"):
            hops.update(nh["ip"] for nh in entry.get("nexthops", []) if nh.get("active") and "ip" in nh)
    return hops


def ping(lab: Lab, node: str, target: str, *, count: int = 1, source: str | None = None) -> None:
    """``count`` echo replies from ``target`` (AssertionError otherwise: for use with eventually)."""
    argv = ["ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "1", *(["-I", source] if source else []), target]
    proc = lab.exec(node, argv, check=False, timeout=5 + count)
    assert proc.returncode == 0, f"{node}: ping {target}: {proc.stdout.strip().splitlines()[-2:]}"


def snmp_counter(lab: Lab, node: str, group: str, name: str) -> int:
    """A counter of /proc/net/snmp read inside the node's namespace (e.g. ``Icmp``, ``InEchos``)."""
    text = lab.exec(node, ["cat", "/proc/net/snmp"]).stdout
    rows = [line.split() for line in text.splitlines() if line.startswith(f"{group}:")]
    header, values = rows[0], rows[1]
    return int(values[header.index(name)])


def safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]


IP_DUMPS = {"ip-addr.json": ["ip", "-j", "addr"], "ip-route.json": ["ip", "-j", "route"],
            "ip-link-stats.json": ["ip", "-j", "-s", "link"], "ip-neigh.json": ["ip", "-j", "neigh"],
            "ip-rule.txt": ["ip", "rule"], "nft-ruleset.txt": ["nft", "list", "ruleset"]}
DUMP_COMMANDS = ("show bgp summary json", "show bgp ipv4 unicast json", "show ip route json",
                 "show bgp neighbors json", "show running-config")


def dump_lab(lab: Lab, dest: Path) -> Path:
    """Copy every node's run directory (daemon logs, helper output) and the state, and dump
    ``show ... json`` of every FRR node and ``ip -j addr/route/link`` of every node, into ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if lab.run_dir.exists():
        shutil.copytree(lab.run_dir, dest / "run", dirs_exist_ok=True)
    for node in lab.nodes():
        ndir = dest / "nodes" / node
        ndir.mkdir(parents=True, exist_ok=True)
        for fname, args in IP_DUMPS.items():
            _write(ndir / fname, functools.partial(_exec_out, lab, node, args))
        if node in lab.frr_nodes():
            for cmd in DUMP_COMMANDS:
                suffix = ".json" if cmd.endswith(" json") else ".txt"
                _write(ndir / f"{cmd.removesuffix(' json').replace(' ', '-')}{suffix}",
                       functools.partial(lab.vtysh, node, cmd))
    return dest


def _exec_out(lab: Lab, node: str, argv: list[str]) -> str:
    return lab.exec(node, argv, check=False, timeout=10).stdout


def _write(path: Path, produce: Callable[[], str]) -> None:
    try:
        path.write_text(produce())
    except Exception as e:  # a dump must never hide the test's own failure
        path.write_text(f"(could not dump: {e})\n")
