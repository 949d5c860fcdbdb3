"""Dual stack against a real FRR (docs/dualstack.md): bgpctl's plan for policies/examples/dual-stack.yaml, sent
by the Speaker (ExaBGP in node cr) to FRR in node peer, the corporate edge (tests/topologies/dualstack.clab.yml).

IPv6 routes reach the edge both ways the policy model offers: as MP-BGP IPv6 unicast over the IPv4 session
(the example as written), and over an IPv6 session of their own (a second edge peer of the same AS). Each
time FRR's ``show bgp ipv6 unicast json`` must hold exactly the plan's IPv6 routes with their global next hops,
its zebra must install them in the kernel (``ip -6 route``, ECMP over both regions), and when only use1's
IPv6 measurement goes down only the IPv6 media prefix leaves use1 (IPv4 on the same link stays).

Every check polls FRR's JSON or the kernel's until it matches or a named budget (bgpctl_lab.poll.BUDGETS) runs
out.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bgpctl.core.decide import path_keys
from bgpctl.core.plan import plan
from bgpctl.core.types import MEASURED_V6, Health, PathHealth, PathKey
from bgpctl.policy.model import Family, Policy
from bgpctl.speaker import Speaker
from bgpctl.speaker.backoff import Backoff
from bgpctl_lab.pytest_plugin import TopologyLab
from tests.speaker import lab as L
from tests.speaker.lab import LogTap
from tests.speaker.test_speaker_lab import CONVERGE, SESSION, SESSION_S, apoll

pytestmark = [
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and FRR"),
]

TOPOLOGY = Path(__file__).resolve().parents[1] / "topologies" / "dualstack.clab.yml"
EXAMPLE = Path(__file__).resolve().parents[2] / "policies" / "examples" / "dual-stack.yaml"
V4, V6 = "198.18.1.2", "2001:db8:1::2"  # cr's addresses: FRR's peerId of each session
MEDIA4, MEDIA6, API6 = "203.0.113.0/26", "2001:db8:c0::/64", "2001:db8:c0:80::/64"
TGWS4 = {"198.18.1.11", "198.18.1.12"}
TGWS6 = {"2001:db8:1::11", "2001:db8:1::12"}
MEDIA_USE1_V6 = PathKey("media", "use1", "interconnect", MEASURED_V6)


@pytest.fixture(scope="module")
def the_lab(module_topology_lab: TopologyLab) -> L.Lab:
    return L.Lab(module_topology_lab(TOPOLOGY))


def dual_policy(ipv6_session: bool) -> Policy:
    """The example as written (edge: IPv4 + IPv6 over one IPv4 session), or with ``ipv6_session`` its IPv6
    routes on an IPv6 session of their own (edge IPv4 only, edge6 IPv6 only, both AS 65010)."""
    doc = YAML(typ="safe").load(EXAMPLE.read_text())
    doc["speaker"]["exabgp"] = {
        "binary": str(Path(sys.executable).parent / "exabgp"),
        "user": "root",
        "graceful_restart": 120,
    }
    doc.pop("signals", None)  # the Speaker alone runs here
    if ipv6_session:
        edge = next(p for p in doc["peers"] if p["name"] == "edge")
        edge["families"] = ["ipv4-unicast"]
        doc["peers"].insert(1, {**edge, "name": "edge6", "address": "2001:db8:1::1", "families": ["ipv6-unicast"]})
    return Policy.model_validate_json(json.dumps(doc))


def bgp_next_hops(lab: L.Lab, afi: str, from_peer: str) -> dict[str, set[str]]:
    """FRR's BGP table: prefix -> the next hops of the paths ``from_peer`` sent (every ADD-PATH path)."""
    out: dict[str, set[str]] = {}
    for (prefix, _rx_id), path in L.frr_paths(lab, afi, from_peer).items():
        out.setdefault(prefix, set()).add(path.next_hop)
    return out


def kernel_gateways(lab: L.Lab, prefix: str) -> set[str]:
    """The gateways of the peer's kernel route to ``prefix`` (``ip -j route show``; both families)."""
    family = "-6" if ":" in prefix else "-4"
    out = lab.lab.exec("peer", ["ip", "-j", family, "route", "show", prefix], timeout=10).stdout
    routes: list[dict[str, Any]] = json.loads(out or "[]")
    gateways: set[str] = set()
    for r in routes:
        if r.get("protocol") != "bgp":
            continue
        gateways.update(h["gateway"] for h in r.get("nexthops", []) if "gateway" in h)
        if "gateway" in r:
            gateways.add(r["gateway"])
    return gateways


@pytest.mark.parametrize("ipv6_session", [False, True], ids=["mp-bgp-over-ipv4", "ipv6-session"])
def test_ipv6_routes_reach_frr_and_its_kernel_and_follow_ipv6_health(
    the_lab: L.Lab, tmp_path: Path, ipv6_session: bool
) -> None:
    policy = dual_policy(ipv6_session)
    v6_peer, v6_from = ("edge6", V6) if ipv6_session else ("edge", V4)
    tap = LogTap()
    up = {k: PathHealth(Health.UP) for k in path_keys(policy)}
    v6_down = up | {MEDIA_USE1_V6: PathHealth(Health.DOWN)}

    def frr_v6() -> dict[str, set[str]]:
        return bgp_next_hops(the_lab, "ipv6", v6_from)

    def frr_v4() -> dict[str, set[str]]:
        return bgp_next_hops(the_lab, "ipv4", V4)

    async def run() -> None:
        sp = Speaker(
            policy,
            tmp_path / "run",
            tap.log,
            exabgp_prefix=["ip", "netns", "exec", the_lab.cr],
            restart_backoff=Backoff(initial_s=0.5, maximum_s=5.0),
            retry_backoff=Backoff(initial_s=0.5, maximum_s=2.0),
        )
        await sp.start()
        try:
            await sp.wait_connected(SESSION_S)
            peers = ("edge", "edge6") if ipv6_session else ("edge",)
            await apoll(
                f"sessions {peers} up with ADD-PATH",
                lambda: (sp.sessions(), sp.add_path_send()),
                lambda s: all(s[0].get(p) == "up" and p in s[1] for p in peers),
                SESSION,
            )
            assert Family.IPV6_UNICAST in sp.negotiated_families()[v6_peer]
            first = plan(policy, up, None, 0.0, add_path=sp.add_path_send())
            assert {k.prefix for k in first.desired[v6_peer]} >= {MEDIA6, API6}
            await sp.sync(first.desired)
            got = await apoll(
                f"FRR's IPv6 table from {v6_from}: media and api via both regions",
                frr_v6,
                lambda t: t.get(MEDIA6) == TGWS6 and t.get(API6) == TGWS6,
                CONVERGE,
            )
            assert set(got) == {MEDIA6, API6}  # nothing else of ours, no IPv4 next hop on an IPv6 route
            await apoll("FRR's IPv4 table: media via both regions", frr_v4, lambda t: t.get(MEDIA4) == TGWS4, CONVERGE)
            if ipv6_session:
                assert all(":" not in p for p in frr_v4())  # the IPv4 session carries no IPv6 here
            await apoll(
                "kernel: ip -6 route media via both TGWs",
                lambda: kernel_gateways(the_lab, MEDIA6),
                lambda g: g == TGWS6,
                CONVERGE,
            )
            await apoll(
                "kernel: ip route media via both TGWs",
                lambda: kernel_gateways(the_lab, MEDIA4),
                lambda g: g == TGWS4,
                CONVERGE,
            )

            # only use1's IPv6 measurement goes down: only the IPv6 media prefix leaves use1
            second = plan(policy, v6_down, first, 1.0, add_path=sp.add_path_send())
            assert {(c.peer, c.key.prefix, c.kind.value) for c in second.changes if c.peer.startswith("edge")} == {
                (v6_peer, MEDIA6, "withdraw")
            }
            await sp.sync(second.desired)
            await apoll(
                "FRR's IPv6 table: media via usw2 only, api unchanged",
                frr_v6,
                lambda t: t.get(MEDIA6) == {"2001:db8:1::12"} and t.get(API6) == TGWS6,
                CONVERGE,
            )
            await apoll(
                "kernel: ip -6 route media via usw2 only",
                lambda: kernel_gateways(the_lab, MEDIA6),
                lambda g: g == {"2001:db8:1::12"},
                CONVERGE,
            )
            assert frr_v4().get(MEDIA4) == TGWS4 and kernel_gateways(the_lab, MEDIA4) == TGWS4  # IPv4 stayed

            third = plan(policy, up, second, 100.0, add_path=sp.add_path_send())
            await sp.sync(third.desired)
            await apoll(
                "kernel: ip -6 route media via both TGWs again",
                lambda: kernel_gateways(the_lab, MEDIA6),
                lambda g: g == TGWS6,
                CONVERGE,
            )
        finally:
            await sp.stop(withdraw=True)
            await apoll("FRR holds nothing of ours after stop", frr_v6, lambda t: not t, CONVERGE)
            await apoll("FRR holds no IPv4 route of ours after stop", frr_v4, lambda t: not t, CONVERGE)

    asyncio.run(run())
