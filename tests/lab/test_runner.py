"""The namespace runner against the real thing: namespaces, veths, FRR, pings, crashes.

Run as root: ``.venv/bin/pytest -m lab tests/lab``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bgpctl.errors import LabError
from bgpctl_lab import frr, netns, runner
from bgpctl_lab.poll import BUDGETS, eventually
from bgpctl_lab.pytest_plugin import reap_stale_test_labs, require_lab
from bgpctl_lab.runner import Lab
from bgpctl_lab.state import lab_dir, read
from tests.lab.helpers import (
    TOPOLOGY,
    all_established,
    ping,
    route_nexthops,
    snmp_counter,
    vtysh_matches,
)

pytestmark = pytest.mark.lab

TGW = {"use1": ("tgw-use1", "198.18.1.11", "connect-use1"), "usw2": ("tgw-usw2", "198.18.1.12", "connect-usw2")}
PROBE_TARGETS = ("203.0.113.10", "203.0.113.74", "203.0.113.138")
BGPCTL = [sys.executable, "-m", "bgpctl"]


def _root_links() -> set[str]:
    """Interfaces of the root namespace (the host's); a lab must never add one."""
    out = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    return {link["ifname"] for link in json.loads(out)}


def _leftovers(name: str, ns_names: list[str], pids: list[int]) -> list[str]:
    found = [f"namespace {n}" for n in ns_names if netns.exists(n)]
    found += [f"pid {p} ({netns.proc_cmdline(p)})" for p in pids if netns.alive(p)]
    found += [f"dir {frr.socket_dir(n)}" for n in ns_names if frr.socket_dir(n).exists()]
    if lab_dir(name).exists():
        found.append(f"run dir {lab_dir(name)}")
    return found


@pytest.fixture(autouse=True)
def _needs_root_and_frr() -> None:
    require_lab()  # skip, with the reason, where namespaces or FRR are not available


@pytest.fixture
def extra_lab(lab_name_factory: Callable[[str], str]) -> Iterator[Callable[[str], str]]:
    """Names for labs a test brings up itself; each is torn down afterwards whatever happens."""
    names: list[str] = []

    def make(prefix: str) -> str:
        names.append(lab_name_factory(prefix))
        return names[-1]

    yield make
    for name in names:
        runner.down(name)


# ---------------------------------------------------------------- up / down


def test_up_and_down_are_fast_complete_and_leave_nothing(extra_lab: Callable[[str], str]) -> None:
    name = extra_lab("bu")
    root_before = _root_links()
    t0 = time.monotonic()
    lab = runner.up(TOPOLOGY, name=name)
    up_s = time.monotonic() - t0
    all_established(lab)  # up() returned: every FRR<->FRR session is already Established
    assert up_s < BUDGETS["lab_up"], f"up took {up_s:.1f} s"
    assert _root_links() == root_before, "the lab created an interface in the root namespace"

    ns_names = [lab.netns(n) for n in lab.nodes()]
    assert ns_names == [f"{name}-{n}" for n in lab.nodes()]
    helper = lab.spawn("agents", ["sleep", "300"], tag="test-helper", log_name="sleep.out")
    ids = [i for i in (netns.ns_id(n) for n in ns_names) if i is not None]
    # spawn returns once `ip netns exec` is started; it enters the namespace a moment later (seen under load)
    pids = eventually(
        "the helper runs inside the lab's namespaces",
        budget="process_start",
        probe=lambda: netns.pids_in(ids),
        check=lambda found: [] if helper in found else [f"pid {helper} not in the lab's namespaces yet"],
    ).value
    assert len(pids) >= 3 * 4 + 1  # 3 FRR nodes x 4 daemons, and the helper
    links = {n: netns.link_names(lab.netns(n)) for n in lab.nodes()}
    assert sorted(links["ic"]) == ["br0", "cr", "edge", "lo", "tgw-use1", "tgw-usw2"]
    assert {p.tag for p in lab.frr_pids()} == {"frr:zebra", "frr:staticd", "frr:bgpd", "frr:bfdd"}
    for node in lab.frr_nodes():
        assert (lab.node_dir(node) / "bgpd.log").stat().st_size > 0

    t0 = time.monotonic()
    assert runner.down(name) is True
    down_s = time.monotonic() - t0
    assert down_s < BUDGETS["lab_down"], f"down took {down_s:.1f} s"
    assert _leftovers(name, ns_names, pids) == []
    assert _root_links() == root_before
    assert runner.down(name) is False  # nothing left to do
    print(f"\nlab {name}: up {up_s:.2f} s (all sessions Established), down {down_s:.2f} s")


def test_every_session_is_established_and_routes_use_both_regions(lab: Lab) -> None:
    sessions = all_established(lab)
    assert sessions == {
        "edge": {"198.18.1.11": "Established", "198.18.1.12": "Established"},
        "tgw-use1": {"198.18.1.1": "Established"},
        "tgw-usw2": {"198.18.1.1": "Established"},
    }
    # the sessions towards cr (bgpctl) are shut in no-controller mode
    vtysh_matches(
        lab, "edge", "show bgp summary json", {"ipv4Unicast": {"peers": {"198.18.1.2": {"state": "Idle (Admin)"}}}}
    )
    for prefix in ("203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26"):
        eventually(
            f"ECMP for {prefix} on edge",
            budget="route_converged",
            probe=functools.partial(_assert_hops, lab, prefix, {"198.18.1.11", "198.18.1.12"}),
        )
    for tgw, _, _ in TGW.values():
        vtysh_matches(
            lab,
            tgw,
            "show ip route 192.0.2.0/24 json",
            {
                "192.0.2.0/24": [
                    {"protocol": "bgp", "selected": True, "nexthops": [{"ip": "198.18.1.1", "active": True}]}
                ]
            },
        )


def _assert_hops(lab: Lab, prefix: str, hops: set[str]) -> None:
    got = route_nexthops(lab, "edge", prefix)
    assert got == hops, f"{prefix} via {got}, want {hops}"


@pytest.mark.parametrize("region", ["use1", "usw2"])
def test_agents_reach_the_connect_endpoints_of_each_region(lab: Lab, region: str) -> None:
    """Force the edge onto one region (shut the other TGW's session), then ping every probe target
    from the agents and count the echo requests each region's Connect host answered."""
    _, hop, host = TGW[region]
    other = next(v for k, v in TGW.items() if k != region)
    lab.configure("edge", ["router bgp 65010", f"neighbor {other[1]} shutdown"])
    try:
        for prefix in ("203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26"):
            eventually(
                f"{prefix} only via {hop}",
                budget="route_converged",
                probe=functools.partial(_assert_hops, lab, prefix, {hop}),
            )
        before = {h: snmp_counter(lab, h, "Icmp", "InEchos") for h in ("connect-use1", "connect-usw2")}
        for target in PROBE_TARGETS:
            ping(lab, "agents", target, count=3)
        after = {h: snmp_counter(lab, h, "Icmp", "InEchos") for h in ("connect-use1", "connect-usw2")}
        assert after[host] - before[host] == 3 * len(PROBE_TARGETS)
        assert after[other[2]] == before[other[2]]
    finally:
        lab.configure("edge", ["router bgp 65010", f"no neighbor {other[1]} shutdown"])
        eventually("every FRR session Established", budget="bgp_established", probe=lambda: all_established(lab))


def _connections(lab: Lab) -> dict[str, dict[str, int]]:
    out = {}
    for node in lab.frr_nodes():
        peers = lab.vtysh_json(node, "show bgp summary json")["ipv4Unicast"]["peers"]
        out[node] = {p: info["connectionsEstablished"] for p, info in peers.items()}
    return out


def test_up_twice_is_idempotent(lab: Lab) -> None:
    eventually("every FRR session Established", budget="bgp_established", probe=lambda: all_established(lab))
    before_conns = _connections(lab)
    before_pids = sorted(p.pid for p in lab.frr_pids())
    before_ns = {n: netns.ns_id(lab.netns(n)) for n in lab.nodes()}
    t0 = time.monotonic()
    again = runner.up(TOPOLOGY, name=lab.name)
    took = time.monotonic() - t0
    assert again.name == lab.name and again.run_dir == lab.run_dir
    assert sorted(p.pid for p in again.frr_pids()) == before_pids  # nothing restarted
    assert {n: netns.ns_id(again.netns(n)) for n in again.nodes()} == before_ns  # nothing recreated
    all_established(again)
    assert _connections(again) == before_conns  # no session was reset
    assert took < 5, f"a second up took {took:.1f} s"


def test_up_of_another_file_under_the_same_name_is_refused(lab: Lab, tmp_path: Path) -> None:
    other = tmp_path / "containerlab.yml"
    other.write_text(TOPOLOGY.read_text().replace("lab/", f"{TOPOLOGY.parent}/lab/"))
    with pytest.raises(LabError, match="already up from"):
        runner.up(other, name=lab.name)


def test_stopped_frr_is_restarted_by_up_and_by_start_frr(lab: Lab) -> None:
    lab.stop_frr("tgw-usw2")
    assert not lab.frr_alive("tgw-usw2") and lab.frr_pids("tgw-usw2") == []
    eventually(
        "edge drops tgw-usw2's routes",
        budget="bgp_down",
        probe=lambda: _assert_hops(lab, "203.0.113.0/26", {"198.18.1.11"}),
    )
    runner.up(TOPOLOGY, name=lab.name)  # repairs
    assert lab.frr_alive("tgw-usw2")
    eventually("every FRR session Established", budget="bgp_established", probe=lambda: all_established(lab))
    lab.stop_frr("tgw-use1")
    lab.start_frr("tgw-use1")
    assert lab.frr_alive("tgw-use1")
    eventually("every FRR session Established", budget="bgp_established", probe=lambda: all_established(lab))
    eventually(
        '_assert_hops(lab, "203.0.113.0/26", {"198.18.1.11", "198.18.1.12"})',
        budget="route_converged",
        probe=lambda: _assert_hops(lab, "203.0.113.0/26", {"198.18.1.11", "198.18.1.12"}),
    )


def test_mode_switch_shuts_the_direct_sessions_and_back(lab: Lab) -> None:
    try:
        runner.up(TOPOLOGY, name=lab.name, mode="controller")
        assert lab.mode == "controller"
        for node, peer in (("edge", "198.18.1.11"), ("edge", "198.18.1.12"), ("tgw-use1", "198.18.1.1")):
            assert lab.sessions(node)[peer] == "Idle (Admin)"
        for node in ("edge", "tgw-use1", "tgw-usw2"):
            assert not frr.admin_down(lab.sessions(node)["198.18.1.2"])  # open towards bgpctl on cr
        # the edge's sessions with the TGWs are shut, so its Connect routes can only come from bgpctl on cr
        # (lab/services.yaml starts the daemon in controller mode): both regions, ECMP
        eventually(
            "the Connect routes come from bgpctl on cr",
            budget="route_converged",
            probe=lambda: _assert_hops(lab, "203.0.113.0/26", {"198.18.1.11", "198.18.1.12"}),
        )
    finally:
        runner.up(TOPOLOGY, name=lab.name, mode="no-controller")
    assert lab.mode == "no-controller"
    all_established(lab)
    eventually(
        '_assert_hops(lab, "203.0.113.0/26", {"198.18.1.11", "198.18.1.12"})',
        budget="route_converged",
        probe=lambda: _assert_hops(lab, "203.0.113.0/26", {"198.18.1.11", "198.18.1.12"}),
    )


def test_link_down_and_clear_bgp(lab: Lab) -> None:
    def tgw_session() -> str:
        return lab.sessions("tgw-use1")["198.18.1.1"]

    def dropped() -> int:
        return int(lab.vtysh_json("edge", "show bgp neighbors 198.18.1.11 json")["198.18.1.11"]["connectionsDropped"])

    lab.link_set("tgw-use1", "eth1", False)
    try:
        eventually(
            "tgw-use1 loses its session", budget="admin_down", probe=lambda: _assert(tgw_session() != "Established")
        )
    finally:
        lab.link_set("tgw-use1", "eth1", True)
    eventually("every FRR session Established", budget="bgp_established", probe=lambda: all_established(lab))
    before = dropped()
    lab.clear_bgp("edge", "198.18.1.11")
    eventually("the session was reset", budget="admin_down", probe=lambda: _assert(dropped() > before))
    eventually("every FRR session Established", budget="bgp_established", probe=lambda: all_established(lab))


def _assert(cond: bool) -> None:
    assert cond


def test_spawned_helpers_are_recorded_and_killed(lab: Lab) -> None:
    pid = lab.spawn(
        "connect-use1",
        ["sh", "-c", "echo hello from $(ip -br addr show lo | wc -l); exec sleep 60"],
        tag="test-spawn",
        log_name="test-spawn.log",
    )
    proc = next(p for p in lab.spawned() if p.pid == pid)
    assert proc.node == "connect-use1" and proc.tag == "test-spawn"
    assert netns.proc_netns(pid) == netns.ns_id(lab.netns("connect-use1"))
    eventually(
        '_assert("hello from 1" in Path(proc.log).read_text())',
        budget="process_exit",
        probe=lambda: _assert("hello from 1" in Path(proc.log).read_text()),
    )
    assert lab.spawned_alive(proc)
    # the same tag on another node (as a service's, e.g. the HA lab's "daemon" on cr1 and cr2): a node picks one
    other = lab.spawn("connect-usw2", ["sleep", "60"], tag="test-spawn", log_name="test-spawn.log")
    assert lab.kill_spawned(tag="test-spawn", node="connect-usw2") == [other]
    assert not netns.alive(other) and netns.alive(pid)
    assert lab.kill_spawned(tag="test-spawn") == [pid]
    assert not netns.alive(pid)
    assert all(p.tag != "test-spawn" for p in lab.spawned())


def test_exec_and_vtysh_errors_say_what_to_do(lab: Lab) -> None:
    assert lab.exec("agents", ["ip", "-br", "addr", "show", "eth1"]).stdout.split()[2] == "192.0.2.10/24"
    assert lab.exec("agents", ["false"], check=False).returncode == 1
    with pytest.raises(LabError, match="agents: false exited 1"):
        lab.exec("agents", ["false"])
    with pytest.raises(LabError, match="runs no FRR"):
        lab.vtysh("agents", "show version")
    with pytest.raises(LabError, match="Unknown command"):
        lab.vtysh("edge", "show no-such-thing")
    with pytest.raises(LabError, match="has no node 'nosuch'"):
        lab.netns("nosuch")
    with pytest.raises(LabError, match="is not up"):
        Lab.attach("nosuchlab")


def test_cli_status_exec_vtysh(lab: Lab) -> None:
    env = {**os.environ, "BGPCTL_LAB_NAME": lab.name}
    st = json.loads(
        subprocess.run([*BGPCTL, "lab", "status", "--json"], env=env, capture_output=True, text=True, check=True).stdout
    )
    assert st["name"] == lab.name and st["mode"] == "no-controller"
    assert st["nodes"]["edge"]["frr"] == "running"
    assert st["nodes"]["edge"]["bgp"]["198.18.1.11"] == "Established"
    out = subprocess.run(
        [*BGPCTL, "lab", "exec", "agents", "--", "ip", "-br", "addr", "show", "eth1"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and "192.0.2.10/24" in out.stdout, out.stderr
    out = subprocess.run(
        [*BGPCTL, "lab", "vtysh", "edge", "--", "show", "bgp", "summary", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["ipv4Unicast"]["as"] == 65010
    out = subprocess.run(
        [*BGPCTL, "lab", "vtysh", "agents", "--", "show", "version"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1 and "runs no FRR" in out.stderr
    human = subprocess.run([*BGPCTL, "lab", "status"], env=env, capture_output=True, text=True, check=True).stdout
    assert "198.18.1.11      Established" in human


def test_two_labs_side_by_side(lab: Lab, extra_lab: Callable[[str], str]) -> None:
    name = extra_lab("bs")
    second = runner.up(TOPOLOGY, name=name)
    assert set(second.netns(n) for n in second.nodes()).isdisjoint(lab.netns(n) for n in lab.nodes())
    all_established(second)
    all_established(lab)
    eventually(
        'ping(second, "agents", "203.0.113.10")',
        budget="route_converged",
        probe=lambda: ping(second, "agents", "203.0.113.10"),
    )
    runner.down(name)
    all_established(lab)
    ping(lab, "agents", "203.0.113.10")


# ---------------------------------------------------------------- crashes

CRASH = """
import os, signal, sys
from pathlib import Path
from bgpctl_lab import netns, runner
point = sys.argv[2]
if point == "links":          # die in the middle of creating the veths
    real, calls = netns.add_veth, []
    def add_veth(*a, **k):
        calls.append(a)
        if len(calls) == 4:
            os.kill(os.getpid(), signal.SIGKILL)
        real(*a, **k)
    netns.add_veth = add_veth
elif point == "frr":          # die with every FRR daemon running, before any configuration
    def configure(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    runner._configure_frr = configure
runner.up(Path(sys.argv[3]), name=sys.argv[1])
"""


@pytest.mark.parametrize("point", ["links", "frr"])
def test_down_after_the_runner_was_killed_mid_up(extra_lab: Callable[[str], str], point: str) -> None:
    name = extra_lab("bc")
    root_before = _root_links()
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, name, point, str(TOPOLOGY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    st = read(name)
    assert st is not None and st.phase == "creating"
    with pytest.raises(LabError, match="did not finish coming up"):
        Lab.attach(name)
    ns_names = [ns.netns for ns in st.nodes.values()]
    existing = [n for n in ns_names if netns.exists(n)]
    assert existing, "the crash came before any namespace existed: the test proves nothing"
    pids = netns.pids_in([i for i in (netns.ns_id(n) for n in existing) if i is not None])
    if point == "frr":
        assert len(pids) == 12 and {p.pid for p in st.frr} == set(pids)
    t0 = time.monotonic()
    assert runner.down(name)
    assert time.monotonic() - t0 < BUDGETS["lab_down"]
    assert _leftovers(name, ns_names, pids) == []
    assert _root_links() == root_before


def test_up_after_a_crash_starts_clean(extra_lab: Callable[[str], str]) -> None:
    name = extra_lab("br")
    proc = subprocess.run(
        [sys.executable, "-c", CRASH, name, "frr", str(TOPOLOGY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    crashed = read(name)
    assert crashed is not None
    old = {p.pid for p in crashed.frr}
    lab = runner.up(TOPOLOGY, name=name)
    all_established(lab)
    assert not any(netns.alive(p) for p in old)
    assert old.isdisjoint(p.pid for p in lab.frr_pids())


def _owner() -> subprocess.Popen[bytes]:
    """A stand-in for a test run: a live Python process while its lab comes up (so that a parallel
    pytest-xdist worker's reaping leaves the lab alone), killed just before this test reaps."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def _kill(owner: subprocess.Popen[bytes]) -> None:
    owner.kill()
    owner.wait()


def test_labs_of_killed_test_runs_are_reaped() -> None:
    owner = _owner()
    name = f"bu{owner.pid}"  # a lab of a "pytest" that will be killed
    try:
        crashed = runner.up(TOPOLOGY, name=name, wait=False)
        ns_names = [crashed.netns(n) for n in crashed.nodes()]
        pids = [p.pid for p in crashed.frr_pids()]
        _kill(owner)
        assert name in reap_stale_test_labs()
        assert _leftovers(name, ns_names, pids) == []
    finally:
        _kill(owner)
        runner.down(name)


def test_own_topology_labs_of_killed_test_runs_are_reaped() -> None:
    # the labs of topology_lab (tl<pid>_<n>, tests/topologies/*.clab.yml) are found like the session's
    owner = _owner()
    name = f"tl{owner.pid}_0"
    own = Path(__file__).resolve().parents[1] / "topologies" / "meter-pair.clab.yml"
    try:
        crashed = runner.up(own, name=name)
        ns_names = [crashed.netns(n) for n in crashed.nodes()]
        assert all(netns.exists(n) for n in ns_names)
        _kill(owner)
        assert name in reap_stale_test_labs()
        assert _leftovers(name, ns_names, []) == []
    finally:
        _kill(owner)
        runner.down(name)


def test_cli_up_and_down(extra_lab: Callable[[str], str]) -> None:
    name = extra_lab("bu")
    up = subprocess.run(
        [*BGPCTL, "lab", "up", "--topology", str(TOPOLOGY), "--lab", name],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert up.returncode == 0, up.stderr
    assert re.match(
        rf"lab {name} up in [\d.]+ s \(mode no-controller\): 8 nodes, 4 FRR sessions Established", up.stdout
    ), up.stdout
    down = subprocess.run(
        [*BGPCTL, "lab", "down", "--lab", name], capture_output=True, text=True, timeout=30, check=False
    )
    assert down.returncode == 0 and down.stdout.startswith(f"lab {name} down in"), down.stderr
    again = subprocess.run(
        [*BGPCTL, "lab", "down", "--lab", name], capture_output=True, text=True, timeout=30, check=True
    )
    assert again.stdout.strip() == f"lab {name} was not up"
