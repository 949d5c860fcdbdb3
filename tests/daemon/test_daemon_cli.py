"""``bgpctl daemon`` refuses what it must refuse, as a real process, and starts nothing when it does.

Each test gets a lab of its own (tests/topologies/daemon.clab.yml, through the ``topology_lab`` fixture):
one node cr holding a veth pair (both ends inside it) with cr's lab address, so that the daemon's policy
routing (its probe pins) and ExaBGP only ever touch that namespace. Daemons are started with
``ip netns exec`` and killed by their recorded PID (after checking /proc/PID/cmdline still names them);
whatever is left in the namespace is killed and the lab taken down, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bgpctl import events as names
from bgpctl.errors import EXIT_FAILURE, EXIT_REFUSED, EXIT_USAGE
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

    def daemon(
        self, *args: str, policy: Path = LAB_POLICY, run_dir: Path | None = None, log: Path | None = None
    ) -> subprocess.Popen[str]:
        """The daemon; its stderr (the log) is piped, or written to ``log`` to be read while it runs."""
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
        if log is None:
            proc = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
            )
        else:
            with log.open("w") as f:
                proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=f, text=True, start_new_session=True)
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


@pytest.mark.parametrize("value", ["nope", "127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000"])
def test_a_bad_metrics_listen_address_is_a_usage_error_before_anything_starts(ns: Ns, value: str) -> None:
    rc, err = _finish(ns.daemon("--metrics", value))
    assert rc == EXIT_USAGE
    assert err.splitlines() == [
        f"bgpctl: daemon: Invalid value for '--metrics': {value!r}: write ADDR:PORT with a port 1-65535, "
        f"e.g. 127.0.0.1:9477; see 'bgpctl daemon --help'"
    ], err
    assert ns.pinned_rules() == [] and ns.exabgp() == [] and ns.pids() == []
    assert not ns.run_dir.exists()


def _wait_running(ns: Ns, proc: subprocess.Popen[str]) -> None:
    eventually(
        "daemon pinned and its ExaBGP runs",
        budget=BUDGETS["daemon_pinned"],
        probe=lambda: [len(ns.pinned_rules()), len(ns.exabgp()), proc.poll()],
        expect=[2, 1, None],
    )


def test_a_metrics_port_in_use_is_one_line_and_the_running_daemon_keeps_it(ns: Ns) -> None:
    first = ns.daemon("--metrics", "127.0.0.1:9477")
    _wait_running(ns, first)
    pins_before, exabgp_before = ns.pinned_rules(), ns.exabgp()
    rc, err = _finish(ns.daemon("--metrics", "127.0.0.1:9477", run_dir=ns.run_dir.parent / "run2"))
    assert rc == EXIT_FAILURE
    assert err.splitlines() == [
        "bgpctl: --metrics '127.0.0.1:9477': cannot listen: Address already in use; another process listens "
        "there: pick a free port (ss -ltnp shows who)"
    ], err
    assert first.poll() is None and ns.pinned_rules() == pins_before and ns.exabgp() == exabgp_before
    _kill(first.pid, signal.SIGTERM)
    assert _finish(first, "daemon_exit")[0] == 0


@pytest.mark.parametrize(
    ("value", "pattern"),
    [
        (
            "192.0.2.55:9477",
            r"bgpctl: --metrics '192\.0\.2\.55:9477': cannot listen: Cannot assign requested address; no interface "
            r"has this address: use one of this host's addresses",
        ),
        (
            "no-such-host.invalid:9477",
            # the resolver's reason depends on the host (no DNS in the namespace: "Temporary failure ...")
            r"bgpctl: --metrics 'no-such-host\.invalid:9477': cannot resolve 'no-such-host\.invalid' \([A-Za-z ]+\): "
            r"give an IP address",
        ),
    ],
)
def test_an_unbindable_metrics_address_is_one_line_and_nothing_starts(ns: Ns, value: str, pattern: str) -> None:
    rc, err = _finish(ns.daemon("--metrics", value))
    assert rc == EXIT_FAILURE
    assert len(err.splitlines()) == 1 and re.fullmatch(pattern, err.strip()), err
    assert ns.pinned_rules() == [] and ns.exabgp() == [] and ns.pids() == []


def test_a_run_dir_that_cannot_be_created_is_one_line(ns: Ns) -> None:
    blocker = ns.run_dir.parent / "a-file"
    blocker.write_text("")
    rc, err = _finish(ns.daemon(run_dir=blocker / "run"))
    assert rc == EXIT_FAILURE
    assert err.splitlines() == [
        f"bgpctl: run directory {blocker / 'run'} cannot be created: Not a directory; create it (owned by the "
        f"daemon's user, mode 0750) or give another --run-dir"
    ], err
    assert ns.pinned_rules() == [] and ns.exabgp() == [] and ns.pids() == []


def test_a_symlink_planted_as_the_lock_is_refused_and_its_target_untouched(ns: Ns) -> None:
    victim = ns.run_dir.parent / "victim"
    victim.write_text("precious\n")
    ns.run_dir.mkdir(mode=0o700)
    (ns.run_dir / "bgpctl.lock").symlink_to(victim)
    rc, err = _finish(ns.daemon())
    assert rc == EXIT_FAILURE
    assert err.splitlines() == [
        f"bgpctl: {ns.run_dir / 'bgpctl.lock'} is a symlink: bgpctl never follows links in its run directory; "
        f"remove it and find out who put it there"
    ], err
    assert victim.read_text() == "precious\n"
    assert ns.pinned_rules() == [] and ns.exabgp() == [] and ns.pids() == []


def test_symlinks_planted_where_the_config_goes_are_replaced_and_their_targets_untouched(ns: Ns) -> None:
    victims = {name: ns.run_dir.parent / f"victim-{name}" for name in ("exabgp.conf", ".exabgp.conf.tmp", "exabgp.env")}
    ns.run_dir.mkdir(mode=0o700)
    for name, victim in victims.items():
        victim.write_text("precious\n")
        (ns.run_dir / name).symlink_to(victim)
    proc = ns.daemon()
    _wait_running(ns, proc)
    assert all(v.read_text() == "precious\n" for v in victims.values())
    for name in ("exabgp.conf", "exabgp.env"):
        assert not (ns.run_dir / name).is_symlink() and (ns.run_dir / name).stat().st_mode & 0o077 == 0
    assert not (ns.run_dir / ".exabgp.conf.tmp").is_symlink()
    _kill(proc.pid, signal.SIGTERM)
    assert _finish(proc, "daemon_exit")[0] == 0


def _events(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_sighup_reloads_the_policy_sigusr1_is_ignored_and_the_daemon_keeps_running(ns: Ns) -> None:
    log = ns.run_dir.parent / "daemon.log"
    proc = ns.daemon(log=log)
    _wait_running(ns, proc)
    pins, exabgp = ns.pinned_rules(), ns.exabgp()
    os.kill(proc.pid, signal.SIGHUP)  # proc is `ip netns exec`, which exec'd the daemon: the same pid
    os.kill(proc.pid, signal.SIGUSR1)

    def after_signals() -> list[str]:
        seen = _events(log.read_text())
        at = [i for i, e in enumerate(seen) if e["event"] == names.DAEMON_SIGNAL]
        if len(at) < 2:
            return ["not both signals logged yet"]
        later = [e["event"] for e in seen[max(at) + 1 :]]
        missing = [] if {names.PATH_HEALTH, names.SPEAKER_SYNCED} & set(later) else ["no evaluation after the signals"]
        if names.POLICY_RELOAD not in later:
            missing.append(f"no policy.reload after the signals: {later[-20:]}")
        return missing

    # the daemon reloads and goes on deciding after both signals (its paths have no answers here: they go down)
    eventually("reload and evaluations after SIGHUP", budget=BUDGETS["daemon_pinned"], probe=after_signals, expect=[])
    assert proc.poll() is None and ns.pinned_rules() == pins and ns.exabgp() == exabgp
    _kill(proc.pid, signal.SIGTERM)
    rc, _ = _finish(proc, "daemon_exit")
    seen = _events(log.read_text())
    assert rc == 0 and "Traceback" not in log.read_text()
    signals = sorted((e["signal"], e["action"], e.get("hint")) for e in seen if e["event"] == names.DAEMON_SIGNAL)
    assert signals == [
        ("SIGHUP", "reload", None),
        ("SIGTERM", "stop", None),
        ("SIGUSR1", "ignored", "bgpctl does nothing on SIGUSR1"),
    ]
    # the policy file is the one running: the reload finds it unchanged (by the signal, logged with why)
    (reload,) = [e for e in seen if e["event"] == names.POLICY_RELOAD]
    assert (reload["result"], reload["by"], reload["why"]) == ("unchanged", {"signal": "SIGHUP"}, "SIGHUP")
    assert ns.pinned_rules() == [] and ns.exabgp() == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_every_stopping_signal_runs_the_cleanup(ns: Ns, sig: signal.Signals) -> None:
    proc = ns.daemon()
    _wait_running(ns, proc)
    _kill(proc.pid, sig)
    rc, err = _finish(proc, "daemon_exit")
    assert rc == 0 and "Traceback" not in err, err[-2000:]
    assert [e["event"] for e in _events(err) if e["event"] in (names.DAEMON_SIGNAL, names.DAEMON_STOP)] == [
        names.DAEMON_SIGNAL,
        names.DAEMON_STOP,
    ]
    assert ns.pinned_rules() == [] and ns.exabgp() == []
    eventually("namespace empty", budget=BUDGETS["daemon_exit"], probe=ns.pids, expect=[])
    assert not (ns.run_dir / "exabgp-api.sock").exists()


def test_a_signal_during_start_up_still_runs_the_cleanup(ns: Ns) -> None:
    proc = ns.daemon()
    eventually(  # the pins are in: the speaker may still be starting
        "daemon pinned", budget=BUDGETS["daemon_pinned"], probe=lambda: len(ns.pinned_rules()), expect=2
    )
    _kill(proc.pid, signal.SIGTERM)
    rc, err = _finish(proc, "daemon_exit")
    assert rc == 0 and "Traceback" not in err, err[-2000:]
    assert ns.pinned_rules() == []
    eventually("namespace empty", budget=BUDGETS["daemon_exit"], probe=ns.pids, expect=[])


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
