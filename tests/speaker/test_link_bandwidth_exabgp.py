"""The link-bandwidth community as ExaBGP itself reads it: every weighted announce line bgpctl writes is
parsed by ExaBGP 5's own API route parser (``Configuration.partial('static', ...)``, what its reactor runs
for ``announce attributes``), and the attribute it would send is the draft-ietf-idr-link-bandwidth extended
community: type 0x40, sub-type 0x04, the local AS (AS_TRANS for a 4-octet one) and the weight times
1 Mbit/s as an IEEE 32-bit float in bytes per second, exactly."""

from __future__ import annotations

import struct

import pytest
from exabgp.bgp.message.update.attribute import Attribute

from bgpctl.core.types import RouteAttrs, RouteKey
from bgpctl.speaker import commands
from tests.speaker.exabgp_parser import exabgp_routes
from tests.speaker.lab import make_policy


def exabgp_reads(line: str) -> list[bytes]:
    """The extended communities (8 bytes each) ExaBGP's API parser makes of ``neighbor X announce ...``."""
    (change,) = exabgp_routes(line)
    return [c.community for c in change.attributes[Attribute.CODE.EXTENDED_COMMUNITY].communities]


@pytest.mark.parametrize(("local_as", "asn"), [(65000, 65000), (4200000000, commands.AS_TRANS)])
@pytest.mark.parametrize("weight", [1, 5, 20, 80, 95, 1000])
def test_exabgp_sends_the_weight_as_link_bandwidth(local_as: int, asn: int, weight: int) -> None:
    policy = make_policy()
    policy = policy.model_copy(update={"speaker": policy.speaker.model_copy(update={"local_as": local_as})})
    attrs = RouteAttrs("198.18.1.11", (local_as,), 0, weight=weight)
    line = commands.announce_line(policy, "edge", RouteKey("203.0.113.0/26"), attrs)
    (raw,) = exabgp_reads(line)
    assert raw[:2] == b"\x40\x04"  # non-transitive two-octet-AS specific, link bandwidth
    got_asn, bandwidth = struct.unpack("!Hf", raw[2:8])
    assert got_asn == asn
    assert bandwidth == weight * commands.LINK_BANDWIDTH_UNIT  # bytes/s, exact in the float


def test_a_route_without_weight_has_no_extended_community() -> None:
    line = commands.announce_line(
        make_policy(), "edge", RouteKey("203.0.113.0/26"), RouteAttrs("198.18.1.11", (65000,))
    )
    assert "extended-community" not in line
