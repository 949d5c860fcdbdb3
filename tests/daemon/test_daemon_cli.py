"""``bgpctl daemon`` refuses what it must refuse, as a real process, and starts nothing when it does.

Each test gets a lab of its own (tests/topologies/daemon.clab.yml, through the ``topology_lab`` fixture):
one node cr holding a veth pair (both ends inside it) with cr's lab address, so that the daemon's policy
routing (its probe pins) and ExaBGP only ever touch that namespace. Daemons are started with
``ip netns exec`` and killed by their recorded PID (after checking /proc/PID/cmdline still names them);
whatever is left in the namespace is killed and the lab taken down, also when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bgpctl.errors import EXIT_FAILURE, EXIT_REFUSED
from bgpctl.policy.load import load_policy
from bgpctl.probe.pinning import RT_PROTO_BGPCTL, Pinning, pins_from_policy
from bgpctl_lab import netns as labns
from bgpctl_lab.poll import eventually
from bgpctl_lab.pytest_plugin import TopologyLab

REPO = Path(__file__).resolve().parents[2]
LAB_POLICY = REPO / "policies" / "lab.yaml"
BAD_POLICY = REPO / "tests" / "policy" / "bad" / "bool-yes.yaml"  # line 12: ttl_security: yes
BGPCTL = [sys.executable, "-m", "bgpctl"]
TOPOLOGY = REPO / "tests" / "topologies" / "daemon.clab.yml"
BUDGETS = {"daemon_pinned": 15.0, "daemon_exit": 10.0, "refused": 20.0}

pytestmark = pytest.mark.lab  # every test runs daemons in a network namespace (root)


@dataclass
class Ns:
    name: str
    run_dir: Path
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def daemon(self, *args: str, policy: Path = LAB_POLICY, run_dir: Path | None = None) -> subprocess.Popen[str]:
        argv = [
            "ip",
            "netns",
            "exec",
            self.name,
            *BGPCTL,
            "daemon",
            "--policy",
            str(policy),
            "--run-dir",
            str(run_dir or self.run_dir),
            "--log-format",
            "json",
            *args,
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.procs.append(proc)
        return proc

    def pids(self) -> list[int]:
        nsid = labns.ns_id(self.name)
        return labns.pids_in([nsid]) if nsid is not None else []

    def exabgp(self) -> list[int]:
        """ExaBGP itself (its interpreter runs .../bin/exabgp), not the API helper it runs."""
        return [
            p for p in self.pids() if any(os.path.basename(part) == "exabgp" for part in labns.proc_cmdline(p) or [])
        ]

    def rules(self) -> str:
        return subprocess.run(["ip", "-n", self.name, "rule"], capture_output=True, text=True, check=True).stdout

    def pinned_rules(self) -> list[str]:
        return [line for line in self.rules().splitlines() if f"proto {RT_PROTO_BGPCTL}" in line]


def _kill(pid: int, sig: int) -> None:
    cmd = labns.proc_cmdline(pid) or []
    if any("bgpctl" in part or "exabgp" in part for part in cmd):  # still the process we recorded
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@pytest.fixture
def ns(tmp_path: Path, topology_lab: TopologyLab) -> Iterator[Ns]:
    lab = topology_lab(TOPOLOGY)
    the_ns = Ns(lab.netns("cr"), tmp_path / "run")
    try:
        yield the_ns
    finally:
        for proc in the_ns.procs:
            if proc.poll() is None:
                _kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
        for pid in the_ns.pids():  # e.g. an ExaBGP whose daemon was SIGKILLed: the namespace is ours
            _kill(pid, signal.SIGKILL)


def _finish(proc: subprocess.Popen[str], budget: str = "refused") -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=BUDGETS[budget])
    except subprocess.TimeoutExpired:
        raise AssertionError(f"daemon still running after budget {budget} ({BUDGETS[budget]:g} s)") from None
    return proc.returncode, err


def test_a_bad_policy_exits_nonzero_naming_file_and_line_and_starts_nothing(ns: Ns) -> None:
    bad = ns.run_dir.parent / "bad-policy.yaml"
    shutil.copy(BAD_POLICY, bad)
    rc, err = _finish(ns.daemon(policy=bad))
    assert rc == EXIT_REFUSED
    assert f"{bad}:12 peers[0].ttl_security: expected true or false" in err, err
    assert "Traceback" not in err
    assert ns.pinned_rules() == []
    assert ns.exabgp() == [] and ns.pids() == []
    assert not ns.run_dir.exists()  # not even the run directory (the lock lives there)


def test_a_second_daemon_on_the_same_run_dir_is_refused_and_the_first_keeps_running(ns: Ns) -> None:
    first = ns.daemon()
    # the first daemon's pins are in place (its ExaBGP runs; no peer answers in this namespace)
    eventually(
        "first daemon pinned",
        budget=BUDGETS["daemon_pinned"],
        probe=ns.pinned_rules,
        check=lambda rules: [] if len(rules) == 2 else [f"rules: {rules}"],
    )
    eventually(
        "first daemon's ExaBGP runs",
        budget=BUDGETS["daemon_pinned"],
        probe=ns.exabgp,
        check=lambda pids: [] if len(pids) == 1 else [f"exabgp: {pids}"],
    )
    pins_before, exabgp_before = ns.pinned_rules(), ns.exabgp()

    rc, err = _finish(ns.daemon())
    assert rc == EXIT_FAILURE
    assert f"another bgpctl daemon (pid {first.pid}) holds {ns.run_dir / 'bgpctl.lock'}" in err, err
    assert "another --run-dir" in err and "Traceback" not in err
    assert first.poll() is None, "the refusal must not disturb the running daemon"
    assert ns.pinned_rules() == pins_before and ns.exabgp() == exabgp_before

    # the first stops cleanly on SIGTERM: its ExaBGP and the pins it installed are gone with it
    _kill(first.pid, signal.SIGTERM)
    rc, _ = _finish(first, "daemon_exit")
    assert rc == 0
    assert ns.pinned_rules() == [] and ns.exabgp() == []
    policy = load_policy(LAB_POLICY)
    assert Pinning(pins_from_policy(policy), netns=ns.name).state() == {
        "use1/interconnect": {"rules": 0, "routes": [], "address_owned": False},
        "usw2/interconnect": {"rules": 0, "routes": [], "address_owned": False},
    }


@pytest.mark.parametrize("value", ["nope", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http"])
def test_a_bad_metrics_listen_address_is_refused_before_anything_starts(ns: Ns, value: str) -> None:
    rc, err = _finish(ns.daemon("--metrics", value))
    assert rc == EXIT_FAILURE
    assert f"--metrics {value!r}: write ADDR:PORT with a port 1-65535, e.g. 127.0.0.1:9477" in err, err
    assert "Traceback" not in err
    assert ns.pinned_rules() == [] and ns.exabgp() == [] and ns.pids() == []


def test_a_metrics_port_out_of_range_is_refused_with_a_message(ns: Ns) -> None:
    rc, err = _finish(ns.daemon("--metrics", "127.0.0.1:70000"))
    assert rc == EXIT_FAILURE
    assert "Traceback" not in err and "--metrics '127.0.0.1:70000'" in err, err
    assert ns.pinned_rules() == [] and ns.exabgp() == []


def test_the_namespace_process_list_sees_a_running_daemon(ns: Ns) -> None:
    # the ground truth the "starts nothing" checks above rely on: a daemon that did start shows up in it
    proc = ns.daemon()
    eventually(
        "daemon and its ExaBGP visible in the namespace",
        budget=BUDGETS["daemon_pinned"],
        probe=ns.pids,
        check=lambda pids: [] if proc.pid in pids and ns.exabgp() else [f"pids: {pids}"],
    )
    _kill(proc.pid, signal.SIGTERM)
    _finish(proc, "daemon_exit")
    eventually("namespace empty after SIGTERM", budget=BUDGETS["daemon_exit"], probe=ns.pids, expect=[])
