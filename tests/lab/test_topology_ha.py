"""The HA lab's files (docs/ha.md): containerlab-ha.yml is containerlab.yml with two controller hosts, its FRR
configurations are lab/<node>/frr.conf plus the HA lines, its services are lab/services.yaml's plus a daemon
per controller, and the controllers' addresses are their policies'. No root needed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from bgpctl.policy.load import load_policy
from bgpctl_lab.services import load_services, services_file
from bgpctl_lab.topology import load, schema_problems

ROOT = Path(__file__).resolve().parents[2]
HA = ROOT / "containerlab-ha.yml"
CONTROLLERS = {"cr1": "lab-ha-cr1.yaml", "cr2": "lab-ha-cr2.yaml"}


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def test_the_ha_topology_is_valid_containerlab() -> None:
    assert schema_problems(_yaml(HA), str(HA)) == []
    topo = load(HA)  # the runner's loader accepts it
    assert sorted(topo.frr_nodes()) == ["cr1", "cr2", "edge", "tgw-use1", "tgw-usw2"]


def test_the_ha_topology_is_containerlab_yml_with_two_controllers() -> None:
    base, ha = _yaml(ROOT / "containerlab.yml"), _yaml(HA)
    bnodes, hnodes = base["topology"]["nodes"], ha["topology"]["nodes"]
    assert set(hnodes) == (set(bnodes) - {"cr"}) | {"cr1", "cr2"}
    for name in ("agents", "connect-use1", "connect-usw2"):
        assert hnodes[name] == bnodes[name], name
    for name in ("edge", "tgw-use1", "tgw-usw2"):
        assert {k: v for k, v in hnodes[name].items() if k != "binds"} == {
            k: v for k, v in bnodes[name].items() if k != "binds"
        }
        assert hnodes[name]["binds"] == [b.replace(f"lab/{name}/", f"lab/ha/{name}/") for b in bnodes[name]["binds"]]
    assert hnodes["ic"]["exec"] == [
        line
        for x in bnodes["ic"]["exec"]
        for line in ([x] if "cr " not in f"{x} " else [x.replace("cr ", "cr1 "), x.replace("cr ", "cr2 ")])
    ]
    cr_links = [{"endpoints": ["cr1:eth1", "ic:cr1"]}, {"endpoints": ["cr2:eth1", "ic:cr2"]}]
    assert ha["topology"]["links"] == cr_links + [
        link for link in base["topology"]["links"] if link != {"endpoints": ["cr:eth1", "ic:cr"]}
    ]


def test_each_controller_has_its_policy_addresses() -> None:
    nodes = _yaml(HA)["topology"]["nodes"]
    for node, file in CONTROLLERS.items():
        policy = load_policy(ROOT / "policies" / file)
        assert nodes[node]["env"] == {"BGPCTL_POLICY": f"policies/{file}"}
        added = [line.split()[3].split("/")[0] for line in nodes[node]["exec"] if line.startswith("ip addr add")]
        sources = [str(p.probe_source) for r in policy.regions.values() for p in r.paths.values()]
        assert added == [str(policy.speaker.local_addresses[0]), *sources]


def test_the_ha_lab_is_dual_stack_as_the_reference_lab() -> None:
    """cr1 has cr's IPv6 addresses (containerlab.yml), cr2 its own beside them; every other node's IPv6 lines are
    containerlab.yml's (test_the_ha_topology_is_containerlab_yml_with_two_controllers), and the HA FRR files
    carry lab/<node>/frr.conf's IPv6 lines (test_the_ha_frr_configs_are_the_lab_ones_plus_the_ha_lines)."""
    base, nodes = _yaml(ROOT / "containerlab.yml")["topology"]["nodes"], _yaml(HA)["topology"]["nodes"]

    def v6(node: dict[str, Any]) -> list[str]:
        return [line for line in node["exec"] if line.startswith("ip -6 ")]

    assert v6(nodes["cr1"]) == v6(base["cr"])
    assert v6(nodes["cr2"]) == [
        f"ip -6 addr add 2001:db8:1::{host}/64 dev eth1 nodad" for host in ("3", "23", "24")
    ]  # cr2's IPv4 198.18.1.3, .23, .24
    for node in ("edge", "tgw-use1", "tgw-usw2"):
        assert "address-family ipv6 unicast" in (ROOT / "lab" / "ha" / node / "frr.conf").read_text()


def _code(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and not line.startswith("!")]


def test_the_ha_frr_configs_are_the_lab_ones_plus_the_ha_lines() -> None:
    """Every line of lab/<node>/frr.conf is in lab/ha/<node>/frr.conf, in order, but the ones the HA lab replaces."""
    replaced = {"edge": {"  neighbor CONTROLLER route-map TO-CONNECT out"}}
    for node in ("edge", "tgw-use1", "tgw-usw2"):
        base, ha = _code(ROOT / "lab" / node / "frr.conf"), _code(ROOT / "lab" / "ha" / node / "frr.conf")
        kept = [
            line
            for line in base
            if line not in replaced.get(node, set()) and not line.startswith(" neighbor CONTROLLER description")
        ]
        it = iter(ha)
        assert all(line in it for line in kept), node  # a subsequence: nothing of the base is lost or reordered
        added = [line for line in ha if line not in base]
        assert " neighbor CONTROLLER bfd" in added and " neighbor 198.18.1.3 peer-group CONTROLLER" in added
        assert (ROOT / "lab" / "ha" / node / "daemons").read_text() == (ROOT / "lab" / node / "daemons").read_text()
    for node in CONTROLLERS:
        daemons = (ROOT / "lab" / "ha" / node / "daemons").read_text()
        assert "bgpd=no" in daemons.splitlines() and "bfdd=yes" in daemons.splitlines()


def test_the_ha_services_are_the_lab_services_plus_a_daemon_per_controller() -> None:
    assert services_file(HA) == ROOT / "lab" / "services-ha.yaml"
    assert services_file(ROOT / "containerlab.yml") == ROOT / "lab" / "services.yaml"
    assert services_file(ROOT / "containerlab-bird.yml") == ROOT / "lab" / "services.yaml"
    base, ha = load_services(ROOT / "lab" / "services.yaml"), load_services(ROOT / "lab" / "services-ha.yaml")
    assert {k: v for k, v in ha.items() if not k.startswith("cr")} == {k: v for k, v in base.items() if k != "cr"}
    for node, file in CONTROLLERS.items():
        (daemon,) = ha[node]
        assert daemon.name == "daemon" and daemon.modes == ["controller"] and daemon.argv == base["cr"][0].argv
        want = [i.model_copy(update={"source": i.source.replace("policies/lab.yaml", f"policies/{file}")})
                for i in base["cr"][0].install]  # fmt: skip
        assert daemon.install == want
