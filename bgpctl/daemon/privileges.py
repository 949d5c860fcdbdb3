"""What the daemon needs from the kernel, checked before it touches anything (docs/deploy.md, "Privileges").

The privilege model (deploy/bgpctl.service runs it this way):

* bgpctl runs as an unprivileged user (``bgpctl``) with two ambient capabilities: ``CAP_NET_ADMIN`` for
  the probes' policy routing (rules, tables, addresses over netlink) and ``CAP_NET_RAW`` for ICMP probes
  (raw sockets). Nothing else: ExaBGP connects out from an ephemeral port (no listener, so no
  ``CAP_NET_BIND_SERVICE``), TCP-MD5 and GTSM are plain socket options.
* ExaBGP is bgpctl's child and inherits the same user; ``speaker.exabgp.user`` must then name that user
  (ExaBGP cannot switch users without ``CAP_SETUID``/``CAP_SETGID``, and bgpctl cannot hand the API
  socket to another user without ``CAP_CHOWN``).
* Run as root instead, bgpctl needs ``CAP_SETUID``, ``CAP_SETGID`` and ``CAP_CHOWN`` as well whenever
  ``speaker.exabgp.user`` is not root (ExaBGP drops to that user itself).

:func:`problems` is pure (any uid, user table and capability mask); :func:`check` reads this process's.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass

from bgpctl.errors import BgpctlError
from bgpctl.policy.model import Policy, ProbeProtocol

CAP_CHOWN = 0
CAP_SETGID = 6
CAP_SETUID = 7
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
CAP_NAMES = {
    CAP_CHOWN: "CAP_CHOWN",
    CAP_SETGID: "CAP_SETGID",
    CAP_SETUID: "CAP_SETUID",
    CAP_NET_ADMIN: "CAP_NET_ADMIN",
    CAP_NET_RAW: "CAP_NET_RAW",
}


class PrivilegeError(BgpctlError):
    """The daemon lacks a capability it needs, or its ExaBGP user cannot work with its own."""


@dataclass(frozen=True)
class Identity:
    euid: int
    name: str  # the effective user's name (or the uid as text when it has none)
    caps: int  # the effective capability set, bit n = capability n


def effective_caps(status: str) -> int:
    """The ``CapEff`` mask from the text of ``/proc/self/status``."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    raise PrivilegeError("no CapEff line in /proc/self/status: is /proc mounted?")


def _missing(caps: int, needed: list[int]) -> list[str]:
    return [CAP_NAMES[c] for c in needed if not caps >> c & 1]


def problems(policy: Policy, me: Identity, uid_of: Callable[[str], int | None]) -> list[str]:
    """Every reason this identity cannot run ``policy``'s daemon (one line each, with what to do)."""
    out: list[str] = []
    needed = [CAP_NET_ADMIN]
    if any(t.protocol is ProbeProtocol.ICMP for s in policy.services.values() for t in s.probe.targets.values()):
        needed.append(CAP_NET_RAW)
    if missing := _missing(me.caps, needed):
        out.append(
            f"bgpctl daemon needs {' and '.join(missing)} (policy routing for the probes"
            f"{', raw sockets for ICMP probes' if CAP_NET_RAW in needed else ''}) and runs without: "
            f"start it as deploy/bgpctl.service does (AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW) or as root"
        )
    user = policy.speaker.exabgp.user
    uid = uid_of(user)
    if uid is None:
        out.append(f"speaker.exabgp.user {user!r} does not exist: create it, or set it to {me.name!r}")
    elif uid != me.euid:
        if me.euid != 0:
            out.append(
                f"speaker.exabgp.user is {user!r} but bgpctl runs as {me.name!r}: ExaBGP (its child) can only "
                f"run as {me.name!r}; set speaker.exabgp.user: {me.name}"
            )
        elif missing := _missing(me.caps, [CAP_SETUID, CAP_SETGID, CAP_CHOWN]):
            out.append(
                f"speaker.exabgp.user {user!r}: bgpctl runs as root without {', '.join(missing)}, so ExaBGP "
                f"cannot drop to {user!r}; run bgpctl as User={user} (deploy/bgpctl.service) or allow them"
            )
    return out


def _uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def current() -> Identity:
    euid = os.geteuid()
    try:
        name = pwd.getpwuid(euid).pw_name
    except KeyError:
        name = str(euid)
    with open("/proc/self/status", encoding="ascii") as f:
        caps = effective_caps(f.read())
    return Identity(euid, name, caps)


def check(policy: Policy) -> None:
    """Refuse (one line per problem) when this process cannot run ``policy``'s daemon."""
    found = problems(policy, current(), _uid_of)
    if found:
        raise PrivilegeError("\n".join(found))
