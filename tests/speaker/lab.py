"""The speaker's lab, described in tests/topologies/speaker.clab.yml and run by the lab runner: node ``cr``
(ExaBGP, run by the test's Speaker) and node ``peer`` (a real FRR zebra + bgpd, AS 65010, config
tests/topologies/speaker/frr.conf). One veth pair, IPv4 198.18.1.0/24 and IPv6 2001:db8:1::/64.

The ``module_topology_lab`` fixture brings it up as lab ``tl<pid>_<n>`` and takes it down (every process
in its namespaces, then the namespaces) when the module ends, also on failure.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from ruamel.yaml import YAML

from bgpctl.policy.model import Policy
from bgpctl_lab import frr, netns, runner

TOPOLOGY = Path(__file__).resolve().parents[1] / "topologies" / "speaker.clab.yml"
MD5_SECRET = "tbspk-md5-s3cret"  # the password of tests/topologies/speaker/frr.conf


@dataclass(frozen=True)
class Lab:
    lab: runner.Lab

    @property
    def cr(self) -> str:
        """cr's network namespace (ExaBGP runs there)."""
        return self.lab.netns("cr")

    @property
    def peer(self) -> str:
        """The FRR peer's network namespace."""
        return self.lab.netns("peer")

    def vtysh(self, *commands: str) -> str:
        return frr.vtysh(self.peer, commands, timeout=20)

    def vtysh_json(self, command: str) -> Any:
        return json.loads(self.vtysh(command))

    def bgp_routes(self, afi: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        """FRR's ``show bgp AFI unicast json`` routes: prefix -> paths."""
        doc = self.vtysh_json(f"show bgp {afi} unicast json")
        return dict(doc.get("routes", {}))

    def kernel_routes(self, prefix: str) -> str:
        return self.lab.exec("peer", ["ip", "route", "show", prefix], timeout=10).stdout.strip()

    def neighbor(self, address: str) -> dict[str, Any]:
        doc = self.vtysh_json(f"show bgp neighbors {address} json")
        return dict(doc.get(address, {}))

    def cr_pids(self) -> list[int]:
        """Every process in cr's network namespace."""
        nsid = netns.ns_id(self.cr)
        return netns.pids_in([nsid]) if nsid is not None else []


def make_policy(**speaker_exabgp: Any) -> Policy:
    """The lab policy (policies/lab.yaml) with this lab's peers: edge (IPv4, MD5 from $TBSPK_MD5, GTSM,
    ADD-PATH send), edge6 (IPv6) on the FRR in tbspk_peer, and tgw-use1 (configured, never reachable)."""
    root = Path(__file__).resolve().parents[2]
    doc = YAML(typ="safe").load((root / "policies" / "lab.yaml").read_text())
    doc["speaker"]["local_addresses"] = ["198.18.1.2", "2001:db8:1::2"]
    doc["speaker"]["exabgp"] = {
        "binary": str(Path(sys.executable).parent / "exabgp"),
        "user": "root",
        "graceful_restart": 120,
        **speaker_exabgp,
    }
    doc["peers"] = [
        {
            "name": "edge",
            "address": "198.18.1.1",
            "peer_as": 65010,
            "role": "edge",
            "timers": {"hold_time": 9},
            "md5_password": {"env": "TBSPK_MD5"},
            "ttl_security": True,
            "add_path": "send",
        },
        {
            "name": "edge6",
            "address": "2001:db8:1::1",
            "peer_as": 65010,
            "role": "edge",
            "families": ["ipv6-unicast"],
            "timers": {"hold_time": 9},
        },
        {
            "name": "tgw-use1",
            "address": "198.18.1.11",
            "peer_as": 64512,
            "role": "transit-gateway",
            "timers": {"hold_time": 9},
        },
    ]
    doc["guards"]["allowlist"] = ["203.0.113.0/24", "192.0.2.0/24", "2001:db8:100::/48"]
    return Policy.model_validate_json(json.dumps(doc))


@dataclass(frozen=True)
class FrrPath:
    next_hop: str
    med: int | None
    as_path: str
    communities: tuple[str, ...]
    large_communities: tuple[str, ...]
    stale: bool


def frr_paths(the_lab: Lab, afi: str, from_peer: str) -> dict[tuple[str, int], FrrPath]:
    """Every path FRR holds from ``from_peer``: (prefix, ADD-PATH rx id) -> attributes, read from FRR's JSON."""
    out: dict[tuple[str, int], FrrPath] = {}
    for prefix, paths in the_lab.bgp_routes(afi).items():
        if not any(p.get("peerId") == from_peer for p in paths):
            continue
        detail = the_lab.vtysh_json(f"show bgp {afi} unicast {prefix} json")
        for p in detail.get("paths", []):
            if p.get("peer", {}).get("peerId") != from_peer:
                continue
            out[(prefix, int(p.get("addpathRxId", 0)))] = FrrPath(
                next_hop=p["nexthops"][0]["ip"],
                med=p.get("metric"),
                as_path=p.get("aspath", {}).get("string", ""),
                communities=tuple(p.get("community", {}).get("list", [])),
                large_communities=tuple(p.get("largeCommunity", {}).get("list", [])),
                stale=bool(p.get("stale", False)),
            )
    return out


def expected_paths(routes: dict[Any, Any]) -> dict[tuple[str, int], FrrPath]:
    """What FRR should hold for a peer's part of a bgpctl Rib."""
    return {
        (k.prefix, k.path_id): FrrPath(
            a.next_hop,
            a.med if a.med is not None else None,
            " ".join(str(x) for x in a.as_path),
            tuple(a.communities),
            tuple(a.large_communities),
            False,
        )
        for k, a in routes.items()
    }


class LogTap:
    """A structlog logger that keeps every event (all levels) as a dict, and its JSON text."""

    def __init__(self) -> None:
        self.sink = structlog.testing.CapturingLogger()
        self.log: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
            self.sink,
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        )

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        docs = [json.loads(c.args[0]) for c in self.sink.calls]
        return [d for d in docs if name is None or d["event"] == name]

    def text(self) -> str:
        return "\n".join(str(c.args[0]) for c in self.sink.calls)
