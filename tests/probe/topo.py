"""A small namespace topology for the probe tests (prefix ``tbprb``), built and removed with ``ip``.

    cr --e1/e0-- tgw1 --e1/e0-- c1   (203.0.113.10, .138 and 2001:db8:113::10 on lo)
    cr --e2/e0-- tgw2 --e1/e0-- c2   (the same addresses on lo)

IPv4 and IPv6 (2001:db8:20N::/64 cr-tgwN, 2001:db8:21N::/64 tgwN-cN, probe sources 2001:db8:200::1/::2).

cr's main table points at region 2 (default via tgw2). The probe source addresses 198.18.200.1 (r1) and
198.18.200.2 (r2) are not configured: pinning adds them. Each tgw has an nft table ``tbprb`` with named
counters on its forward hook, per probe source, per DSCP, and for replies, so tests can see which
packets crossed which TGW. Veths are created inside the namespaces, never in the root namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PREFIX = "tbprb"
SRC = {"r1": "198.18.200.1", "r2": "198.18.200.2"}
TGW = {"r1": "198.18.201.2", "r2": "198.18.202.2"}
TABLE = {"r1": 201, "r2": 202}
TARGET = "203.0.113.10"
API_TARGET = "203.0.113.138"
SPOOF = "203.0.113.99"
SRC6 = {"r1": "2001:db8:200::1", "r2": "2001:db8:200::2"}
TGW6 = {"r1": "2001:db8:201::2", "r2": "2001:db8:202::2"}
TARGET6 = "2001:db8:113::10"

_NFT_TGW = """
table inet tbprb {
    counter from_r1 { }
    counter from_r2 { }
    counter stamp_ef { }
    counter reply_ef { }
    counter icmp_from_r1 { }
    counter tcp_from_r1 { }
    counter from_r1_v6 { }
    chain through {
        type filter hook forward priority 0; policy accept;
        ip saddr 198.18.200.1 counter name from_r1
        ip saddr 198.18.200.2 counter name from_r2
        udp dport 862 ip dscp ef counter name stamp_ef
        udp sport 862 ip dscp ef counter name reply_ef
        ip saddr 198.18.200.1 icmp type echo-request counter name icmp_from_r1
        ip saddr 198.18.200.1 tcp dport 443 counter name tcp_from_r1
        ip6 saddr 2001:db8:200::1 udp dport 862 ip6 dscp ef counter name from_r1_v6
    }
}
"""


def sh(*argv: str, check: bool = True, input: str | None = None) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, check=False, input=input, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


@dataclass(frozen=True)
class Topo:
    tag: str

    def ns(self, node: str) -> str:
        return f"{PREFIX}_{self.tag}_{node}"

    @property
    def nodes(self) -> list[str]:
        return ["cr", "tgw1", "tgw2", "c1", "c2"]

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


def _build(t: Topo) -> None:
    for node in t.nodes:
        sh("ip", "netns", "add", t.ns(node))
        # no duplicate address detection: addresses are usable at once (pinning adds source addresses)
        for conf in ("all", "default"):
            sh("ip", "netns", "exec", t.ns(node), "sysctl", "-q", "-w", f"net.ipv6.conf.{conf}.accept_dad=0")
        t.ip(node, "link", "set", "lo", "up")
    for i in (1, 2):
        tgw, c = f"tgw{i}", f"c{i}"
        t.ip("cr", "link", "add", f"e{i}", "type", "veth", "peer", "name", "e0", "netns", t.ns(tgw))
        t.ip(tgw, "link", "add", "e1", "type", "veth", "peer", "name", "e0", "netns", t.ns(c))
        t.ip("cr", "addr", "add", f"198.18.20{i}.1/30", "dev", f"e{i}")
        t.ip(tgw, "addr", "add", f"198.18.20{i}.2/30", "dev", "e0")
        t.ip(tgw, "addr", "add", f"198.18.21{i}.1/30", "dev", "e1")
        t.ip(c, "addr", "add", f"198.18.21{i}.2/30", "dev", "e0")
        t.ip(c, "addr", "add", f"{TARGET}/32", "dev", "lo")
        t.ip(c, "addr", "add", f"{API_TARGET}/32", "dev", "lo")
        t.ip("cr", "addr", "add", f"2001:db8:20{i}::1/64", "dev", f"e{i}")
        t.ip(tgw, "addr", "add", f"2001:db8:20{i}::2/64", "dev", "e0")
        t.ip(tgw, "addr", "add", f"2001:db8:21{i}::1/64", "dev", "e1")
        t.ip(c, "addr", "add", f"2001:db8:21{i}::2/64", "dev", "e0")
        t.ip(c, "addr", "add", f"{TARGET6}/128", "dev", "lo")
        for node, ifs in (("cr", [f"e{i}"]), (tgw, ["e0", "e1"]), (c, ["e0"])):
            for ifname in ifs:
                t.ip(node, "link", "set", ifname, "up")
        sh("ip", "netns", "exec", t.ns(tgw), "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        sh("ip", "netns", "exec", t.ns(tgw), "sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1")
        t.ip(tgw, "-6", "route", "add", "2001:db8:200::/64", "via", f"2001:db8:20{i}::1")
        t.ip(tgw, "-6", "route", "add", "2001:db8:113::/64", "via", f"2001:db8:21{i}::2")
        t.ip(c, "-6", "route", "add", "default", "via", f"2001:db8:21{i}::1")
        t.ip(tgw, "route", "add", "198.18.200.0/24", "via", f"198.18.20{i}.1")
        t.ip(tgw, "route", "add", "203.0.113.0/24", "via", f"198.18.21{i}.2")
        t.ip(c, "route", "add", "default", "via", f"198.18.21{i}.1")
        t.nft(tgw, "-f", "-", input=_NFT_TGW)
    t.ip("cr", "route", "add", "default", "via", TGW["r2"])  # the main table points at region 2
    t.ip("cr", "-6", "route", "add", "default", "via", TGW6["r2"])


def _teardown(t: Topo) -> None:
    for node in t.nodes:
        sh("ip", "netns", "del", t.ns(node), check=False)


@contextmanager
def topology(tag: str | None = None) -> Iterator[Topo]:
    t = Topo(tag or str(os.getpid()))
    _teardown(t)  # a previous run with the same tag that died before its clean-up
    try:
        _build(t)
        yield t
    finally:
        _teardown(t)


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
