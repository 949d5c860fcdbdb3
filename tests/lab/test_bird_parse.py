"""birdc text -> structures (bgpctl_lab.bird), on output captured from BIRD 2.0.12 in the lab."""

from __future__ import annotations

import pytest

from bgpctl.errors import LabError
from bgpctl_lab import bird

PROTOCOLS = "\n".join(  # birdc pads the Info column with spaces
    [
        "BIRD 2.0.12 ready.",
        "Name       Proto      Table      State  Since         Info",
        "device1    Device     ---        up     03:58:59.092  ",
        "direct1    Direct     ---        up     03:58:59.092  ",
        "kernel1    Kernel     master4    up     03:58:59.092  ",
        "controller BGP        ---        up     03:59:01.324  Established   ",
        "tgw_use1   BGP        ---        down   03:58:59.240  ",
        "tgw_usw2   BGP        ---        start  03:58:59.242  Active        Socket: Connection refused",
    ]
)

# with `add paths rx`: both regions' paths, the best marked '*'
ROUTES = """BIRD 2.0.12 ready.
Table master4:
203.0.113.128/26     unicast [controller 04:04:48.282 from 198.18.1.2] * (100) [AS65000i]
\tvia 198.18.1.11 on eth1
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65000
\tBGP.next_hop: 198.18.1.11
\tBGP.med: 0
\tBGP.local_pref: 100
                     unicast [controller 04:04:48.282 from 198.18.1.2] (100) [AS65000i]
\tvia 198.18.1.12 on eth1
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65000 65000
\tBGP.next_hop: 198.18.1.12
\tBGP.med: 100
\tBGP.local_pref: 100
"""

ECMP = (
    '[{"dst":"203.0.113.0/26","protocol":"bird","metric":32,"flags":[],"nexthops":[{"gateway":"198.18.1.11",'
    '"dev":"eth1","weight":1,"flags":[]},{"gateway":"198.18.1.12","dev":"eth1","weight":1,"flags":[]}]}]'
)
SINGLE = '[{"dst":"203.0.113.0/26","gateway":"198.18.1.11","dev":"eth1","protocol":"bird","metric":32,"flags":[]}]'


def test_protocols_and_sessions() -> None:
    protos = bird.parse_protocols(PROTOCOLS)
    assert set(protos) == {"device1", "direct1", "kernel1", "controller", "tgw_use1", "tgw_usw2"}
    assert protos["controller"] == bird.Protocol("controller", "BGP", "up", "Established")
    # tgw_use1 is disabled (down, no info): not a session that must come up
    assert bird.bgp_sessions(protos) == {"controller": "Established", "tgw_usw2": "Active"}


def test_routes_of_a_prefix() -> None:
    routes = bird.parse_routes(ROUTES)
    assert [(r.prefix, r.source, r.best, r.next_hops) for r in routes] == [
        ("203.0.113.128/26", "controller", True, ("198.18.1.11",)),
        ("203.0.113.128/26", "controller", False, ("198.18.1.12",)),
    ]


def test_kernel_hops_and_the_frr_shaped_route() -> None:
    assert bird.kernel_hops(ECMP) == ["198.18.1.11", "198.18.1.12"]
    assert bird.kernel_hops(SINGLE) == ["198.18.1.11"]
    assert bird.kernel_hops("[]") == []
    doc = bird.route_json("203.0.113.128/26", bird.parse_routes(ROUTES), ["198.18.1.11"])
    entry = doc["203.0.113.128/26"][0]
    assert entry["selected"] and entry["nexthops"] == [{"ip": "198.18.1.11", "active": True, "fib": True}]
    assert bird.route_json("203.0.113.0/26", bird.parse_routes(ROUTES), []) == {}  # no route: nothing matches
    with pytest.raises(LabError, match="did not return JSON"):
        bird.kernel_hops("Error: ...")


def test_only_route_checks_are_answered() -> None:
    assert bird.route_command("show ip route 203.0.113.0/26 json") == "203.0.113.0/26"
    assert bird.route_command("show bgp summary json") is None
    assert bird.route_command("show ip route 203.0.113.0/26 json; reboot") is None
