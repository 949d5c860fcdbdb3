"""The probe tests' topology, described in tests/topologies/probe.clab.yml and run by the lab runner.

    cr --e1/e0-- tgw1 --e1/e0-- c1   (203.0.113.10, .138 and 2001:db8:113::10 on lo)
    cr --e2/e0-- tgw2 --e1/e0-- c2   (the same addresses on lo)

IPv4 and IPv6 (2001:db8:20N::/64 cr-tgwN, 2001:db8:21N::/64 tgwN-cN, probe sources 2001:db8:200::1/::2).

cr's main table points at region 2 (default via tgw2). The probe source addresses 198.18.200.1 (r1) and
198.18.200.2 (r2) are not configured: pinning adds them. Each tgw has an nft table ``tbprb`` with named
counters on its forward hook, per probe source, per DSCP, and for replies, so tests can see which
packets crossed which TGW. Tests get it from the ``topology_lab`` fixture (:func:`topo_of`); the
benchmark from :func:`topology`, which brings it up as a lab of its own and always takes it down.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bgpctl_lab import runner
from bgpctl_lab.runner import Lab

TOPOLOGY = Path(__file__).resolve().parents[1] / "topologies" / "probe.clab.yml"
SRC = {"r1": "198.18.200.1", "r2": "198.18.200.2"}
TGW = {"r1": "198.18.201.2", "r2": "198.18.202.2"}
TABLE = {"r1": 201, "r2": 202}
TARGET = "203.0.113.10"
API_TARGET = "203.0.113.138"
SPOOF = "203.0.113.99"
SRC6 = {"r1": "2001:db8:200::1", "r2": "2001:db8:200::2"}
TGW6 = {"r1": "2001:db8:201::2", "r2": "2001:db8:202::2"}
TARGET6 = "2001:db8:113::10"


def sh(*argv: str, check: bool = True, input: str | None = None) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, check=False, input=input, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


@dataclass(frozen=True)
class Topo:
    lab: Lab

    def ns(self, node: str) -> str:
        return self.lab.netns(node)

    @property
    def nodes(self) -> list[str]:
        return self.lab.nodes()

    def ip(self, node: str, *args: str, check: bool = True) -> str:
        return sh("ip", "-n", self.ns(node), *args, check=check)

    def nft(self, node: str, *args: str, input: str | None = None) -> str:
        return sh("ip", "netns", "exec", self.ns(node), "nft", *args, input=input)

    def counters(self, node: str) -> dict[str, int]:
        data = json.loads(self.nft(node, "-j", "list", "counters", "table", "inet", "tbprb"))
        return {o["counter"]["name"]: int(o["counter"]["packets"]) for o in data["nftables"] if "counter" in o}

    def policy_file(
        self,
        directory: Path,
        *,
        media_interval_ms: int = 20,
        media_timeout_ms: int = 200,
        protocol: str = "udp",
        port: int | None = 862,
        dscp: str = "ef",
    ) -> Path:
        port_part = "" if port is None else f", port: {port}"
        text = POLICY.format(
            interval=media_interval_ms, timeout=media_timeout_ms, protocol=protocol, port_part=port_part, dscp=dscp
        )
        path = directory / "tbprb-policy.yaml"
        path.write_text(text)
        return path


@contextmanager
def topology(name: str) -> Iterator[Topo]:
    """The topology up as lab ``name`` (outside pytest: the benchmark); down on the way out, also on failure."""
    with runner.running(TOPOLOGY, name) as lab:
        yield Topo(lab)


POLICY = """\
version: 1
speaker: {{ local_as: 65000, router_id: 198.18.201.1, local_addresses: [198.18.201.1] }}
peers:
  - {{ name: tgw1, address: 198.18.201.2, peer_as: 64512, role: transit-gateway }}
  - {{ name: tgw2, address: 198.18.202.2, peer_as: 64513, role: transit-gateway }}
  - {{ name: edge, address: 198.18.201.1, peer_as: 65010, role: edge }}
regions:
  r1:
    paths:
      p: {{ peer: tgw1, next_hop: 198.18.201.2, probe_source: 198.18.200.1, table: 201 }}
  r2:
    paths:
      p: {{ peer: tgw2, next_hop: 198.18.202.2, probe_source: 198.18.200.2, table: 202 }}
services:
  media:
    prefixes: [203.0.113.0/26]
    sla: voice
    probe:
      interval_ms: {interval}
      timeout_ms: {timeout}
      targets:
        r1: {{ address: 203.0.113.10, protocol: {protocol}{port_part}, dscp: {dscp} }}
        r2: {{ address: 203.0.113.10, protocol: {protocol}{port_part}, dscp: {dscp} }}
  api:
    prefixes: [203.0.113.128/26]
    sla: voice
    probe:
      interval_ms: 50
      timeout_ms: 500
      targets:
        r1: {{ address: 203.0.113.138, protocol: tcp, port: 443, dscp: af21 }}
        r2: {{ address: 203.0.113.138, protocol: tcp, port: 443, dscp: af21 }}
sla_classes:
  voice:
    degraded: {{ rtt_ms: 150, loss_pct: 1 }}
    down: {{ rtt_ms: 400, loss_pct: 10 }}
actions:
  preferred: {{ edge: {{ med: 0 }}, transit-gateway: {{ med: 0 }} }}
  standby: {{ edge: {{ med: 100 }}, transit-gateway: {{ med: 100 }} }}
  degraded: {{ edge: {{ med: 500 }}, transit-gateway: {{ med: 500 }} }}
  down: {{ edge: {{ withdraw: true }}, transit-gateway: {{ withdraw: true }} }}
guards:
  allowlist: [203.0.113.0/24]
"""
