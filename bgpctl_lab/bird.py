"""BIRD 2 per namespace (the lab's edge variants ``--edge bird`` and ``bird-no-addpath``).

Each BIRD node runs one ``bird`` in its namespace, in the foreground (``-f``, so the pid is the
daemon's), with its own control socket and pid file in the node's run directory, and is driven with
``birdc -s SOCKET``. birdc prints text, not JSON; the pure parsers here shape it into the structures
the lab's checks use: ``show protocols`` -> {protocol: (state, info)}, and ``show route for PREFIX
all`` -> the routes of a prefix with their next hops, which :func:`route_json` turns into the same
shape as FRR's ``show ip route PREFIX json`` (so a drill checks the edge hop the same way whichever
daemon runs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgpctl.errors import LabError
from bgpctl_lab import frr

BIRD = "bird"
BIRDC = "birdc"
SOCKET_NAME = "bird.ctl"
PID_NAME = "bird.pid"
LOG_NAME = "bird.log"

# Lab modes on a BIRD node: which BGP protocols are enabled (the others disabled with birdc).
CONTROLLER_PROTOCOLS = ("controller",)
DIRECT_PROTOCOLS = ("tgw_use1", "tgw_usw2")
_ROUTE_CMD = re.compile(r"show ip route (?P<prefix>[0-9.]+/\d{1,2}) json")
_PROTO_LINE = re.compile(
    r"^(?P<name>\S+)\s+(?P<proto>\S+)\s+(?P<table>\S+)\s+(?P<state>\S+)\s+(?P<since>\S+(?: \S+)?)\s*(?P<info>.*)$"
)
# a route's first line: "203.0.113.0/26       unicast [controller 10:00:00.000] * (100) [AS65000i]"
# (the prefix only on the first route of the prefix), a next hop: "\tvia 198.18.1.11 on eth1"
_ROUTE_LINE = re.compile(
    r"^(?P<prefix>\S+/\d+)?\s+(?P<kind>unicast|blackhole|unreachable|prohibited)\s+\[(?P<src>[^\]]+)\](?P<rest>.*)$"
)
_VIA = re.compile(r"^\s+via (?P<ip>\S+) on (?P<dev>\S+)")


def available() -> str | None:
    """None when BIRD can run here, else what is missing."""
    missing = [b for b in (BIRD, BIRDC) if shutil.which(b) is None]
    if missing:
        return f"BIRD 2 is not installed ({', '.join(missing)} missing): apt-get install bird2"
    return None


def daemon_argv(conf: Path, node_dir: Path) -> list[str]:
    return [BIRD, "-f", "-c", str(conf), "-s", str(node_dir / SOCKET_NAME), "-P", str(node_dir / PID_NAME)]


def birdc(node_dir: Path, command: str, *, timeout: float = 10) -> str:
    """One birdc command against the node's BIRD (its own socket); LabError with BIRD's answer if refused."""
    sock = node_dir / SOCKET_NAME
    try:
        proc = subprocess.run(
            [BIRDC, "-s", str(sock), *command.split()], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise LabError(f"birdc -s {sock} {command}: no answer within {timeout:.0f} s; is BIRD running?") from e
    if proc.returncode != 0 or "Unable to connect" in proc.stdout or proc.stdout.lstrip().startswith("syntax error"):
        raise LabError(f"birdc -s {sock} {command} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
    return proc.stdout


def mode_commands(mode: str) -> list[str]:
    """birdc commands that put the edge's BGP protocols into a lab mode."""
    if mode not in frr.MODES:
        raise LabError(f"unknown lab mode {mode!r}; use one of: {', '.join(frr.MODES)}")
    if mode.startswith("no-controller") and mode != "no-controller":
        raise LabError(f"lab mode {mode!r} needs FRR's BFD on the edge; a BIRD edge runs controller or no-controller")
    on, off = (
        (CONTROLLER_PROTOCOLS, DIRECT_PROTOCOLS) if mode == "controller" else (DIRECT_PROTOCOLS, CONTROLLER_PROTOCOLS)
    )
    return [f"disable {p}" for p in off] + [f"enable {p}" for p in on]


@dataclass(frozen=True)
class Protocol:
    name: str
    proto: str  # BGP, Kernel, Device, Direct, Static
    state: str  # up, down, start
    info: str  # BGP: Established, Active, Connect, Idle, ... ("" when disabled)


def parse_protocols(text: str) -> dict[str, Protocol]:
    """``birdc show protocols`` -> {name: Protocol} (header and banner lines skipped)."""
    out: dict[str, Protocol] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Name ")):
            continue
        m = _PROTO_LINE.match(line)
        if m:
            out[m["name"]] = Protocol(m["name"], m["proto"], m["state"], m["info"].strip())
    return out


def bgp_sessions(protocols: Mapping[str, Protocol]) -> dict[str, str]:
    """{BGP protocol: session state} of the enabled BGP protocols (a disabled one is administratively down)."""
    return {
        p.name: (p.info.split()[0] if p.info else p.state)
        for p in protocols.values()
        if p.proto == "BGP" and not (p.state == "down" and not p.info)
    }


@dataclass(frozen=True)
class Route:
    prefix: str
    source: str  # the protocol: "controller"
    best: bool  # BIRD's '*': the route it selected
    next_hops: tuple[str, ...]
    path_id: int | None = None


def parse_routes(text: str) -> list[Route]:
    """``birdc show route for PREFIX all`` (or ``show route PREFIX all``) -> its routes, in BIRD's order."""
    routes: list[Route] = []
    current: dict[str, Any] | None = None
    prefix = ""

    def flush() -> None:
        if current is not None:
            routes.append(
                Route(current["prefix"], current["src"], current["best"], tuple(current["hops"]), current["pid"])
            )

    for line in text.splitlines():
        m = _ROUTE_LINE.match(line)
        if m:
            flush()
            prefix = m["prefix"] or prefix
            src = m["src"].split()[0]
            current = {"prefix": prefix, "src": src, "best": " * " in f"{m['rest']} ", "hops": [], "pid": None}
            continue
        if current is None:
            continue
        v = _VIA.match(line)
        if v:
            current["hops"].append(v["ip"])
        elif "BGP.path_id" in line or "path_id" in line:
            num = re.search(r"(\d+)\s*$", line)
            current["pid"] = int(num.group(1)) if num else None
    flush()
    return routes


def route_json(prefix: str, routes: list[Route], kernel_hops: list[str]) -> dict[str, Any]:
    """The shape of FRR's ``show ip route PREFIX json`` for the drill checks: the prefix's selected route
    with the next hops the kernel forwards on (BIRD merges equal routes into one ECMP kernel route)."""
    if not any(r.prefix == prefix for r in routes):
        return {}
    return {
        prefix: [
            {
                "prefix": prefix,
                "protocol": "bgp",
                "selected": True,
                "installed": bool(kernel_hops),
                "nexthops": [{"ip": ip, "active": True, "fib": True} for ip in kernel_hops],
                "bird": [
                    {"source": r.source, "best": r.best, "nexthops": list(r.next_hops), "path_id": r.path_id}
                    for r in routes
                    if r.prefix == prefix
                ],
            }
        ]
    }


def route_command(command: str) -> str | None:
    """The prefix of a ``show ip route PREFIX json`` check, None for a command BIRD nodes do not answer."""
    m = _ROUTE_CMD.fullmatch(command.strip())
    return m["prefix"] if m else None


def kernel_hops(ip_json: str) -> list[str]:
    """``ip -j route show exact PREFIX`` -> the gateways it forwards on (one, or each of an ECMP route)."""
    try:
        routes = json.loads(ip_json or "[]")
    except json.JSONDecodeError as e:
        raise LabError(f"ip -j route did not return JSON: {ip_json[:200]!r}") from e
    hops: list[str] = []
    for r in routes if isinstance(routes, list) else []:
        if not isinstance(r, dict):
            continue
        for nh in r.get("nexthops") or [r]:
            gw = nh.get("gateway") if isinstance(nh, dict) else None
            if isinstance(gw, str) and gw not in hops:
                hops.append(gw)
    return hops
