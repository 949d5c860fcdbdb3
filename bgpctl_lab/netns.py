"""Network namespaces, veth pairs and addresses, with pyroute2; nothing is ever created in the root namespace.

Every ``IPRoute`` here is opened with ``flags=0`` so that a missing namespace raises instead of being
created (pyroute2 0.9 defaults to ``O_CREAT``). A veth pair is created inside one node's namespace
with its peer end placed directly in the other node's namespace.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from bgpctl.errors import LabError
from bgpctl_lab.poll import until

NETNS_DIR = Path("/run/netns")


@dataclass(frozen=True)
class NsId:
    """Identity of a network namespace: (st_dev, st_ino) of its nsfs inode. Exact, unlike names."""

    dev: int
    ino: int


def exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def ns_id(name: str) -> NsId | None:
    try:
        st = os.stat(NETNS_DIR / name)
    except FileNotFoundError:
        return None
    return NsId(st.st_dev, st.st_ino)


def create(name: str) -> None:
    """Create the namespace if it is missing (``ip netns add``) and bring its loopback up."""
    if not exists(name):
        netns.create(name)
    with ipr(name) as ip:
        ip.link("set", index=_index(ip, "lo", name), state="up")


def remove(name: str) -> None:
    if exists(name):
        netns.remove(name)


@contextlib.contextmanager
def ipr(name: str) -> Iterator[IPRoute]:
    """An IPRoute bound to an existing namespace; LabError (never creation) when it is missing."""
    try:
        ip = IPRoute(netns=name, flags=0)
    except FileNotFoundError as e:
        raise LabError(f"network namespace {name} does not exist; run `bgpctl lab up` first") from e
    try:
        yield ip
    finally:
        ip.close()


def _index(ip: IPRoute, ifname: str, ns: str) -> int:
    found = ip.link_lookup(ifname=ifname)
    if not found:
        raise LabError(f"no interface {ifname} in namespace {ns}")
    return int(found[0])


def has_link(name: str, ifname: str) -> bool:
    with ipr(name) as ip:
        return bool(ip.link_lookup(ifname=ifname))


def add_veth(ns_a: str, if_a: str, ns_b: str, if_b: str, mtu: int | None = None) -> None:
    """Create a veth pair: ``if_a`` in ``ns_a``, ``if_b`` directly in ``ns_b``; both up. Idempotent."""
    with ipr(ns_a) as ip:
        if not ip.link_lookup(ifname=if_a):
            peer: dict[str, object] = {"ifname": if_b, "net_ns_fd": ns_b}
            ip.link("add", ifname=if_a, kind="veth", peer=peer)
        idx = _index(ip, if_a, ns_a)
        if mtu:
            ip.link("set", index=idx, mtu=mtu)
        ip.link("set", index=idx, state="up")
    with ipr(ns_b) as ip:
        idx = _index(ip, if_b, ns_b)
        if mtu:
            ip.link("set", index=idx, mtu=mtu)
        ip.link("set", index=idx, state="up")


def add_address(name: str, ifname: str, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
    """Add an address to an interface; an address that is already there is fine."""
    with ipr(name) as ip:
        idx = _index(ip, ifname, name)
        try:
            ip.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen)
        except NetlinkError as e:
            if e.code != errno.EEXIST:
                raise LabError(f"cannot add {iface} to {ifname} in {name}: {e}") from e


def set_link(name: str, ifname: str, up: bool) -> None:
    with ipr(name) as ip:
        ip.link("set", index=_index(ip, ifname, name), state="up" if up else "down")


def link_names(name: str) -> list[str]:
    with ipr(name) as ip:
        return [str(link.get_attr("IFLA_IFNAME")) for link in ip.get_links()]


# ---------------------------------------------------------------------------- processes


def proc_netns(pid: int) -> NsId | None:
    try:
        st = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return NsId(st.st_dev, st.st_ino)


def proc_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:
        return None  # a zombie or a kernel thread
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def _protected() -> set[int]:
    """This process and its ancestors: never signalled, whatever namespace they sit in."""
    pids = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
        pids.add(pid)
    return pids


def pids_in(ids: Iterable[NsId]) -> list[int]:
    """Every process whose network namespace is one of ``ids`` (compared by inode, not by name)."""
    wanted = set(ids)
    if not wanted:
        return []
    protected = _protected()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            pid = int(entry.name)
            if pid not in protected and proc_netns(pid) in wanted:
                found.append(pid)
    return found


def proc_starttime(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot: with the pid, identifies it across exec()."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def terminate(pids: Iterable[int], grace: float = 1.0) -> None:
    """SIGTERM, then SIGKILL whatever is still alive after ``grace`` seconds; reap our own children."""
    pids = [p for p in pids if p not in _protected()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if until(lambda: _all_gone(pids), grace, interval_s=0.02):
        return
    for pid in pids:
        if alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    until(lambda: _all_gone(pids), 2.0)


def _all_gone(pids: list[int]) -> bool:
    _reap(pids)
    return not any(alive(p) for p in pids)


def _reap(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
