"""FRR per namespace: which daemons a node runs, their command lines, vtysh, and the lab modes.

Each node's daemons run with the FRR pathspace ``-N <netns>`` (sockets and pid files in
``/run/frr/<netns>/``), ``-P 0`` (no TCP vty) and a log file in the node's run directory. The
node's ``frr.conf`` is pushed with ``vtysh -N <netns> -f``. The pure helpers here shape command lines
and read vtysh JSON; the runner does the I/O.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bgpctl.errors import LabError

FRR_BIN = Path("/usr/lib/frr")
FRR_RUN = Path("/run/frr")
VTYSH = "vtysh"
# The daemons the runner knows how to start, in start order. zebra and staticd always run (as FRR's own
# start script does); the others when the node's `daemons` file says `<daemon>=yes`.
ALWAYS = ("zebra", "staticd")
OPTIONAL = ("bgpd", "bfdd")
# Lab modes: which peer-group is administratively shut on every FRR node that defines it.
#   DIRECT     = the edge <-> TGW sessions (the TGWs announce the Connect prefixes themselves)
#   CONTROLLER = the sessions with bgpctl (ExaBGP) on cr
#   no-controller-bfd: as no-controller, plus BFD (profile edge-tgw: 300 ms x 3) on the DIRECT sessions
MODES: Mapping[str, str] = {"no-controller": "CONTROLLER", "controller": "DIRECT", "no-controller-bfd": "CONTROLLER"}
MODE_GROUPS = ("CONTROLLER", "DIRECT")
# Modes with BFD: mode -> (peer-group, BFD profile defined in the `bfd` block of the node's frr.conf).
# In every other mode the group's BFD is removed, so that switching modes on a running lab is clean.
BFD_MODES: Mapping[str, tuple[str, str]] = {"no-controller-bfd": ("DIRECT", "edge-tgw")}
BFD_GROUP = "DIRECT"
_VTYSH_NOISE = re.compile(r"^% Can't open configuration file /etc/frr/.*/vtysh\.conf.*$\n?", re.M)


def available() -> str | None:
    """None when FRR can run here, else what is missing (for a skip reason or an error message)."""
    missing = [str(FRR_BIN / d) for d in (*ALWAYS, *OPTIONAL) if not (FRR_BIN / d).exists()]
    if missing:
        return f"FRR is not installed ({', '.join(missing)} missing): apt-get install frr"
    return None


def daemons(daemons_file: Path | None) -> list[str]:
    """Daemons to start for a node: zebra and staticd, plus every supported ``<name>=yes`` of the file."""
    enabled: set[str] = set()
    if daemons_file is not None:
        for line in daemons_file.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and value.strip().strip('"') == "yes":
                enabled.add(key.strip())
    return [*ALWAYS, *(d for d in OPTIONAL if d in enabled)]


def socket_dir(ns: str) -> Path:
    return FRR_RUN / ns


def daemon_argv(daemon: str, ns: str, log_file: Path) -> list[str]:
    argv = [str(FRR_BIN / daemon), "-N", ns, "-P", "0", "--log", f"file:{log_file}", "--log-level", "debugging"]
    if daemon == "zebra":
        argv += ["-s", "90000000"]
    return argv


def vtysh(ns: str, commands: Sequence[str], *, timeout: float = 30) -> str:
    """Run vtysh commands against one node; LabError with FRR's message when one fails."""
    argv = [VTYSH, "-N", ns]
    for c in commands:
        argv += ["-c", c]
    return _run_vtysh(argv, ns, " ; ".join(commands), timeout)


def config_commands(conf_text: str) -> list[str]:
    """An integrated frr.conf as one vtysh ``-c`` sequence (``configure terminal`` first).

    Pushed this way rather than with ``vtysh -f``: ``-f`` wraps the file in start/end-of-configuration
    markers, and bgpd 8.4 then holds every peer for about 4 s ("released from config-pending hold").
    ``frr version``/``frr defaults`` lines only mean something in a start-up file and are skipped.
    """
    lines = [line.rstrip() for line in conf_text.splitlines()]
    body = [
        line for line in lines if line.strip() and not line.lstrip().startswith("!") and not line.startswith("frr ")
    ]
    return ["configure terminal", *body, "end"]


def config_argv(ns: str, conf: Path) -> list[str]:
    argv = [VTYSH, "-N", ns]
    for c in config_commands(conf.read_text(encoding="utf-8")):
        argv += ["-c", c]
    return argv


def push_config(ns: str, conf: Path, *, timeout: float = 60) -> None:
    _run_vtysh(config_argv(ns, conf), ns, f"(the commands of {conf})", timeout)


def _run_vtysh(argv: list[str], ns: str, what: str, timeout: float) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise LabError(
            f"vtysh -N {ns} {what}: no answer within {timeout:.0f} s; is FRR running there? (bgpctl lab status)"
        ) from e
    err = strip_noise(proc.stderr).strip()
    if proc.returncode != 0:
        detail = (err or proc.stdout.strip() or f"exit code {proc.returncode}").splitlines()
        raise LabError(f"vtysh -N {ns} {what} failed: {' / '.join(detail[-5:])}")
    return proc.stdout


def strip_noise(stderr: str) -> str:
    """vtysh -N complains on every call that /etc/frr/<ns>/vtysh.conf is missing: harmless, dropped."""
    return _VTYSH_NOISE.sub("", stderr)


def parse_json(ns: str, command: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise LabError(
            f"vtysh -N {ns} -c {command!r} did not return JSON (add 'json' to the command?): {text[:200]!r}"
        ) from e


def bgp_asn(conf_text: str) -> int | None:
    m = re.search(r"^router bgp (\d+)\s*$", conf_text, re.M)
    return int(m.group(1)) if m else None


def peer_groups(conf_text: str) -> list[str]:
    return re.findall(r"^\s*neighbor (\S+) peer-group\s*$", conf_text, re.M)


def mode_commands(conf_text: str, mode: str) -> list[str]:
    """vtysh commands that put one node's BGP into ``mode`` ([] when the node has no mode peer-groups)."""
    if mode not in MODES:
        raise LabError(f"unknown lab mode {mode!r}; use one of: {', '.join(MODES)}")
    asn = bgp_asn(conf_text)
    groups = [g for g in peer_groups(conf_text) if g in MODE_GROUPS]
    if asn is None or not groups:
        return []
    shut = MODES[mode]
    cmds = ["configure terminal", f"router bgp {asn}"]
    cmds += [f"neighbor {g} shutdown" if g == shut else f"no neighbor {g} shutdown" for g in groups]
    if BFD_GROUP in groups:
        bfd_group, profile = BFD_MODES.get(mode, (None, None))
        cmds += (
            [f"neighbor {BFD_GROUP} bfd", f"neighbor {BFD_GROUP} bfd profile {profile}"]
            if bfd_group == BFD_GROUP
            else [f"no neighbor {BFD_GROUP} bfd"]
        )
    return [*cmds, "end"]


def frr_only(mode: str) -> bool:
    """True for the modes in which the FRR<->FRR sessions carry the Connect routes (no controller)."""
    return MODES.get(mode) == "CONTROLLER"


def session_states(summary: Any) -> dict[str, str]:
    """``show bgp summary json`` -> {peer address: state} over every address family (IPv4 first)."""
    states: dict[str, str] = {}
    if not isinstance(summary, Mapping):
        return states
    for af in summary.values():
        if isinstance(af, Mapping):
            for peer, info in (af.get("peers") or {}).items():
                states.setdefault(peer, str(info.get("state", "")))
    return states


def admin_down(state: str) -> bool:
    return "Admin" in state
