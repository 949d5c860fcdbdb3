"""policies/production.yaml starts under the limits of deploy/bgpctl.service (as a real process, in a namespace).

What the unit gives the daemon, emulated with ``setpriv``: ``User=bgpctl``/``Group=bgpctl``, the bounding
and ambient sets ``CAP_NET_ADMIN CAP_NET_RAW`` (read from the unit file itself) and ``NoNewPrivileges``.
The rest of the unit's sandbox (seccomp filter, read-only /usr, ...) needs systemd as PID 1, which CI
does not have; ``systemd-analyze security --offline`` scores it (docs/deploy.md).

The policy is production.yaml, derived mechanically: only the MD5 key files move from
/etc/bgpctl/secrets/ to the test's own directory (:func:`derive_policy`, checked to change nothing else),
so the speaker settings (``exabgp.user: bgpctl``, ``run_dir``, graceful restart) are production's. The
run directory is given with ``--run-dir`` (production's /run/bgpctl may belong to a real install on a
developer's machine) and made as systemd's ``RuntimeDirectory=bgpctl`` makes it: bgpctl:bgpctl, 0750.
The namespace holds production's five local addresses on one veth; no peer answers (the test is about
starting, pinning, ExaBGP running as the daemon's user, and stopping clean).

The interpreter: the unprivileged user must be able to execute Python, and this repository's venv may
point into /root (pyenv). So the test builds what /opt/bgpctl/.venv is in production: a venv of the
system's python3.11 (``--without-pip``) that sees this checkout's venv site-packages, with an ``exabgp``
launcher next to its python (where the speaker looks for it).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bgpctl import events as names
from bgpctl.daemon.privileges import CAP_NET_ADMIN, CAP_NET_RAW
from bgpctl.errors import EXIT_FAILURE
from bgpctl.policy.load import load_policy
from bgpctl.probe.pinning import RT_PROTO_BGPCTL
from bgpctl_lab import netns as labns
from bgpctl_lab.poll import eventually

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "bgpctl.service"
PRODUCTION = REPO / "policies" / "production.yaml"
SYSTEM_PYTHON = Path("/usr/bin/python3.11")
USER = "bgpctl"
PROD_SECRETS = "/etc/bgpctl/secrets/"
TAG = f"tdeploy{os.getpid()}"
BUDGETS = {"started": 30.0, "stopped": 20.0, "refused": 20.0}
# production.yaml's local addresses with the prefix lengths of its comments: the LAN /24, the VIFs and tunnels /30
INTERFACE_ADDRESSES = ["198.18.0.2/24", "198.18.10.2/30", "198.18.10.6/30", "198.18.20.2/30", "198.18.20.6/30"]
SECRETS = {"edge.key": "k-edge-lab", "dx-use1.key": "k-dx-use1-lab"}
SECRET_ENV = {"BGPCTL_MD5_DX_USW2": "k-dx-usw2-lab"}


# ------------------------------------------------------------------------------------------ the unit's limits


def unit_settings(text: str) -> dict[str, str]:
    """``Key=value`` of the unit's [Service] section (the last one wins, as in systemd)."""
    section, out = "", {}
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value
    return out


def setpriv_argv(settings: dict[str, str]) -> list[str]:
    """``setpriv`` doing what the unit's User=, Group=, capability sets and NoNewPrivileges= do."""
    assert settings["AmbientCapabilities"] == settings["CapabilityBoundingSet"], settings
    caps = ",".join(f"+{c.removeprefix('CAP_').lower()}" for c in settings["AmbientCapabilities"].split())
    argv = [
        "setpriv",
        f"--reuid={settings['User']}",
        f"--regid={settings['Group']}",
        "--init-groups",
        f"--inh-caps=-all,{caps}",
        f"--ambient-caps=-all,{caps}",
        f"--bounding-set=-all,{caps}",
    ]
    if settings.get("NoNewPrivileges") == "yes":
        argv.append("--no-new-privs")
    return [*argv, "--"]


def derive_policy(text: str, secrets_dir: Path) -> str:
    """production.yaml with its MD5 key files moved to ``secrets_dir``; nothing else changes."""
    files = {p.md5_password.file for p in load_policy(PRODUCTION).peers if p.md5_password and p.md5_password.file}
    assert {str(Path(PROD_SECRETS) / name) for name in SECRETS} == files, "production.yaml's key files changed"
    assert text.count(PROD_SECRETS) == sum(text.count(f) for f in files)  # the prefix is used for nothing else
    return text.replace(PROD_SECRETS, f"{secrets_dir}/")


def _without_key_files(policy_dump: dict[str, Any]) -> dict[str, Any]:
    for peer in policy_dump["peers"]:
        if peer.get("md5_password") and peer["md5_password"].get("file"):
            peer["md5_password"]["file"] = Path(peer["md5_password"]["file"]).name
    return policy_dump


# ------------------------------------------------------------------------------------------ fixtures


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (namespaces, a system user, setpriv)"
    for tool in ("ip", "setpriv", "useradd"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing: the daemon's user needs an interpreter it can execute"
    return None


@pytest.fixture(scope="module")
def daemon_user() -> Iterator[pwd.struct_passwd]:
    """The unit's user (created as a system user for the module if this host has none; removed after)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    created = False
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        created, pw = True, pwd.getpwnam(USER)
    try:
        yield pw
    finally:
        if created:
            subprocess.run(["userdel", USER], check=False)


@dataclass
class Install:
    """What /opt/bgpctl and /etc/bgpctl hold in production, under /run/<TAG>/ here."""

    root: Path
    python: Path
    policy: Path
    run_dir: Path


def _make_venv(root: Path) -> Path:
    venv = root / "venv"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    ours = sysconfig.get_paths()["purelib"]  # this checkout's venv: bgpctl (editable), exabgp, pydantic, ...
    (purelib / "bgpctl-checkout.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    launcher = venv / "bin" / "exabgp"
    launcher.write_text(
        f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom exabgp.application.main import main\nsys.exit(main())\n"
    )
    launcher.chmod(0o755)
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def install(daemon_user: pwd.struct_passwd) -> Iterator[Install]:
    root = Path("/run") / TAG
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(mode=0o755)
    try:
        python = _make_venv(root)
        secrets = root / "secrets"
        secrets.mkdir(mode=0o755)
        for name, key in SECRETS.items():  # root:bgpctl 0640, as production.yaml's comments say
            (secrets / name).write_text(key + "\n")
            os.chown(secrets / name, 0, daemon_user.pw_gid)
            (secrets / name).chmod(0o640)
        policy = root / "policy.yaml"
        policy.write_text(derive_policy(PRODUCTION.read_text(), secrets))
        policy.chmod(0o644)
        run_dir = root / "run"  # RuntimeDirectory=bgpctl, RuntimeDirectoryMode=0750
        run_dir.mkdir(mode=0o750)
        os.chown(run_dir, daemon_user.pw_uid, daemon_user.pw_gid)
        yield Install(root, python, policy, run_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Ns:
    name: str
    procs: list[subprocess.Popen[str]]
    log: Path  # the daemon's stderr

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]

    def pids(self) -> list[int]:
        nsid = labns.ns_id(self.name)
        return labns.pids_in([nsid]) if nsid is not None else []

    def exabgp(self) -> list[int]:
        return [p for p in self.pids() if any(os.path.basename(a) == "exabgp" for a in labns.proc_cmdline(p) or [])]

    def pinned_rules(self) -> list[str]:
        out = subprocess.run(["ip", "-n", self.name, "rule"], capture_output=True, text=True, check=True).stdout
        return [line for line in out.splitlines() if f"proto {RT_PROTO_BGPCTL}" in line]


def _kill(pid: int, sig: int) -> None:
    cmd = labns.proc_cmdline(pid) or []
    if any("bgpctl" in part or "exabgp" in part or "relay.py" in part for part in cmd):  # still ours
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@pytest.fixture
def ns(install: Install, tmp_path: Path) -> Iterator[Ns]:
    name = f"{TAG}_cr"
    the_ns = Ns(name, [], tmp_path / "daemon.log")
    try:
        labns.create(name)
        subprocess.run(["ip", "-n", name, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"], check=True)
        for address in INTERFACE_ADDRESSES:
            subprocess.run(["ip", "-n", name, "addr", "add", address, "dev", "eth1"], check=True)
        for link in ("eth1p", "eth1"):
            subprocess.run(["ip", "-n", name, "link", "set", link, "up"], check=True)
        yield the_ns
    finally:
        for proc in the_ns.procs:
            if proc.poll() is None:
                _kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
        for pid in the_ns.pids():
            _kill(pid, signal.SIGKILL)
        labns.remove(name)
        for leftover in install.run_dir.iterdir():
            leftover.unlink()


def _start(ns: Ns, install: Install, limits: list[str], run_dir: Path | None = None) -> subprocess.Popen[str]:
    argv = [
        "ip",
        "netns",
        "exec",
        ns.name,
        *limits,
        str(install.python),
        "-m",
        "bgpctl",
        "daemon",
        "--policy",
        str(install.policy),
        "--run-dir",
        str(run_dir or install.run_dir),
        "--log-format",
        "json",
    ]
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", **SECRET_ENV}  # EnvironmentFile=
    with ns.log.open("w") as log:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd="/", start_new_session=True
        )
    ns.procs.append(proc)
    return proc


def _status(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def _finish(ns: Ns, proc: subprocess.Popen[str], budget: str) -> tuple[int, str]:
    try:
        proc.communicate(timeout=BUDGETS[budget])
    except subprocess.TimeoutExpired:
        raise AssertionError(f"daemon still running after budget {budget} ({BUDGETS[budget]:g} s)") from None
    return proc.returncode, ns.log.read_text()


# ------------------------------------------------------------------------------------------ tests


def test_the_derived_policy_is_production_but_for_the_key_files(install: Install) -> None:
    prod = _without_key_files(load_policy(PRODUCTION).model_dump(mode="json"))
    derived = _without_key_files(load_policy(install.policy).model_dump(mode="json"))
    assert derived == prod
    assert derived["speaker"]["exabgp"]["user"] == USER


def test_the_units_limits_are_what_setpriv_applies() -> None:
    settings = unit_settings(UNIT.read_text())
    assert settings["User"] == USER and settings["Group"] == USER
    assert setpriv_argv(settings)[1:] == [
        "--reuid=bgpctl",
        "--regid=bgpctl",
        "--init-groups",
        "--inh-caps=-all,+net_admin,+net_raw",
        "--ambient-caps=-all,+net_admin,+net_raw",
        "--bounding-set=-all,+net_admin,+net_raw",
        "--no-new-privs",
        "--",
    ]


# MemoryDenyWriteExecute=yes is a seccomp filter in systemd; the kernel's own PR_SET_MDWE (Linux 6.3+,
# inherited across fork and exec) refuses the same thing: a mapping that is (or becomes) writable and executable.
MDWE = (
    "import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); "
    "sys.exit(f'PR_SET_MDWE failed: {os.strerror(ctypes.get_errno())}') if libc.prctl(65, 1, 0, 0, 0) else "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


SECCOMP_EXEC = Path(__file__).with_name("seccomp_exec.py")


def unit_values(text: str, key: str) -> list[str]:
    """Every value of a key that may repeat (SystemCallFilter=), in order."""
    return [line.partition("=")[2] for line in (raw.strip() for raw in text.splitlines()) if line.startswith(key + "=")]


def _syscall_members(group: str, seen: dict[str, frozenset[str]]) -> frozenset[str]:
    if group not in seen:
        out = subprocess.run(
            ["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, check=True
        ).stdout
        names: set[str] = set()
        for line in out.splitlines()[1:]:
            word = line.strip()
            if word and not word.startswith("#"):
                names |= _syscall_members(word, seen) if word.startswith("@") else {word}
        seen[group] = frozenset(names)
    return seen[group]


def allowed_syscalls(filters: list[str]) -> list[str]:
    """The allow list the unit's SystemCallFilter= lines make: the first is an allow list, ``~`` lines deny."""
    seen: dict[str, frozenset[str]] = {}
    allowed: set[str] = set()
    for value in filters:
        deny = value.startswith("~")
        names = set().union(
            *(_syscall_members(w, seen) if w.startswith("@") else {w} for w in value.lstrip("~").split())
        )
        allowed = allowed - names if deny else allowed | names
    return sorted(allowed)


@pytest.mark.parametrize("sandbox", ["caps", "caps+mdwe", "caps+mdwe+seccomp"])
def test_production_starts_under_the_units_limits_and_stops_clean(
    ns: Ns, install: Install, daemon_user: pwd.struct_passwd, sandbox: str
) -> None:
    unit = UNIT.read_text()
    limits = setpriv_argv(unit_settings(unit))
    if "seccomp" in sandbox:  # SystemCallFilter= (+ SystemCallErrorNumber=EPERM), loaded after no_new_privs
        if shutil.which("systemd-analyze") is None:
            pytest.skip("systemd-analyze (systemd) is needed to expand the unit's system call groups")
        assert unit_settings(unit)["SystemCallErrorNumber"] == "EPERM"
        allow = install.root / "syscalls.allow"  # readable by the daemon's user (tmp_path is not)
        allow.write_text("\n".join(allowed_syscalls(unit_values(unit, "SystemCallFilter"))) + "\n")
        allow.chmod(0o644)
        limits = [*limits, str(SYSTEM_PYTHON), str(SECCOMP_EXEC), str(allow)]
    if "mdwe" in sandbox:
        assert unit_settings(unit)["MemoryDenyWriteExecute"] == "yes"
        limits = [*limits, str(install.python), "-c", MDWE]
    proc = _start(ns, install, limits)
    policy = load_policy(install.policy)
    paths = sum(len(r.paths) for r in policy.regions.values())
    eventually(
        "the daemon pinned every path, its ExaBGP runs and ExaBGP's API process connected",
        budget=BUDGETS["started"],
        probe=lambda: [
            len(ns.pinned_rules()),
            len(ns.exabgp()),
            proc.poll(),
            sum(e["event"] == names.EXABGP_CONNECTED for e in ns.events()),
        ],
        expect=[paths, 1, None, 1],
    )
    want_caps = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW)
    for pid, what in ((proc.pid, "bgpctl"), (ns.exabgp()[0], "ExaBGP")):
        if what == "bgpctl":  # proc.pid is `ip netns exec`, which exec'd setpriv, which exec'd python
            assert "bgpctl" in " ".join(labns.proc_cmdline(pid) or [])
        st = _status(pid)
        assert st["Uid"].split()[:2] == [str(daemon_user.pw_uid)] * 2, (what, st["Uid"])
        assert st["Gid"].split()[:2] == [str(daemon_user.pw_gid)] * 2, (what, st["Gid"])
        assert st["NoNewPrivs"] == "1", what
        assert st["Seccomp"] == ("2" if "seccomp" in sandbox else "0"), (what, st["Seccomp"])  # 2: a filter
        assert int(st["CapBnd"], 16) == want_caps, (what, st["CapBnd"])
        assert int(st["CapEff"], 16) & ~want_caps == 0, (what, st["CapEff"])
    # every file the daemon wrote is the daemon user's, private
    for f in install.run_dir.iterdir():
        st_f = f.lstat()
        assert (st_f.st_uid, st_f.st_gid) == (daemon_user.pw_uid, daemon_user.pw_gid), f
        assert st_f.st_mode & 0o077 == 0, (f, oct(st_f.st_mode))

    _kill(proc.pid, signal.SIGTERM)
    rc, err = _finish(ns, proc, "stopped")
    assert rc == 0, err[-2000:]
    assert "Traceback" not in err
    assert not [e for e in ns.events() if e["event"] == names.EXABGP_EXITED], "ExaBGP died under the unit's limits"
    assert [e["event"] for e in ns.events() if e["event"] in (names.DAEMON_SIGNAL, names.DAEMON_STOP)] == [
        names.DAEMON_SIGNAL,
        names.DAEMON_STOP,
    ]
    assert ns.pinned_rules() == [] and ns.exabgp() == []
    assert sorted(p.name for p in install.run_dir.iterdir()) == ["bgpctl.lock", "exabgp.conf", "exabgp.env"]


def test_the_old_units_limits_are_refused_in_one_line_before_anything_starts(ns: Ns, install: Install) -> None:
    # deploy/bgpctl.service before this change: root (no User=), bounding set NET_ADMIN NET_BIND_SERVICE NET_RAW.
    # ExaBGP could not drop to exabgp.user (no CAP_SETUID/SETGID) and exited, restarted, exited, ...
    caps = "+net_admin,+net_bind_service,+net_raw"
    limits = ["setpriv", f"--inh-caps=-all,{caps}", f"--ambient-caps=-all,{caps}", f"--bounding-set=-all,{caps}"]
    root_run_dir = install.root / "run-root"  # RuntimeDirectory= of a unit without User=: root's, 0750
    root_run_dir.mkdir(mode=0o750, exist_ok=True)
    rc, err = _finish(ns, _start(ns, install, [*limits, "--no-new-privs", "--"], root_run_dir), "refused")
    assert rc == EXIT_FAILURE
    assert err.strip().splitlines() == [
        "bgpctl: speaker.exabgp.user 'bgpctl': bgpctl runs as root without CAP_SETUID, CAP_SETGID, CAP_CHOWN, so "
        "ExaBGP cannot drop to 'bgpctl'; run bgpctl as User=bgpctl (deploy/bgpctl.service) or allow them"
    ]
    assert ns.pinned_rules() == [] and ns.exabgp() == [] and ns.pids() == []
    assert list(root_run_dir.iterdir()) == []


def test_a_run_dir_the_group_can_write_is_refused_before_anything_starts(ns: Ns, install: Install) -> None:
    install.run_dir.chmod(0o770)
    try:
        rc, err = _finish(ns, _start(ns, install, setpriv_argv(unit_settings(UNIT.read_text()))), "refused")
    finally:
        install.run_dir.chmod(0o750)
    assert rc == EXIT_FAILURE
    assert err.strip().splitlines() == [
        f"bgpctl: run directory {install.run_dir} is writable by its group (mode 0770): chown the daemon's user "
        f"{install.run_dir} && chmod 0750 {install.run_dir}, or let systemd create it (RuntimeDirectory=bgpctl)"
    ]
    assert ns.pinned_rules() == [] and ns.exabgp() == [] and list(install.run_dir.iterdir()) == []


def test_the_mdwe_wrapper_really_refuses_writable_executable_memory_after_exec(install: Install) -> None:
    # the ground truth the caps+mdwe case relies on: the limit survives exec and is in force in the program
    probe = "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)"
    py = str(install.python)
    done = subprocess.run([py, "-c", MDWE, py, "-c", probe], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "PermissionError" in done.stderr, done.stderr
    plain = subprocess.run([py, "-c", probe], capture_output=True, text=True, check=False)
    assert plain.returncode == 0, plain.stderr
