"""A two-namespace lab for the speaker: ``tbspk_cr`` (ExaBGP, run by the Speaker) and ``tbspk_peer``
(a real FRR zebra + bgpd, AS 65010). One veth pair created inside ``tbspk_cr`` (never in the root
namespace), IPv4 198.18.1.0/24 and IPv6 2001:db8:1::/64.

Teardown kills only processes recorded here (checking /proc/PID/cmdline first) and any process whose
network namespace is one of ours, then removes the namespaces and the FRR run directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog
from pyroute2 import IPRoute, netns
from ruamel.yaml import YAML

from bgpctl.policy.model import Policy

CR = "tbspk_cr"
PEER = "tbspk_peer"
NAMESPACES = (CR, PEER)
FRR_RUN = Path("/var/run/frr") / PEER
MD5_SECRET = "tbspk-md5-s3cret"

T = TypeVar("T")


@dataclass
class Lab:
    work: Path
    pids: dict[str, int] = field(default_factory=dict)

    def vtysh(self, *commands: str) -> str:
        args = ["vtysh", "-N", PEER]
        for c in commands:
            args += ["-c", c]
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=True)
        return out.stdout

    def vtysh_json(self, command: str) -> Any:
        return json.loads(self.vtysh(command))

    def bgp_routes(self, afi: str = "ipv4") -> dict[str, list[dict[str, Any]]]:
        """FRR's ``show bgp AFI unicast json`` routes: prefix -> paths."""
        doc = self.vtysh_json(f"show bgp {afi} unicast json")
        return dict(doc.get("routes", {}))

    def kernel_routes(self, prefix: str) -> str:
        out = subprocess.run(
            ["ip", "-n", PEER, "route", "show", prefix], capture_output=True, text=True, timeout=10, check=True
        )
        return out.stdout.strip()

    def neighbor(self, address: str) -> dict[str, Any]:
        doc = self.vtysh_json(f"show bgp neighbors {address} json")
        return dict(doc.get(address, {}))


def poll(what: str, fn: Callable[[], T], ok: Callable[[T], bool], budget_s: float, every_s: float = 0.1) -> T:
    """Call ``fn`` until ``ok(result)``; AssertionError naming ``what`` and the last result after ``budget_s``."""
    deadline = time.monotonic() + budget_s
    while True:
        value = fn()
        if ok(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not reached within {budget_s} s; last value: {value!r}")
        time.sleep(every_s)


def _frr_config() -> str:
    return "\n".join(
        [
            "frr defaults traditional",
            "router bgp 65010",
            " bgp router-id 198.18.1.1",
            " no bgp ebgp-requires-policy",
            " no bgp network import-check",
            " neighbor 198.18.1.2 remote-as 65000",
            " neighbor 198.18.1.2 timers 3 9",
            " neighbor 198.18.1.2 timers connect 1",
            f" neighbor 198.18.1.2 password {MD5_SECRET}",
            " neighbor 198.18.1.2 ttl-security hops 1",
            " neighbor 2001:db8:1::2 remote-as 65000",
            " neighbor 2001:db8:1::2 timers 3 9",
            " neighbor 2001:db8:1::2 timers connect 1",
            " address-family ipv4 unicast",
            "  network 192.0.2.0/24",
            "  no neighbor 2001:db8:1::2 activate",
            " exit-address-family",
            " address-family ipv6 unicast",
            "  network 2001:db8:77::/48",
            "  neighbor 2001:db8:1::2 activate",
            " exit-address-family",
            "",
        ]
    )


def ns_pids(names: tuple[str, ...] = NAMESPACES) -> list[int]:
    """PIDs whose network namespace is one of ``names``."""
    wanted = set()
    for n in names:
        with contextlib.suppress(OSError):
            wanted.add(os.stat(f"/run/netns/{n}").st_ino)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{entry}/ns/net").st_ino in wanted:
                found.append(int(entry))
    return found


def _kill_recorded(pid: int, needle: str) -> None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return
    if needle in cmdline:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def teardown(lab: Lab | None) -> None:
    if lab is not None:
        for name, pid in lab.pids.items():
            _kill_recorded(pid, name)
    deadline = time.monotonic() + 5
    while ns_pids() and time.monotonic() < deadline:
        for pid in ns_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM if time.monotonic() < deadline - 2 else signal.SIGKILL)
        time.sleep(0.1)
    for pid in ns_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for n in NAMESPACES:
        if n in netns.listnetns():
            netns.remove(n)
    shutil.rmtree(FRR_RUN, ignore_errors=True)


def _read_pid(path: Path) -> int:
    def read() -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().strip())
        return None

    pid = poll(f"pid file {path}", read, lambda v: v is not None, 10.0)
    assert pid is not None
    return pid


@contextlib.contextmanager
def lab(work: Path) -> Iterator[Lab]:
    teardown(None)  # leftovers of an interrupted run of this very test (our prefix only)
    the_lab = Lab(work)
    try:
        for n in NAMESPACES:
            netns.create(n)
        with IPRoute(netns=CR, flags=0) as ipr:
            ipr.link("add", ifname="cr0", kind="veth", peer={"ifname": "peer0", "net_ns_fd": PEER})
            (idx,) = ipr.link_lookup(ifname="cr0")
            ipr.addr("add", index=idx, address="198.18.1.2", prefixlen=24)
            ipr.addr("add", index=idx, address="2001:db8:1::2", prefixlen=64, flags=0x02)  # IFA_F_NODAD
            ipr.link("set", index=idx, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        with IPRoute(netns=PEER, flags=0) as ipr:
            (idx,) = ipr.link_lookup(ifname="peer0")
            ipr.addr("add", index=idx, address="198.18.1.1", prefixlen=24)
            ipr.addr("add", index=idx, address="2001:db8:1::1", prefixlen=64, flags=0x02)
            ipr.link("set", index=idx, state="up")
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        FRR_RUN.mkdir(parents=True, exist_ok=True)
        shutil.chown(FRR_RUN, "frr", "frr")
        (the_lab.work / "frr").mkdir(exist_ok=True)
        shutil.chown(the_lab.work / "frr", "frr", "frr")
        for daemon in ("zebra", "bgpd"):
            pidfile = FRR_RUN / f"{daemon}.pid"
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    PEER,
                    f"/usr/lib/frr/{daemon}",
                    "-d",
                    "-N",
                    PEER,
                    "-P",
                    "0",
                    "-i",
                    str(pidfile),
                    "--log",
                    f"file:{the_lab.work / 'frr' / daemon}.log",
                ],
                check=True,
                timeout=20,
            )
            the_lab.pids[daemon] = _read_pid(pidfile)
        conf = the_lab.work / "frr.conf"
        conf.write_text(_frr_config())
        subprocess.run(["vtysh", "-N", PEER, "-f", str(conf)], check=True, timeout=20, capture_output=True)
        yield the_lab
    finally:
        teardown(the_lab)


def make_policy(**speaker_exabgp: Any) -> Policy:
    """The lab policy (policies/lab.yaml) with this lab's peers: edge (IPv4, MD5 from $TBSPK_MD5, GTSM,
    ADD-PATH send), edge6 (IPv6) on the FRR in tbspk_peer, and tgw-use1 (configured, never reachable)."""
    root = Path(__file__).resolve().parents[2]
    doc = YAML(typ="safe").load((root / "policies" / "lab.yaml").read_text())
    doc["speaker"]["local_addresses"] = ["198.18.1.2", "2001:db8:1::2"]
    doc["speaker"]["exabgp"] = {
        "binary": str(Path(sys.executable).parent / "exabgp"),
        "user": "root",
        "graceful_restart": 120,
        **speaker_exabgp,
    }
    doc["peers"] = [
        {
            "name": "edge",
            "address": "198.18.1.1",
            "peer_as": 65010,
            "role": "edge",
            "timers": {"hold_time": 9},
            "md5_password": {"env": "TBSPK_MD5"},
            "ttl_security": True,
            "add_path": "send",
        },
        {
            "name": "edge6",
            "address": "2001:db8:1::1",
            "peer_as": 65010,
            "role": "edge",
            "families": ["ipv6-unicast"],
            "timers": {"hold_time": 9},
        },
        {
            "name": "tgw-use1",
            "address": "198.18.1.11",
            "peer_as": 64512,
            "role": "transit-gateway",
            "timers": {"hold_time": 9},
        },
    ]
    doc["guards"]["allowlist"] = ["203.0.113.0/24", "192.0.2.0/24", "2001:db8:100::/48"]
    return Policy.model_validate_json(json.dumps(doc))


@dataclass(frozen=True)
class FrrPath:
    next_hop: str
    med: int | None
    as_path: str
    communities: tuple[str, ...]
    large_communities: tuple[str, ...]
    stale: bool


def frr_paths(the_lab: Lab, afi: str, from_peer: str) -> dict[tuple[str, int], FrrPath]:
    """Every path FRR holds from ``from_peer``: (prefix, ADD-PATH rx id) -> attributes, read from FRR's JSON."""
    out: dict[tuple[str, int], FrrPath] = {}
    for prefix, paths in the_lab.bgp_routes(afi).items():
        if not any(p.get("peerId") == from_peer for p in paths):
            continue
        detail = the_lab.vtysh_json(f"show bgp {afi} unicast {prefix} json")
        for p in detail.get("paths", []):
            if p.get("peer", {}).get("peerId") != from_peer:
                continue
            out[(prefix, int(p.get("addpathRxId", 0)))] = FrrPath(
                next_hop=p["nexthops"][0]["ip"],
                med=p.get("metric"),
                as_path=p.get("aspath", {}).get("string", ""),
                communities=tuple(p.get("community", {}).get("list", [])),
                large_communities=tuple(p.get("largeCommunity", {}).get("list", [])),
                stale=bool(p.get("stale", False)),
            )
    return out


def expected_paths(routes: dict[Any, Any]) -> dict[tuple[str, int], FrrPath]:
    """What FRR should hold for a peer's part of a bgpctl Rib."""
    return {
        (k.prefix, k.path_id): FrrPath(
            a.next_hop,
            a.med if a.med is not None else None,
            " ".join(str(x) for x in a.as_path),
            tuple(a.communities),
            tuple(a.large_communities),
            False,
        )
        for k, a in routes.items()
    }


class LogTap:
    """A structlog logger that keeps every event (all levels) as a dict, and its JSON text."""

    def __init__(self) -> None:
        self.sink = structlog.testing.CapturingLogger()
        self.log: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
            self.sink,
            processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
            wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        )

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        docs = [json.loads(c.args[0]) for c in self.sink.calls]
        return [d for d in docs if name is None or d["event"] == name]

    def text(self) -> str:
        return "\n".join(str(c.args[0]) for c in self.sink.calls)
