"""The reference lab is dual-stack (containerlab.yml, lab/*/frr.conf, docs/dualstack.md): every link has a
2001:db8::/32 address, the Connect hosts their IPv6 endpoints, and the FRR nodes carry IPv6 unicast as MP-BGP
over their IPv4 sessions. In mode no-controller the TGWs announce the IPv6 Connect /64s to the edge, which
installs them as ECMP over both regions; the call meter runs over IPv6 from the agents and is answered by
both regions' responders.

Then bgpctl runs on cr (mode controller) with the lab's dual-stack policy (:func:`dual_lab_policy`): it probes
media over IPv6 too (STAMP from each path's probe_source_v6, pinned through the path's table) and announces the
IPv6 prefixes over MP-BGP. Breaking only IPv6 in region 1 (tgw-use1 stops forwarding IPv6) must take down only
``media/use1/interconnect/ipv6`` and move only the IPv6 media prefix at the edge; IPv4 on the same link stays.

Own lab ``ds<pid>`` (every check polls FRR's JSON or the kernel until it matches or a named budget runs out).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from ruamel.yaml import YAML

from bgpctl_lab.meter import run_meter
from bgpctl_lab.poll import eventually
from bgpctl_lab.pytest_plugin import CONTROLLER_CONVERGED_S, own_reference_lab
from bgpctl_lab.reference import ask_daemon
from bgpctl_lab.runner import Lab, start_services
from tests.lab.helpers import REPO, TOPOLOGY

pytestmark = [pytest.mark.lab, pytest.mark.slow]

LAB_PREFIX = "ds"
MEDIA6, SIGNALLING6, API6 = "2001:db8:c0::/64", "2001:db8:c0:40::/64", "2001:db8:c0:80::/64"
AGENTS6 = "2001:db8:a::/48"
TGWS6 = {"2001:db8:1::11", "2001:db8:1::12"}
MEDIA4 = "203.0.113.0/26"
TGWS4 = {"198.18.1.11", "198.18.1.12"}
V6_USE1 = "media/use1/interconnect/ipv6"
EXAMPLE = REPO / "policies" / "examples" / "dual-stack.yaml"
RETURN_S = 90.0  # IPv6 back on use1: voice hold_down_s 15 + rise_s 10 (the example's) + probes' window + margin


@pytest.fixture(scope="module")
def dlab() -> Iterator[Lab]:
    with own_reference_lab(LAB_PREFIX, TOPOLOGY, mode="no-controller") as lab:
        lab.wait_established()
        yield lab


def global_next_hops(lab: Lab, node: str, prefix: str) -> set[str]:
    """The global IPv6 next hops of every path ``node`` holds for ``prefix`` (``show bgp ipv6 unicast``)."""
    doc: dict[str, Any] = lab.vtysh_json(node, f"show bgp ipv6 unicast {prefix} json")
    return {
        h["ip"]
        for p in doc.get("paths", [])
        for h in p.get("nexthops", [])
        if h.get("scope", "global") == "global" and not str(h.get("ip", "")).startswith("fe80:")
    }


def test_the_edge_learns_the_ipv6_connect_prefixes_from_both_regions_over_mp_bgp(dlab: Lab) -> None:
    for prefix in (MEDIA6, SIGNALLING6, API6):
        eventually(
            f"edge: {prefix} from both TGWs in show bgp ipv6 unicast",
            budget="route_converged",
            probe=partial(global_next_hops, dlab, "edge", prefix),
            check=lambda hops: [] if hops == TGWS6 else [f"global next hops {sorted(hops)}"],
        )
    routes = dlab.vtysh_json("edge", "show bgp ipv6 unicast json")["routes"]
    assert set(routes) == {MEDIA6, SIGNALLING6, API6, AGENTS6}  # the filters let nothing else through
    eventually(
        "edge: the kernel forwards media over both regions (ip -6 route, ECMP)",
        budget="route_converged",
        probe=lambda: dlab.kernel_next_hops("edge", MEDIA6),
        check=lambda hops: [] if len(hops) == 2 else [f"next hops {hops}"],
    )
    for tgw in ("tgw-use1", "tgw-usw2"):
        eventually(
            f"{tgw}: the agents' IPv6 prefix via the edge",
            budget="route_converged",
            probe=partial(global_next_hops, dlab, tgw, AGENTS6),
            check=lambda hops: [] if hops == {"2001:db8:1::1"} else [f"global next hops {sorted(hops)}"],
        )


def test_the_call_meter_runs_over_ipv6_and_both_regions_answer(dlab: Lab) -> None:
    eventually(
        "edge: media over both regions",
        budget="route_converged",
        probe=lambda: dlab.kernel_next_hops("edge", MEDIA6),
        check=lambda hops: [] if len(hops) == 2 else [f"next hops {hops}"],
    )
    # a fresh IPv6 path resolves its neighbours on first use, hop by hop, both regions (in CI beside other labs:
    # no answer for the first 0.5 s once): warm it with short runs until one loses nothing, then measure
    eventually(
        "agents -> 2001:db8:c0::10: a 1 s call meter over IPv6 loses nothing (neighbour discovery done)",
        budget="ipv6_warm",
        probe=lambda: run_meter(dlab.netns("agents"), "2001:db8:c0::10", 9000, flows=12, seconds=1.0),
        check=lambda r: [] if r.sent > 0 and r.lost == 0 else [f"{r.lost} of {r.sent} lost"],
    )
    report = run_meter(dlab.netns("agents"), "2001:db8:c0::10", 9000, flows=12, seconds=3.0)
    assert report.sent > 0 and report.lost == 0, report.model_dump_json()
    assert set(report.regions) == {"use1", "usw2"}  # ECMP (L4 hash) spreads the flows over both regions


def dual_lab_policy() -> str:
    """policies/examples/dual-stack.yaml (policies/lab.yaml made dual-stack) as the reference lab runs it: every
    peer's IPv6 routes as MP-BGP over its IPv4 session (the lab's FRR nodes have no IPv6 sessions, so the
    example's ``tgw-usw2-v6`` session becomes MP-BGP on ``tgw-usw2``)."""
    doc = YAML(typ="safe").load(EXAMPLE.read_text())
    doc["peers"] = [p for p in doc["peers"] if p["name"] != "tgw-usw2-v6"]
    for peer in doc["peers"]:
        peer["families"] = ["ipv4-unicast", "ipv6-unicast"]
    del doc["regions"]["usw2"]["paths"]["interconnect"]["peer_v6"]
    doc["speaker"]["exabgp"] = YAML(typ="safe").load((REPO / "policies" / "lab.yaml").read_text())["speaker"]["exabgp"]
    out = io.StringIO()
    YAML().dump(doc, out)
    return out.getvalue()


def health(lab: Lab) -> dict[str, str]:
    """``bgpctl status --json``: every measured path (IPv6 measurements end in /ipv6) -> its health."""
    return {p["path"]: p["health"] for p in ask_daemon(lab, "status")["paths"]}


def hops_from_cr(lab: Lab, prefix: str) -> set[str]:
    """The next hops of the edge's paths from cr for ``prefix`` (IPv4 or IPv6 table)."""
    afi = "ipv6" if ":" in prefix else "ipv4"
    doc: dict[str, Any] = lab.vtysh_json("edge", f"show bgp {afi} unicast {prefix} json")
    return {
        h["ip"]
        for p in doc.get("paths", [])
        if p.get("peer", {}).get("peerId") == "198.18.1.2"
        for h in p.get("nexthops", [])
        if not str(h.get("ip", "")).startswith("fe80:")
    }


def ipv6_forwarding(lab: Lab, node: str, on: bool) -> None:
    lab.exec(node, ["sysctl", "-q", "-w", f"net.ipv6.conf.all.forwarding={1 if on else 0}"], timeout=10)


def test_bgpctl_judges_ipv6_apart_and_an_ipv6_only_break_moves_only_ipv6(dlab: Lab) -> None:
    (dlab.node_dir("cr") / "policy.yaml").write_text(dual_lab_policy())  # `install` keeps a file already there
    dlab.set_mode("controller")
    start_services(dlab)
    paths = eventually(
        "every measurement of the dual-stack policy up, IPv6 ones included",
        budget=CONTROLLER_CONVERGED_S,
        probe=lambda: health(dlab),
        check=lambda h: [f"{k} {v}" for k, v in h.items() if v != "up"] or ([] if h else ["no paths"]),
        interval_s=0.5,
    ).value
    assert {k for k in paths if k.endswith("/ipv6")} == {"media/use1/interconnect/ipv6", "media/usw2/interconnect/ipv6"}
    for prefix, want in ((MEDIA6, TGWS6), (API6, TGWS6), (MEDIA4, TGWS4)):
        eventually(
            f"edge: {prefix} from cr via both regions",
            budget="route_converged",
            probe=partial(hops_from_cr, dlab, prefix),
            check=lambda hops, w=want: [] if hops == w else [f"next hops {sorted(hops)}"],  # type: ignore[misc]
        )
    eventually(
        "edge kernel: ip -6 route media via both TGWs' global addresses",
        budget="route_converged",
        probe=lambda: set(dlab.kernel_next_hops("edge", MEDIA6)),
        check=lambda hops: [] if hops == TGWS6 else [f"next hops {sorted(hops)}"],
    )

    ipv6_forwarding(dlab, "tgw-use1", on=False)  # region 1's IPv6 breaks; its IPv4 forwarding goes on
    try:
        moved = eventually(
            "edge kernel: ip -6 route media via usw2 only",
            budget="route_converged",
            probe=lambda: set(dlab.kernel_next_hops("edge", MEDIA6)),
            check=lambda hops: [] if hops == {"2001:db8:1::12"} else [f"next hops {sorted(hops)}"],
            interval_s=0.02,
        )
        print(f"IPv6-only break on use1: edge's IPv6 media route moved after {moved.elapsed_s * 1000:.0f} ms")
        # suspect first (unanswered past the adaptive RTO: the route moves), down once the probes' timeout passes
        now = eventually(
            "bgpctl: media/use1/interconnect/ipv6 down, every other measurement up",
            budget="route_converged",
            probe=lambda: health(dlab),
            check=lambda h: [] if {k: v for k, v in h.items() if v != "up"} == {V6_USE1: "down"} else [str(h)],
        ).value
        assert now["media/use1/interconnect"] == "up"  # IPv4 on the same link
        assert hops_from_cr(dlab, MEDIA6) == {"2001:db8:1::12"}
        assert hops_from_cr(dlab, API6) == TGWS6  # api's IPv6 follows its IPv4 probes (no address_v6)
        assert hops_from_cr(dlab, MEDIA4) == TGWS4 and set(dlab.kernel_next_hops("edge", MEDIA4)) == TGWS4
        report = run_meter(dlab.netns("agents"), "2001:db8:c0::10", 9000, flows=12, seconds=2.0)
        assert report.lost == 0 and set(report.regions) == {"usw2"}, report.model_dump_json()
        report = run_meter(dlab.netns("agents"), "203.0.113.10", 9000, flows=12, seconds=2.0)
        assert report.lost == 0 and set(report.regions) == {"use1", "usw2"}, report.model_dump_json()
    finally:
        ipv6_forwarding(dlab, "tgw-use1", on=True)
    eventually(
        "edge kernel: ip -6 route media via both TGWs again",
        budget=RETURN_S,
        probe=lambda: set(dlab.kernel_next_hops("edge", MEDIA6)),
        check=lambda hops: [] if hops == TGWS6 else [f"next hops {sorted(hops)}"],
        interval_s=0.5,
    )
    assert all(v == "up" for v in health(dlab).values())
