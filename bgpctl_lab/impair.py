"""Link impairments on one interface of one network namespace: set, change, clear, read back.

Backends (the result always says which one ran):

* ``netem``: the kernel's netem qdisc through pyroute2, where the kernel has it (users' machines).
* ``nft``: this project's machines have no netem. Loss and duplication are nftables rules on the
  interface's egress hook; delay, jitter and reordering queue packets to userspace (NFQUEUE) where
  :mod:`bgpctl_lab.delayer` releases each verdict after its drawn delay. See :mod:`bgpctl_lab.nft`.

Either way one bounded helper process per (namespace, interface), the *delayer*, owns the
impairment: it applies it when it starts, applies changes when told (SIGHUP after a new params
file), and removes every rule it made when it exits: at the end of its lifetime (``seconds``), on
SIGTERM, or on SIGINT. If it dies hard (SIGKILL), the queue rule fails open (packets pass
undelayed) and :func:`clear_impairment` removes what is left.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from bgpctl.errors import LabError
from bgpctl_lab import nft
from bgpctl_lab.poll import until
from bgpctl_lab.state import locked_dir

Backend = Literal["netem", "nft"]
BackendChoice = Literal["auto", "netem", "nft"]
# Starts ``argv`` inside the target namespace and returns its pid (the lab passes ``Lab.spawn``).
Spawner = Callable[[list[str]], int]

STATE_ROOT = Path(os.environ.get("BGPCTL_IMPAIR_STATE", "/run/bgpctl/impair"))
DEFAULT_LIFETIME_S = 600.0
APPLY_BUDGET_S = 15.0  # how long a delayer may take to start or to apply a change
EXIT_BUDGET_S = 10.0  # how long a delayer may take to remove its rules and exit after SIGTERM
DELAYER_MODULE = "bgpctl_lab.delayer"


@dataclass(frozen=True)
class Impairment:
    """What to do to packets leaving an interface. Percentages are 0..100; times in milliseconds.

    ``jitter_ms`` is the standard deviation of a normal distribution around ``delay_ms`` (draws
    below zero count as zero); each packet is released at its own time, so jitter reorders.
    ``reorder_pct`` sends that share of packets at once, ahead of the delayed rest (netem's meaning;
    it needs ``delay_ms`` > 0). ``burst_ms`` > 0 adds queueing-delay bursts: about every
    ``burst_every_s`` seconds (uniformly 0.5 to 1.5 times that apart) a burst whose peak is drawn
    between ``burst_ms / 2`` and ``burst_ms``: the extra delay rises 1 ms per ms to the peak and falls
    back the same way (a queue that fills and drains; nothing overtakes). ``seed`` makes the delayer's
    draws repeatable (the kernel's random loss and duplication draws cannot be seeded). ``udp_dport``
    limits the impairment to UDP packets to that port (e.g. 862, STAMP probes), so that nothing else on
    the link is lost or counted; it needs the nft backend (netem impairs every packet).
    """

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    duplicate_pct: float = 0.0
    reorder_pct: float = 0.0
    burst_ms: float = 0.0
    burst_every_s: float = 5.0
    seed: int | None = None
    udp_dport: int | None = None

    def __post_init__(self) -> None:
        problems = check_impairment(self)
        if problems:
            raise LabError("impairment refused: " + "; ".join(problems))

    @property
    def needs_queue(self) -> bool:
        return self.delay_ms > 0 or self.jitter_ms > 0 or self.reorder_pct > 0 or self.burst_ms > 0

    @property
    def is_noop(self) -> bool:
        return not self.needs_queue and self.loss_pct <= 0 and self.duplicate_pct <= 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Impairment:
        known = {
            "delay_ms",
            "jitter_ms",
            "loss_pct",
            "duplicate_pct",
            "reorder_pct",
            "burst_ms",
            "burst_every_s",
            "seed",
            "udp_dport",
        }
        unknown = set(data) - known
        if unknown:
            raise LabError(f"unknown impairment field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


def check_impairment(imp: Impairment) -> list[str]:
    """Every problem with ``imp``, each saying what to change (empty list: fine)."""
    problems = []
    for name in ("delay_ms", "jitter_ms", "burst_ms"):
        v = getattr(imp, name)
        if not math.isfinite(v) or v < 0 or v > 60_000:
            problems.append(f"{name}={v} must be between 0 and 60000 ms")
    for name in ("loss_pct", "duplicate_pct", "reorder_pct"):
        v = getattr(imp, name)
        if not math.isfinite(v) or v < 0 or v > 100:
            problems.append(f"{name}={v} must be a percentage between 0 and 100")
    if not math.isfinite(imp.burst_every_s) or not 0.1 <= imp.burst_every_s <= 3600:
        problems.append(f"burst_every_s={imp.burst_every_s} must be between 0.1 and 3600 s")
    if imp.udp_dport is not None and not 1 <= imp.udp_dport <= 65535:
        problems.append(f"udp_dport={imp.udp_dport} must be a UDP port, 1 to 65535")
    if imp.reorder_pct > 0 and imp.delay_ms <= 0:
        problems.append("reorder_pct needs delay_ms > 0 (reordered packets overtake delayed ones)")
    return problems


@dataclass(frozen=True)
class Applied:
    """An impairment in force, as its delayer reports it."""

    netns: str
    ifname: str
    impairment: Impairment
    backend: Backend
    delayer_pid: int
    queue_num: int | None
    expires_at: float  # wall clock (time.time())
    generation: int


def state_dir(netns: str, ifname: str) -> Path:
    return STATE_ROOT / netns / nft.check_ifname(ifname)


def delayer_argv(ifname: str, directory: Path, seconds: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        DELAYER_MODULE,
        "--ifname",
        ifname,
        "--state-dir",
        str(directory),
        "--seconds",
        f"{seconds:g}",
    ]


def netns_spawner(netns: str) -> Spawner:
    """Start argv with ``ip netns exec`` (which execs in place: the pid is the helper's own)."""

    def spawn(argv: list[str]) -> int:
        proc = subprocess.Popen(
            nft.netns_argv(netns, argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        return proc.pid

    return spawn


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _pid_exists(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def delayer_alive(pid: int, ifname: str) -> bool:
    """True if ``pid`` is still a delayer for ``ifname`` (reaps it first if it is our dead child)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return DELAYER_MODULE.encode() in argv and ifname.encode() in argv


def _wait(cond: Callable[[], bool], budget_s: float) -> bool:
    return until(cond, budget_s)


_locked = locked_dir  # one writer at a time per (namespace, interface)


def current(netns: str, ifname: str) -> Applied | None:
    """The impairment in force on ``ifname`` in ``netns``, or None if there is none."""
    status = _read_json(state_dir(netns, ifname) / "status.json")
    if status is None or status.get("state") != "running":
        return None
    if not delayer_alive(int(status["pid"]), ifname):
        return None
    return Applied(
        netns=netns,
        ifname=ifname,
        impairment=Impairment.from_json(status["impairment"]),
        backend=status["backend"],
        delayer_pid=int(status["pid"]),
        queue_num=status.get("queue_num"),
        expires_at=float(status["expires_at"]),
        generation=int(status["generation"]),
    )


def set_impairment(
    netns: str,
    ifname: str,
    imp: Impairment,
    *,
    seconds: float = DEFAULT_LIFETIME_S,
    backend: BackendChoice = "auto",
    spawn: Spawner | None = None,
) -> Applied:
    """Apply ``imp`` on packets leaving ``ifname`` in ``netns`` for ``seconds``; change it if one is set.

    A change keeps the same delayer (packets it holds keep their release times) and restarts the
    lifetime at ``seconds`` from now. Returns what the delayer reports once it is in force.
    """
    nft.check_ifname(ifname)
    if not 0 < seconds <= 7 * 86400:
        raise LabError(f"seconds={seconds} must be > 0 and at most a week: impairments are bounded")
    nft.ifindex(ifname, netns)  # fail early, with a readable message, if the interface is missing
    directory = state_dir(netns, ifname)
    if (running := current(netns, ifname)) is not None and backend not in ("auto", running.backend):
        clear_impairment(netns, ifname)
    with _locked(directory):
        return _set_locked(netns, ifname, imp, seconds=seconds, backend=backend, spawn=spawn, directory=directory)


def _set_locked(
    netns: str,
    ifname: str,
    imp: Impairment,
    *,
    seconds: float,
    backend: BackendChoice,
    spawn: Spawner | None,
    directory: Path,
) -> Applied:
    running = current(netns, ifname)
    previous = _read_json(directory / "params.json")
    generation = int(previous["generation"]) + 1 if previous else 1
    params = {
        "generation": generation,
        "impairment": imp.to_json(),
        "backend": backend,
        "expires_at": time.time() + seconds,
    }
    _write_json(directory / "params.json", params)
    if running is not None:
        os.kill(running.delayer_pid, signal.SIGHUP)
        pid = running.delayer_pid
    else:
        # a delayer that died hard may have left rules behind: start from a clean interface
        _remove_leftovers(netns, ifname, directory)
        (directory / "status.json").unlink(missing_ok=True)
        pid = (spawn or netns_spawner(netns))(delayer_argv(ifname, directory, seconds))

    def settled() -> bool:
        status = _read_json(directory / "status.json")
        if status is not None and status.get("generation") == generation and status.get("state") != "starting":
            return True
        if status is not None and status.get("pid") and not _pid_exists(int(status["pid"])):
            return True
        return status is None and not _pid_exists(pid)

    if not _wait(settled, APPLY_BUDGET_S):
        raise LabError(
            f"the delayer (pid {pid}) for {netns}/{ifname} did not apply the impairment within "
            f"{APPLY_BUDGET_S} s; see its log, then `bgpctl lab fault clear`"
        )
    status = _read_json(directory / "status.json") or {}
    if status.get("state") != "running" or status.get("generation") != generation:
        raise LabError(
            f"the delayer for {netns}/{ifname} could not apply the impairment: "
            f"{status.get('error', 'it exited without saying why; see its log')}"
        )
    applied = current(netns, ifname)
    if applied is None:
        raise LabError(f"the delayer for {netns}/{ifname} exited right after applying the impairment")
    return applied


def _remove_leftovers(netns: str, ifname: str, directory: Path) -> bool:
    removed = nft.remove_queue(ifname, netns)
    removed = nft.delete_table(nft.impair_table(ifname), netns) or removed
    status = _read_json(directory / "status.json")
    if status is not None and status.get("backend") == "netem":
        removed = _remove_netem(netns, ifname) or removed
    nft.remove_sink_if_unused(netns)
    return removed


def _remove_netem(netns: str, ifname: str) -> bool:
    with IPRoute(netns=netns, flags=0) as ipr:
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            return False
        kinds = [q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(index=idx[0]) if q["parent"] == 0xFFFFFFFF]
        if "netem" not in kinds:
            return False
        try:
            ipr.tc("del", index=idx[0], root=True)
        except NetlinkError:
            return False
        return True


def clear_impairment(netns: str, ifname: str) -> bool:
    """Stop the delayer (it removes its rules) and remove anything a dead one left; True if any."""
    directory = state_dir(netns, ifname)
    if not directory.exists():
        return _remove_leftovers(netns, ifname, directory)
    with _locked(directory):
        had = _clear_locked(netns, ifname, directory)
    for d in (directory, directory.parent):
        try:
            d.rmdir()
        except OSError:
            break
    return had


def _clear_locked(netns: str, ifname: str, directory: Path) -> bool:
    status = _read_json(directory / "status.json")
    had = False
    if status is not None and delayer_alive(int(status["pid"]), ifname):
        had = True
        pid = int(status["pid"])
        os.kill(pid, signal.SIGTERM)
        if not _wait(lambda: not delayer_alive(pid, ifname), EXIT_BUDGET_S):
            if delayer_alive(pid, ifname):
                os.kill(pid, signal.SIGKILL)
            _wait(lambda: not delayer_alive(pid, ifname), EXIT_BUDGET_S)
    had = _remove_leftovers(netns, ifname, directory) or had
    for name in ("status.json", "params.json", "status.tmp", "params.tmp"):
        (directory / name).unlink(missing_ok=True)
    return had
