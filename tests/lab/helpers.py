"""Helpers for lab tests: JSON subset matching, vtysh checks, sessions, routes, pings.

Polling with named budgets is :func:`bgpctl_lab.poll.eventually`; the fixtures and the failure dumps
are the lab's pytest plugin (:mod:`bgpctl_lab.pytest_plugin`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bgpctl_lab.jsonmatch import mismatches
from bgpctl_lab.pytest_plugin import all_established
from bgpctl_lab.reference import route_nexthops
from bgpctl_lab.runner import Lab

__all__ = [
    "LAB_POLICY",
    "REPO",
    "TOPOLOGY",
    "all_established",
    "assert_json_subset",
    "json_mismatches",
    "ping",
    "route_nexthops",
    "snmp_counter",
    "vtysh_matches",
]

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "containerlab.yml"
LAB_POLICY = REPO / "policies" / "lab.yaml"


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
