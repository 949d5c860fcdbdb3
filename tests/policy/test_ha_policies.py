"""The HA lab's two policies are policies/lab.yaml plus what differs per host, and nothing else.

One source of truth: lab.yaml. The HA policies differ from it only in the speaker's addresses, the
probe sources (each controller probes from its own addresses), the ``ha`` section and the graceful-restart
time (a pair's is short: docs/ha.md, defect 2); both carry the same penalty and opposite roles (docs/ha.md).
"""

from __future__ import annotations

from typing import Any

from bgpctl.core.ha import is_secondary
from bgpctl.policy.load import load_policy
from tests.core.plans.support import POLICIES, deep_merge, read_yaml


def _host(address: str, sources: tuple[str, str], role: str) -> dict[str, Any]:
    return {
        # the pair's graceful-restart time: shorter than a single controller's (docs/ha.md, defect 2)
        "speaker": {"router_id": address, "local_addresses": [address], "exabgp": {"graceful_restart": 30}},
        "regions": {
            "use1": {"paths": {"interconnect": {"probe_source": sources[0]}}},
            "usw2": {"paths": {"interconnect": {"probe_source": sources[1]}}},
        },
        "ha": {
            "role": role,
            "secondary": {"prepend": 4, "med": 1000, "transit_gateway_communities": ["7224:7100"]},
        },
    }


def test_ha_policies_are_the_lab_policy_plus_the_host_part() -> None:
    lab = read_yaml((POLICIES / "lab.yaml").read_text())
    for name, patch in {
        "lab-ha-cr1.yaml": _host("198.18.1.2", ("198.18.1.21", "198.18.1.22"), "primary"),
        "lab-ha-cr2.yaml": _host("198.18.1.3", ("198.18.1.23", "198.18.1.24"), "secondary"),
    }.items():
        assert read_yaml((POLICIES / name).read_text()) == deep_merge(lab, patch), name


def test_roles() -> None:
    assert not is_secondary(load_policy(POLICIES / "lab-ha-cr1.yaml"))
    assert is_secondary(load_policy(POLICIES / "lab-ha-cr2.yaml"))
    assert not is_secondary(load_policy(POLICIES / "lab.yaml"))
