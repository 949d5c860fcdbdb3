"""Commands that carry several prefixes, as ExaBGP itself reads them: every line :func:`bgpctl.speaker.commands.batch`
writes is parsed by ExaBGP 5's own API parser (``Configuration.partial('static', ...)``, what its reactor runs for
``announce attributes`` / ``withdraw attributes``), and gives exactly one route per change of the command: its
prefix, path id, next hop and attributes; IPv4 and IPv6, with and without ADD-PATH path ids."""

from __future__ import annotations

import ipaddress

import pytest
from exabgp.bgp.message.update.attribute import Attribute

from bgpctl.core.types import ChangeKind, RouteAttrs, RouteChange, RouteKey
from bgpctl.speaker import commands
from tests.speaker.exabgp_parser import exabgp_routes
from tests.speaker.lab import make_policy

POLICY = make_policy()


def exabgp_reads(line: str) -> list[tuple[str, str, str, int | None]]:
    """(prefix, path-information, next hop, MED) of each route ExaBGP's API parser makes of ``line``."""
    out = []
    for change in exabgp_routes(line):
        med = change.attributes.get(Attribute.CODE.MED)
        out.append(
            (
                change.nlri.cidr.prefix(),
                str(change.nlri.path_info),
                str(change.nlri.nexthop),
                None if med is None else med.med,
            )
        )
    return out


V4 = [f"203.0.113.{4 * i}/30" for i in range(64)]
V6 = [str(ipaddress.IPv6Network(f"2001:db8:100:{i:x}::/64")) for i in range(600)]  # more than one line; canonical


@pytest.mark.parametrize(
    ("peer", "prefixes", "path_id", "attrs"),
    [
        ("edge", V4, 2, RouteAttrs("198.18.1.12", (65000, 65000), 100, ("65000:200",), ("65000:1:2",), 40)),
        ("edge", V4, 0, RouteAttrs("198.18.1.11", (65000,), 0)),
        ("edge6", V6, 0, RouteAttrs("2001:db8:1::2", (65000,), 7, ("65000:600",))),
        ("tgw-use1", ["192.0.2.0/24", "192.0.2.0/25"], 0, RouteAttrs("self", (), None)),
    ],
    ids=["ipv4 add-path, every attribute", "ipv4 path id 0", "ipv6 over several lines", "next-hop self"],
)
def test_exabgp_reads_one_route_per_prefix_of_a_batch(
    peer: str, prefixes: list[str], path_id: int, attrs: RouteAttrs
) -> None:
    announces = [RouteChange(peer, ChangeKind.ANNOUNCE, RouteKey(p, path_id), attrs) for p in prefixes]
    cmds = commands.batch(POLICY, announces)
    assert len(cmds) == (1 if len(prefixes) < 100 else 2)  # 600 IPv6 prefixes: two lines of at most 8,192
    pi = f" path-information {ipaddress.IPv4Address(path_id)}" if path_id else ""
    read = [r for cmd in cmds for r in exabgp_reads(cmd.line)]
    assert [r[0] for r in read] == [str(ipaddress.ip_network(p)) for p in prefixes]
    assert {r[1] for r in read} == {pi}
    assert {r[2].lower() for r in read} == {attrs.next_hop.lower()}
    assert {r[3] for r in read} == {attrs.med}

    held = {peer: {RouteKey(p, path_id): attrs for p in prefixes}}
    withdraws = [RouteChange(peer, ChangeKind.WITHDRAW, RouteKey(p, path_id), None) for p in prefixes]
    read = [r for cmd in commands.batch(POLICY, withdraws, held) for r in exabgp_reads(cmd.line)]
    assert [r[0] for r in read] == [str(ipaddress.ip_network(p)) for p in prefixes]
    assert {r[1] for r in read} == {pi}
