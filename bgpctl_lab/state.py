"""The on-disk state of one lab: /run/bgpctl-lab/<name>/state.json, written atomically, under a lock.

It is written *before* each step of ``up`` (what is about to be created) so that ``down`` can remove
everything even after the runner itself crashed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bgpctl.errors import LabError

STATE_ROOT = Path(os.environ.get("BGPCTL_LAB_STATE_ROOT", "/run/bgpctl-lab"))
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.]{0,19}$")
VERSION = 1


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise LabError(
            f"lab name {name!r} is not valid: 1 to 20 letters, digits, '_' or '.', starting with a "
            "letter or digit (no '-': namespaces are named <lab>-<node>)"
        )
    return name


def lab_dir(name: str) -> Path:
    return STATE_ROOT / check_name(name)


@dataclass
class Proc:
    """A process the lab started: an FRR daemon or a spawned helper. Killed only while it is provably
    the same process (see runner._is_ours)."""

    pid: int
    node: str
    tag: str
    argv: list[str]
    log: str
    start: int | None = None  # /proc/PID/stat starttime, read right after the start


@dataclass
class NodeState:
    netns: str
    dir: str
    env: dict[str, str] = field(default_factory=dict)
    frr_conf: str | None = None
    daemons: list[str] = field(default_factory=list)
    bird_conf: str | None = None  # the node runs BIRD 2 (lab variants --edge bird, bird-no-addpath)
    created: bool = False  # namespace, links and exec done


@dataclass
class LabState:
    name: str
    topology: str
    mode: str
    phase: str  # "creating" until `up` finished, then "up"
    run_dir: str
    nodes: dict[str, NodeState] = field(default_factory=dict)
    frr: list[Proc] = field(default_factory=list)
    spawned: list[Proc] = field(default_factory=list)
    version: int = VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> LabState:
        raw: dict[str, Any] = json.loads(text)
        nodes = {k: NodeState(**v) for k, v in raw.pop("nodes", {}).items()}
        frr = [Proc(**p) for p in raw.pop("frr", [])]
        spawned = [Proc(**p) for p in raw.pop("spawned", [])]
        return cls(nodes=nodes, frr=frr, spawned=spawned, **raw)


def state_file(name: str) -> Path:
    return lab_dir(name) / "state.json"


def read(name: str) -> LabState | None:
    path = state_file(name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return LabState.from_json(text)
    except (ValueError, TypeError, KeyError) as e:
        raise LabError(
            f"{path} is unreadable ({e}); remove the lab's namespaces with `ip netns del` and then {lab_dir(name)}"
        ) from e


def write(state: LabState) -> None:
    """Atomic: write a temporary file, fsync, rename over the old state."""
    path = state_file(state.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp.{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(state.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def locked_dir(directory: Path) -> Iterator[None]:
    """One writer at a time between processes: an exclusive flock on ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def locked(name: str) -> contextlib.AbstractContextManager[None]:
    """Serialise read-modify-write of one lab's state between processes (flock on the lab directory)."""
    return locked_dir(lab_dir(name))
