"""containerlab.yml against containerlab's JSON Schema, the runner's model of it, and the FRR configs'
consistency with its address plan. No root needed."""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import re
import shlex
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from ruamel.yaml import YAML

from bgpctl.errors import LabError
from bgpctl_lab import frr
from bgpctl_lab.topology import (
    CLAB_SCHEMA_SHA256,
    TOPOLOGY_ENV,
    TopologyError,
    clab_schema,
    drills_dir,
    find_topology,
    load,
    schema_problems,
)
from tests.lab.helpers import REPO, TOPOLOGY


def _data() -> Any:
    return YAML(typ="safe", pure=True).load(TOPOLOGY.read_text())


def _write(tmp_path: Path, data: Any) -> Path:
    """Write a variant of the topology next to a copy of lab/ (binds are relative to the file)."""
    path = tmp_path / "containerlab.yml"
    if not (tmp_path / "lab").exists():
        (tmp_path / "lab").symlink_to(REPO / "lab")
    YAML(typ="safe", pure=True).dump(data, path)
    return path


def test_reference_topology_is_valid_for_containerlab() -> None:
    errors = list(Draft202012Validator(clab_schema()).iter_errors(_data()))
    assert errors == []


def test_bundled_schema_is_containerlabs_file_unedited() -> None:
    raw = resources.files("bgpctl_lab").joinpath("clab.schema.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == CLAB_SCHEMA_SHA256, (
        "bgpctl_lab/clab.schema.json changed: it must stay containerlab's own file; when updating it to a newer "
        "containerlab release, change CLAB_SCHEMA_SHA256 in bgpctl_lab/topology.py in the same commit"
    )
    assert clab_schema()["$id"] == "https://containerlab.dev/clab.schema.json"


def test_typo_in_a_node_field_is_refused(tmp_path: Path) -> None:
    data = _data()
    data["topology"]["nodes"]["edge"]["bind"] = data["topology"]["nodes"]["edge"].pop("binds")
    with pytest.raises(TopologyError) as exc:
        load(_write(tmp_path, data))
    assert any(p.path == "topology.nodes.edge" and "bind" in p.message for p in exc.value.problems), exc.value.problems
    assert str(tmp_path / "containerlab.yml") in str(exc.value)


def test_malformed_endpoint_fails_only_with_the_2020_12_validator() -> None:
    # notes gotcha 11: the schema says draft-07 but uses prefixItems; draft-07 does not check endpoints
    data = _data()
    data["topology"]["links"][0]["endpoints"] = ["cr-eth1", "ic:cr"]
    assert list(Draft7Validator(clab_schema()).iter_errors(data)) == []
    problems = schema_problems(data, "x.yml")
    assert [p.path for p in problems] == ["topology.links.0.endpoints.0"]


def test_model_of_the_reference_lab() -> None:
    topo = load(TOPOLOGY)
    assert topo.name == "bgpctl"
    assert set(topo.nodes) == {"ic", "cr", "edge", "agents", "tgw-use1", "tgw-usw2", "connect-use1", "connect-usw2"}
    assert sorted(topo.frr_nodes()) == ["edge", "tgw-use1", "tgw-usw2"]
    for node in topo.frr_nodes():
        assert topo.nodes[node].frr_conf == REPO / "lab" / node / "frr.conf"
        assert topo.nodes[node].frr_daemons == REPO / "lab" / node / "daemons"
        assert frr.daemons(topo.nodes[node].frr_daemons) == ["zebra", "staticd", "bgpd", "bfdd"]
        assert (topo.nodes[node].image or "").startswith("quay.io/frrouting/frr:")
    assert sorted(topo.interfaces("ic")) == ["cr", "edge", "tgw-use1", "tgw-usw2"]
    assert ("ip", "link", "set", "edge", "master", "br0") in topo.nodes["ic"].exec
    tgw_link = next(link for link in topo.links if link.a.node == "tgw-use1" and link.a.ifname == "eth2")
    assert (tgw_link.b.node, tgw_link.b.ifname) == ("connect-use1", "eth1")
    assert tgw_link.a.ipv4 == ipaddress.IPv4Interface("198.18.11.1/30")
    assert tgw_link.b.ipv4 == ipaddress.IPv4Interface("198.18.11.2/30")
    assert topo.nodes["cr"].env == {"BGPCTL_POLICY": "policies/lab.yaml"}


def test_bridge_kind_is_refused_with_a_hint(tmp_path: Path) -> None:
    data = _data()
    data["topology"]["nodes"]["ic"] = {"kind": "bridge"}
    with pytest.raises(TopologyError, match="kind 'bridge' is not supported") as exc:
        load(_write(tmp_path, data))
    assert "linux node whose exec creates it" in str(exc.value)


def test_link_to_an_unknown_node_or_reused_interface_is_refused(tmp_path: Path) -> None:
    data = _data()
    links = data["topology"]["links"]
    links.append({"endpoints": ["nosuch:eth1", "cr:eth9"]})
    links.append(copy.deepcopy(links[0]))
    links[-1]["endpoints"] = ["cr:eth1", "agents:eth5"]
    with pytest.raises(TopologyError) as exc:
        load(_write(tmp_path, data))
    messages = [p.message for p in exc.value.problems]
    assert "unknown node 'nosuch'" in messages
    assert any(m.startswith("cr:eth1 is already used by topology.links.0") for m in messages), messages


def test_missing_frr_config_is_refused(tmp_path: Path) -> None:
    data = _data()
    data["topology"]["nodes"]["edge"]["binds"][0] = "lab/edge/nosuch.conf:/etc/frr/frr.conf"
    with pytest.raises(TopologyError, match=r"nosuch\.conf does not exist"):
        load(_write(tmp_path, data))


def test_unreadable_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LabError, match="pass --file"):
        load(tmp_path / "missing.yml")


# ---------------------------------------------------------------- FRR configs vs the address plan


def _addresses() -> dict[str, set[ipaddress.IPv4Interface]]:
    """Every IPv4 address the topology gives each node (exec `ip addr add` and link ipv4)."""
    topo = load(TOPOLOGY)
    out: dict[str, set[ipaddress.IPv4Interface]] = {n: set() for n in topo.nodes}
    for name, node in topo.nodes.items():
        for argv in node.exec:
            if argv[:3] == ("ip", "addr", "add") and "." in argv[3]:
                out[name].add(ipaddress.IPv4Interface(argv[3]))
    for link in topo.links:
        for ep in (link.a, link.b):
            if ep.ipv4:
                out[ep.node].add(ep.ipv4)
    return out


def test_frr_configs_match_the_address_plan() -> None:
    addrs = _addresses()
    owner = {str(a.ip): n for n, s in addrs.items() for a in s}
    for node in ("edge", "tgw-use1", "tgw-usw2"):
        conf = (REPO / "lab" / node / "frr.conf").read_text()
        router_id = re.search(r"bgp router-id (\S+)", conf)
        assert router_id and owner.get(router_id.group(1)) == node
        neighbors = set(re.findall(r"^ neighbor (\d+\.\d+\.\d+\.\d+) ", conf, re.M))
        assert neighbors, node
        for n in neighbors:
            assert n in owner, f"{node}: neighbor {n} is no node's address"
        for hop in re.findall(r"^ip route \S+ (\S+)$", conf, re.M):
            assert any(ipaddress.IPv4Address(hop) in a.network for a in addrs[node]), f"{node}: {hop}"
    assert {"198.18.1.2", "198.18.1.21", "198.18.1.22"} <= {str(a.ip) for a in addrs["cr"]}
    for region in ("connect-use1", "connect-usw2"):
        assert {"203.0.113.10", "203.0.113.74", "203.0.113.138"} <= {str(a.ip) for a in addrs[region]}


def test_policy_probe_targets_and_sources_exist_in_the_lab() -> None:
    policy = YAML(typ="safe", pure=True).load((REPO / "policies" / "lab.yaml").read_text())
    addrs = {str(a.ip) for s in _addresses().values() for a in s}
    for region in policy["regions"].values():
        for path in region["paths"].values():
            assert path["probe_source"] in addrs and path["next_hop"] in addrs
    for service in policy["services"].values():
        for target in service["probe"]["targets"].values():
            assert target["address"] in addrs


def _addresses_v6() -> dict[str, set[ipaddress.IPv6Interface]]:
    """Every IPv6 address the topology gives each node (exec `ip -6 addr add ... nodad` and link ipv6)."""
    topo = load(TOPOLOGY)
    out: dict[str, set[ipaddress.IPv6Interface]] = {n: set() for n in topo.nodes}
    for name, node in topo.nodes.items():
        for argv in node.exec:
            if argv[:4] == ("ip", "-6", "addr", "add"):
                assert argv[-1] == "nodad", argv  # usable at once, no DAD wait
                out[name].add(ipaddress.IPv6Interface(argv[4]))
    for link in topo.links:
        for ep in (link.a, link.b):
            if ep.ipv6:
                out[ep.node].add(ep.ipv6)
    return out


def test_the_lab_is_dual_stack_and_ipv6_matches_the_plan() -> None:
    addrs = _addresses_v6()
    assert all(a in ipaddress.IPv6Network("2001:db8::/32") for s in addrs.values() for a in s)
    assert {n for n, s in addrs.items() if not s} == {"ic"}  # every node but the bridge has IPv6
    owner = {str(a.ip): n for n, s in addrs.items() for a in s}
    for node in ("edge", "tgw-use1", "tgw-usw2"):
        conf = (REPO / "lab" / node / "frr.conf").read_text()
        assert "ipv6 forwarding" in conf and "address-family ipv6 unicast" in conf
        for hop in re.findall(r"^ipv6 route \S+ (\S+)$", conf, re.M):
            assert any(ipaddress.IPv6Address(hop) in a.network for a in addrs[node]), f"{node}: {hop}"
            assert owner.get(hop, "").startswith("connect-"), f"{node}: {hop}"
    # the dual-stack policy's IPv6 sources, next hops and probe targets are the lab's
    policy = YAML(typ="safe", pure=True).load((REPO / "policies" / "examples" / "dual-stack.yaml").read_text())
    for region in policy["regions"].values():
        for path in region["paths"].values():
            assert owner.get(path["probe_source_v6"]) == "cr" and path["next_hop_v6"] in owner
    for service in policy["services"].values():
        for name, target in service["probe"]["targets"].items():
            if "address_v6" in target:
                assert owner.get(target["address_v6"], "").startswith("connect-"), (name, target)
    assert owner.get(policy["corporate"]["next_hop_v6"]) == "edge"


def test_every_frr_config_uses_9s_hold_and_both_mode_groups() -> None:
    for node in ("edge", "tgw-use1", "tgw-usw2"):
        conf = (REPO / "lab" / node / "frr.conf").read_text()
        assert re.search(r"^ timers bgp 3 9$", conf, re.M)
        assert set(frr.peer_groups(conf)) == {"CONTROLLER", "DIRECT"}


# ---------------------------------------------------------------- pure helpers of bgpctl_lab.frr

EDGE_CONF = (REPO / "lab" / "edge" / "frr.conf").read_text()


def test_mode_commands_shut_the_other_peer_group() -> None:
    assert frr.mode_commands(EDGE_CONF, "no-controller") == [
        "configure terminal",
        "router bgp 65010",
        "neighbor CONTROLLER shutdown",
        "no neighbor DIRECT shutdown",
        "no neighbor DIRECT bfd",
        "end",
    ]
    assert frr.mode_commands(EDGE_CONF, "controller") == [
        "configure terminal",
        "router bgp 65010",
        "no neighbor CONTROLLER shutdown",
        "neighbor DIRECT shutdown",
        "no neighbor DIRECT bfd",
        "end",
    ]
    assert frr.mode_commands(EDGE_CONF, "no-controller-bfd") == [
        "configure terminal",
        "router bgp 65010",
        "neighbor CONTROLLER shutdown",
        "no neighbor DIRECT shutdown",
        "neighbor DIRECT bfd",
        "neighbor DIRECT bfd profile edge-tgw",
        "end",
    ]
    assert frr.mode_commands("router bgp 1\n neighbor 1.1.1.1 remote-as 2\n", "controller") == []
    with pytest.raises(LabError, match="unknown lab mode"):
        frr.mode_commands(EDGE_CONF, "both")


def test_config_commands_drop_comments_and_startup_only_lines() -> None:
    cmds = frr.config_commands(
        "! c\nfrr version 8.4.4\nfrr defaults traditional\nhostname x\n!\nrouter bgp 1\n neighbor A peer-group\nexit\n"
    )
    assert cmds == ["configure terminal", "hostname x", "router bgp 1", " neighbor A peer-group", "exit", "end"]


def test_daemons_file_parsing(tmp_path: Path) -> None:
    f = tmp_path / "daemons"
    f.write_text('bgpd=yes\nbfdd=no\nospfd=yes\nvtysh_enable=yes\nzebra_options="  -A 127.0.0.1"\n')
    assert frr.daemons(f) == ["zebra", "staticd", "bgpd"]
    assert frr.daemons(None) == ["zebra", "staticd"]


def test_session_states_cover_every_address_family() -> None:
    summary = {
        "ipv4Unicast": {"peers": {"198.18.1.1": {"state": "Established"}}},
        "ipv6Unicast": {"peers": {"2001:db8::1": {"state": "Active"}}},
    }
    assert frr.session_states(summary) == {"198.18.1.1": "Established", "2001:db8::1": "Active"}
    assert frr.session_states({}) == {}
    assert frr.admin_down("Idle (Admin)") and not frr.admin_down("Idle")


def test_exec_lines_are_plain_commands() -> None:
    # containerlab runs exec lines without a shell: no pipes, redirections or globbing allowed
    for node in load(TOPOLOGY).nodes.values():
        for argv in node.exec:
            assert not set(shlex.join(argv)) & set("|>&;*$`"), argv


def test_the_topology_is_found_from_the_option_the_environment_or_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOPOLOGY_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LabError, match=rf"no containerlab.yml in {tmp_path}: .*--topology FILE"):
        find_topology()
    with pytest.raises(LabError, match=r"nope.yml \(from --topology\) does not exist"):
        find_topology(Path("nope.yml"))
    monkeypatch.setenv(TOPOLOGY_ENV, str(TOPOLOGY))
    assert find_topology() == TOPOLOGY
    assert drills_dir(find_topology()) == REPO / "lab" / "drills"
    monkeypatch.delenv(TOPOLOGY_ENV)
    (tmp_path / "containerlab.yml").write_text("name: x\n")
    assert find_topology() == tmp_path / "containerlab.yml"
