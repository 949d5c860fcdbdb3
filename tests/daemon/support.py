"""Readers of the controller lab shared by the daemon's lab tests: sessions with cr, the daemon's probe pins."""

from __future__ import annotations

from pathlib import Path

from bgpctl.policy.load import load_policy
from bgpctl.probe.pinning import RT_PROTO_BGPCTL, Pinning, pins_from_policy
from bgpctl_lab.drill import DrillReport, run_drill, summary
from bgpctl_lab.drill_model import load_drill
from bgpctl_lab.reference import (
    CR,
    FRR_PEERS_OF_CR,
    USE1,
    USW2,
    cr_neighbor,
)
from bgpctl_lab.runner import Lab
from bgpctl_lab.topology import drills_dir
from tests.lab.helpers import LAB_POLICY, TOPOLOGY


def connections(lab: Lab) -> dict[str, int]:
    return {n: int(cr_neighbor(lab, n).get("connectionsEstablished", 0)) for n in FRR_PEERS_OF_CR}


def session_problems(lab: Lab, since: dict[str, int]) -> list[str]:
    """[] when every FRR peer of cr has a new session (more connections than ``since``), Established,
    End-of-RIB received, and no stale path left from cr."""
    problems: list[str] = []
    for node in FRR_PEERS_OF_CR:
        n = cr_neighbor(lab, node)
        if n.get("bgpState") != "Established":
            problems.append(f"{node}: session with cr is {n.get('bgpState')}")
        if int(n.get("connectionsEstablished", 0)) <= since[node]:
            problems.append(f"{node}: no new session yet ({n.get('connectionsEstablished')} connections)")
        eor = n.get("gracefulRestartInfo", {}).get("endOfRibRecv", {}).get("ipv4Unicast")
        if eor is not True:
            problems.append(f"{node}: no End-of-RIB from cr yet")
        routes = lab.vtysh_json(node, "show bgp ipv4 unicast json").get("routes", {})
        stale = sorted(p for p, paths in routes.items() if any(x.get("stale") and x.get("peerId") == CR for x in paths))
        if stale:
            problems.append(f"{node}: stale paths from cr: {stale}")
    return problems


class StaleSeen:
    """``session_problems`` as a check that also remembers which nodes were seen holding stale paths from cr
    (graceful restart at work), for the report."""

    def __init__(self, since: dict[str, int]) -> None:
        self.since, self.nodes = since, set[str]()

    def __call__(self, lab: Lab) -> list[str]:
        problems = session_problems(lab, self.since)
        self.nodes.update(p.split(":")[0] for p in problems if "stale paths" in p)
        return problems


def pins_problems(lab: Lab) -> list[str]:
    """[] when cr holds the daemon's policy routing for both paths: rule, default via the TGW, address."""
    state = Pinning(pins_from_policy(load_policy(LAB_POLICY)), netns=lab.netns("cr")).state()
    want = {
        label: {
            "rules": 1,
            "routes": [{"default": True, "gateway": gw, "proto": RT_PROTO_BGPCTL}],
            "address_owned": False,
        }  # containerlab.yml gives cr the probe sources itself
        for label, gw in (("use1/interconnect", USE1), ("usw2/interconnect", USW2))
    }
    return [] if state == want else [f"pins: {state}"]


def drill(lab: Lab, name: str, out: Path, topology: Path = TOPOLOGY) -> DrillReport:
    """Run the drill file ``name`` (of ``topology``'s drills) in ``lab`` as ``bgpctl lab drill`` does; print it."""
    report = run_drill(lab, load_drill(name, drills_dir(topology)), out_dir=out, progress=print)
    print(summary(report))
    return report


def held(report: DrillReport, name: str) -> float:
    """Seconds after its step (the fault, the restore) that the named check held (AssertionError if not)."""
    (r,) = [r for r in [*report.expect, *report.recover] if r.name == name]
    assert r.held and r.after_s is not None, summary(report)
    return r.after_s
