"""The scale lab's generator (bgpctl_lab/scale.py) and the pure parts of bench/bench_scale.py. No root needed:
the generated topology against containerlab's schema and the runner's model, the policy through the real
``bgpctl policy check`` and plan(), the FRR configs against the address plan, the bad sizes, the route
monitor's parser on iproute2's real output (captured in a throw-away namespace when root)."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from bench import bench_scale
from bgpctl.core.plan import plan
from bgpctl.core.types import Health, PathHealth, PathKey
from bgpctl.errors import LabError
from bgpctl.policy.load import load_policy
from bgpctl_lab import frr, scale
from bgpctl_lab.services import load_services, services_file
from bgpctl_lab.topology import clab_schema, load
from tests import budget

SMALL = bench_scale.SIZES["small"]
FULL = bench_scale.SIZES["full"]


# the full size in CI; the developer tier checks the generator at the small size (tests/budget.py)
@pytest.fixture(scope="module", params=["small", "full"] if budget.FULL else ["small"])
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[scale.Size, Path]:
    size = bench_scale.SIZES[request.param]
    d = tmp_path_factory.mktemp(f"scale-{request.param}")
    return size, scale.write(d, scale.render(size, name="scale-test"))


def test_the_topology_is_valid_for_containerlab_and_the_runner(generated: tuple[scale.Size, Path]) -> None:
    size, topo_file = generated
    data = YAML(typ="safe", pure=True).load(topo_file.read_text())
    assert list(Draft202012Validator(clab_schema()).iter_errors(data)) == []
    topo = load(topo_file)  # the runner's subset, binds resolved next to the file
    edges = scale.edge_names(size)
    assert sorted(topo.frr_nodes()) == sorted([*edges, *(t.name for t in scale.TGWS)])
    assert set(topo.nodes) == {"ic", "cr", "connect-use1", "connect-usw2", *topo.frr_nodes()}
    # every node on the interconnect is a port of ic's bridge, and each port is enslaved once
    ports = sorted(e.ifname for link in topo.links for e in (link.a, link.b) if e.node == "ic")
    enslaved = sorted(a[3] for a in topo.nodes["ic"].exec if a[:3] == ("ip", "link", "set") and a[4:5] == ("master",))
    assert ports == enslaved == sorted(["cr", *edges, *(t.name for t in scale.TGWS)])
    for node in topo.frr_nodes():
        conf, daemons = topo.nodes[node].frr_conf, topo.nodes[node].frr_daemons
        assert conf is not None and conf.is_file() and daemons is not None
        assert frr.daemons(daemons) == ["zebra", "staticd", "bgpd"]
    services = load_services(services_file(topo_file))
    assert {n: [s.name for s in ss] for n, ss in services.items()} == {
        "connect-use1": ["reflector"],
        "connect-usw2": ["reflector"],
        "cr": ["daemon"],
    }


def test_the_policy_passes_policy_check(generated: tuple[scale.Size, Path]) -> None:
    size, topo_file = generated
    policy = topo_file.parent / "policy.yaml"
    out = subprocess.run(
        [sys.executable, "-m", "bgpctl", "policy", "check", str(policy)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"ok ({size.edges + 4} peers, 2 regions, {size.services} services)" in out.stdout


def test_the_policy_has_the_size_asked_for_and_plans_every_prefix_to_every_edge(
    generated: tuple[scale.Size, Path],
) -> None:
    size, topo_file = generated
    pol = load_policy(topo_file.parent / "policy.yaml")
    prefixes = [str(p) for s in pol.services.values() for p in s.prefixes]
    assert len(prefixes) == len(set(prefixes)) == size.prefixes
    keys = [PathKey(s, r, p) for s in pol.services for r, reg in pol.regions.items() for p in reg.paths]
    assert len(keys) == size.paths
    edges = [p.name for p in pol.peers if p.role.value == "edge"]
    assert edges == scale.edge_names(size)
    up = plan(pol, {k: PathHealth(Health.UP) for k in keys}, None, 0.0)
    for edge in edges:
        # ADD-PATH: one route per path of each region, for every prefix
        assert sorted({k.prefix for k in up.desired[edge]}) == sorted(prefixes)
        assert len(up.desired[edge]) == size.prefixes * len(scale.TGWS)
    if size == SMALL:  # the failover the bench waits room for: de-preference, then withdrawal of use1's routes
        # (the full size's is tests/core/test_plan_scale.py)
        assert bench_scale.failover_changes(topo_file.parent / "policy.yaml") == 4252


def test_the_policy_reuses_the_reference_classes_and_probe_targets_sit_on_the_connect_nodes(
    generated: tuple[scale.Size, Path],
) -> None:
    _, topo_file = generated
    pol = load_policy(topo_file.parent / "policy.yaml")
    ref = load_policy(scale.REFERENCE_POLICY)
    assert pol.sla_classes == ref.sla_classes and pol.actions == ref.actions
    topo = load(topo_file)
    for region in scale.REGIONS:
        node = topo.nodes[f"connect-{region}"]
        on_lo = {argv[3].removesuffix("/32") for argv in node.exec if argv[:3] == ("ip", "addr", "add")}
        for i, (name, svc) in enumerate(pol.services.items()):
            template = ref.services[scale.TEMPLATES[i % 3]]
            target = svc.probe.targets[region]
            assert str(target.address) in on_lo
            assert ipaddress.ip_address(target.address) in svc.prefixes[0], name
            assert (target.protocol, svc.probe.interval_ms, svc.mode) == (
                template.probe.targets[region].protocol,
                template.probe.interval_ms,
                template.mode,
            )


def test_frr_configs_match_the_address_plan(generated: tuple[scale.Size, Path]) -> None:
    _, topo_file = generated
    topo = load(topo_file)
    pol = load_policy(topo_file.parent / "policy.yaml")
    peers = {p.name: p for p in pol.peers}
    for node in topo.frr_nodes():
        conf_file = topo.nodes[node].frr_conf
        assert conf_file is not None
        conf = conf_file.read_text()
        # the node's interconnect address (exec) is the policy's peer address and FRR's router-id
        addr = next(a[3].split("/")[0] for a in topo.nodes[node].exec if a[:3] == ("ip", "addr", "add"))
        assert str(peers[node].address) == addr
        assert re.search(rf"^ bgp router-id {re.escape(addr)}$", conf, re.M)
        assert frr.bgp_asn(conf) == peers[node].peer_as
        assert re.search(rf"^ neighbor {re.escape(scale.CR)} peer-group CONTROLLER$", conf, re.M)
        assert frr.peer_groups(conf) == ["CONTROLLER"]
        assert frr.mode_commands(conf, "controller")[-2:] == ["no neighbor CONTROLLER shutdown", "end"]
    for t in scale.TGWS:
        link = next(lk for lk in topo.links if lk.a.node == t.name and lk.a.ifname == "eth2")
        conf = (topo_file.parent / "lab" / t.name / "frr.conf").read_text()
        assert link.b.ipv4 is not None and f"ip route {scale.CONNECT_SPACE} {link.b.ipv4.ip}" in conf
        assert link.b.node == f"connect-{t.region}"
        path = pol.regions[t.region].paths[t.path]
        assert (path.peer, str(path.next_hop), str(path.probe_source)) == (t.name, t.address, t.probe_source)


@pytest.mark.parametrize(
    ("size", "words"),
    [
        (scale.Size(prefixes=3, services=4), "--prefixes 3: give 4-2048"),
        (scale.Size(prefixes=4096), "--prefixes 4096: give 16-2048"),
        (scale.Size(edges=0), "--edges 0: give 1-64"),
        (scale.Size(edges=65), "--edges 65: give 1-64"),
        (scale.Size(services=0, prefixes=10), "--services 0: give 1-64"),
        (scale.Size(interval_ms=5), "--interval-ms 5: give 20-60000"),
    ],
)
def test_a_size_the_address_plan_cannot_hold_is_refused(size: scale.Size, words: str) -> None:
    with pytest.raises(LabError, match=re.escape(words)):
        scale.render(size)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["generate", "{tmp}", "--edges", "99"], "--edges 99: give 1-64"),
        (["generate", "{tmp}", "--prefixes", "x"], "argument --prefixes: invalid int value: 'x'"),
        (["generate", "{nonempty}"], "is not empty: give a new or empty directory"),
        (["run", "--runs", "0"], "--runs 0: give at least 1"),
        (["run", "--max-s", "10"], "--max-s 10: give at least 60"),
        (["run", "--size", "huge"], "argument --size: invalid choice: 'huge'"),
        (["summary", "{nonempty}/x"], "not a file of `run --json` results"),
        (["soak", "--minutes", "0"], "--minutes 0: give at least 1"),
        (["soak", "--sample-s", "1"], "--sample-s 1: give at least 5"),
    ],
)
def test_bad_bench_options_exit_2_naming_the_option(
    argv: list[str], words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("not json\n")
    args = [a.format(tmp=tmp_path / "new", nonempty=tmp_path / "full") for a in argv]
    with pytest.raises(SystemExit) as exc:
        bench_scale.main(args)
    assert exc.value.code == 2
    err = capsys.readouterr()
    assert err.out == ""
    assert words in err.err and "Traceback" not in err.err
    assert not (tmp_path / "new").exists()


def test_generate_writes_a_lab_bgpctl_lab_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_scale.main(["generate", str(tmp_path / "lab"), "--size", "small", "--interval-ms", "100"]) == 0
    assert "250 prefixes, 4 edges, 16 paths" in capsys.readouterr().out
    pol = load_policy(tmp_path / "lab" / "policy.yaml")
    assert {s.probe.interval_ms for s in pol.services.values()} == {100}
    assert load(tmp_path / "lab" / "containerlab.yml").name == "bgpctl-scale"


# ------------------------------------------------------------------------------------- route monitor

# `ip -ts monitor route` of iproute2 6.1 (captured from FRR 8.4's zebra in the scale lab): single path,
# multipath (next hops on indented lines), deletion, and routes of other tables
MONITOR = """\
[2026-12-01T10:08:54.186324] 198.19.0.0/27 nhid 41 via 198.18.1.11 dev eth1 proto bgp metric 20
[2026-12-01T10:08:54.187784] 198.19.0.32/27 nhid 45 proto bgp metric 20
\tnexthop via 198.18.1.11 dev eth1 weight 1
\tnexthop via 198.18.1.13 dev eth1 weight 1
[2026-12-01T10:08:54.190956] local 198.18.1.101 dev eth1 table local proto kernel scope host src 198.18.1.101
[2026-12-01T10:08:55.000001] Deleted 198.19.0.0/27 nhid 41 via 198.18.1.11 dev eth1 proto bgp metric 20
[2026-12-01T10:08:55.250000] 198.19.0.32/27 nhid 47 via 198.18.1.13 dev eth1 proto bgp metric 20
[2026-12-01T10:08:55.500000] 198.19.0.0/27 nhid 47 via 198.18.1.13 dev eth1 proto bgp metric 20
"""
WATCHED = ("198.19.0.0/27", "198.19.0.32/27")
AWAY = frozenset({"198.18.1.11", "198.18.1.12"})


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def test_the_monitor_parser_reads_single_multipath_and_deleted_routes() -> None:
    p = bench_scale.MonitorParser(frozenset(WATCHED))
    cut = MONITOR.index("\tnexthop via 198.18.1.13")  # a read that ends inside a multipath record
    p.feed(MONITOR[:cut])
    p.feed(MONITOR[cut:])
    got = [(r.prefix, r.deleted, r.hops) for r in p.records]
    assert got == [
        ("198.19.0.0/27", False, ("198.18.1.11",)),
        ("198.19.0.32/27", False, ("198.18.1.11", "198.18.1.13")),
        ("198.19.0.0/27", True, ("198.18.1.11",)),
        ("198.19.0.32/27", False, ("198.18.1.13",)),
        ("198.19.0.0/27", False, ("198.18.1.13",)),
    ]
    assert p.records[0].at == _at("2026-12-01T10:08:54.186324")


def test_moved_is_the_last_change_once_every_prefix_left_the_failed_region() -> None:
    p = bench_scale.MonitorParser(frozenset(WATCHED))
    lines = MONITOR.splitlines(keepends=True)
    since = _at("2026-12-01T10:08:54.500000")
    p.feed("".join(lines[:-1]))  # 198.19.0.0/27 deleted, not yet back via usw2
    assert bench_scale.moved(p.records, WATCHED, since, AWAY) is None
    p.feed(lines[-1])
    assert bench_scale.moved(p.records, WATCHED, since, AWAY) == _at("2026-12-01T10:08:55.500000")
    # a prefix without any change since the fault has not moved
    assert bench_scale.moved(p.records, [*WATCHED, "198.19.0.64/27"], since, AWAY) is None


def test_fib_problems_name_how_many_prefixes_are_not_there() -> None:
    hops = {"198.19.0.0/27": ("198.18.1.13",), "198.19.0.32/27": ("198.18.1.11", "198.18.1.13"), "198.19.0.64/27": ()}
    want = frozenset({"198.18.1.13"})
    assert bench_scale.fib_problems(hops, want=want, away=AWAY) == [
        "2 of 3 prefixes not yet (e.g. 198.19.0.32/27 via ['198.18.1.11', '198.18.1.13'])"
    ]
    assert bench_scale.fib_problems({"198.19.0.0/27": ("198.18.1.13",)}, want=want, away=AWAY) == []


@pytest.mark.lab  # root and a network namespace: not the developer tier
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root (a throw-away netns)")
def test_the_parser_reads_what_this_iproute2_prints(tmp_path: Path) -> None:
    """The real ``ip -ts monitor route`` in a throw-away network namespace (``unshare --net``, never the
    host's): a route, its replacement by two next hops, its deletion."""
    out = tmp_path / "mon.txt"
    script = (
        "ip link set lo up; ip link add va type veth peer name vb; ip link set va up; ip link set vb up; "
        "ip addr add 198.18.200.1/24 dev va; ip -ts monitor route > MON & "
        # the monitor is listening once it has seen a route of ours (bounded: 30 s)
        "i=0; until grep -q 198.19.1.0/27 MON || [ $i -ge 300 ]; do "
        "ip route replace 198.19.1.0/27 via 198.18.200.9 dev va onlink; sleep 0.1; i=$((i+1)); done; "
        "ip route add 198.19.0.0/27 via 198.18.200.2 dev va onlink; "
        "ip route replace 198.19.0.0/27 nexthop via 198.18.200.3 dev va onlink nexthop via 198.18.200.4 dev va onlink; "
        "ip route del 198.19.0.0/27; ip route add 198.19.2.0/27 via 198.18.200.9 dev va onlink; "
        "i=0; until grep -q 198.19.2.0/27 MON || [ $i -ge 300 ]; do sleep 0.1; i=$((i+1)); done; kill $!"
    ).replace("MON", str(out))
    t0 = time.time()
    subprocess.run(["unshare", "--net", "sh", "-c", script], check=True, timeout=90)
    p = bench_scale.MonitorParser(frozenset({"198.19.0.0/27"}))
    p.feed(out.read_text())
    assert [(r.deleted, r.hops) for r in p.records] == [
        (False, ("198.18.200.2",)),
        (False, ("198.18.200.3", "198.18.200.4")),
        (True, ("198.18.200.3", "198.18.200.4")),
    ]
    assert all(t0 - 1 <= r.at <= time.time() + 1 for r in p.records)


def test_soak_growth_compares_the_medians_of_the_first_and_last_samples() -> None:
    assert bench_scale.growth_pct([100.0, 90.0, 100.0, 500.0, 102.0, 104.0, 103.0]) == 3.0  # one spike is noise
    assert bench_scale.growth_pct([50.0, 50.0, 50.0, 60.0, 60.0, 60.0]) == 20.0
    assert bench_scale.growth_pct([0.0, 0.0, 0.0, 1.0]) == 0.0


def test_the_reflectors_lifetime_follows_the_render_so_a_soak_outlives_the_default() -> None:
    def lifetimes(seconds: int | None = None) -> set[str]:
        size = bench_scale.SIZES["small"]
        files = scale.render(size) if seconds is None else scale.render(size, reflector_seconds=seconds)
        nodes = YAML(typ="safe").load(files["lab/services.yaml"])
        argvs = [s["argv"] for services in nodes.values() for s in services if "reflector" in s["argv"]]
        return {argv[argv.index("--seconds") + 1] for argv in argvs}

    assert lifetimes() == {"900"}
    assert lifetimes(7200) == {"7200"}
