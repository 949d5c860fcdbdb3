"""Two namespaces joined by a veth pair (tests/topologies/impair-pair.clab.yml) and a bounded UDP stream
across it: what the impairment tests, the delayer's tests and bench/bench_delayer.py share."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2 import netns as pnetns

from bgpctl.errors import LabError
from bgpctl_lab import impair, runner
from bgpctl_lab.poll import eventually
from bgpctl_lab.runner import Lab

ADDR_A, ADDR_B, PORT = "198.18.77.1", "198.18.77.2", 47000


ADDR6_A, ADDR6_B = "2001:db8:77::1", "2001:db8:77::2"


SCM_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


TOPOLOGY = Path(__file__).resolve().parents[1] / "topologies" / "impair-pair.clab.yml"


_counter = iter(range(1_000_000))


@dataclass
class Pair:
    a: str
    b: str
    ifname: str = "va"


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    pnetns.pushns(name)
    try:
        yield
    finally:
        pnetns.popns()


def _netns_inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino


def _kill_leftover_delayers(names: list[str]) -> None:
    """Safety net: delayers still running inside our namespaces (by nsfs inode and cmdline)."""
    inodes = {_netns_inode(n) for n in names if os.path.exists(f"/run/netns/{n}")}
    for pid_s in os.listdir("/proc"):
        if not pid_s.isdigit():
            continue
        try:
            ino = os.stat(f"/proc/{pid_s}/ns/net").st_ino
            cmd = Path(f"/proc/{pid_s}/cmdline").read_bytes()
        except OSError:
            continue
        if ino in inodes and impair.DELAYER_MODULE.encode() in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_s), signal.SIGKILL)


def _carrier(pair: Pair) -> list[str]:
    down = []
    for ns, ifname in ((pair.a, pair.ifname), (pair.b, "vb")):
        with IPRoute(netns=ns, flags=0) as ip:
            (link,) = ip.get_links(ifname=ifname)
            if link.get_attr("IFLA_OPERSTATE") != "UP":
                down.append(f"{ns}/{ifname} {link.get_attr('IFLA_OPERSTATE')}")
    return down


@contextlib.contextmanager
def pair_of(lab: Lab) -> Iterator[Pair]:
    """The pair of a running impair-pair lab, once both ends have carrier; on the way out the impairment
    is cleared and any delayer left in it killed (taking the lab down is the caller's)."""
    pair = Pair(a=lab.netns("a"), b=lab.netns("b"))
    try:
        eventually("veth carrier on both ends", budget="link_carrier", probe=lambda: _carrier(pair), check=list)
        yield pair
    finally:
        with contextlib.suppress(LabError):
            impair.clear_impairment(pair.a, pair.ifname)
        _kill_leftover_delayers([pair.a, pair.b])


@contextlib.contextmanager
def make_pair() -> Iterator[Pair]:
    """A pair outside pytest (bench/bench_delayer.py): lab ``bd<pid>_<n>``, down on the way out."""
    with runner.running(TOPOLOGY, f"bd{os.getpid()}_{next(_counter)}") as lab, pair_of(lab) as pair:
        yield pair


@dataclass
class Stream:
    """What one bounded UDP stream saw: arrivals in order as (seq, one-way delay in ms)."""

    sent: int
    arrivals: list[tuple[int, float]] = field(default_factory=list)

    @property
    def unique(self) -> dict[int, float]:
        first: dict[int, float] = {}
        for seq, d in self.arrivals:
            first.setdefault(seq, d)
        return first

    @property
    def delays(self) -> list[float]:
        return list(self.unique.values())

    @property
    def lost(self) -> int:
        return self.sent - len(self.unique)

    @property
    def duplicates(self) -> int:
        return len(self.arrivals) - len(self.unique)

    @property
    def out_of_order(self) -> int:
        """Arrivals whose sequence number is lower than one that arrived before them."""
        top, n = -1, 0
        for seq in (s for s, _ in self.arrivals):
            if seq < top:
                n += 1
            top = max(top, seq)
        return n


def udp_stream(p: Pair, count: int, rate_pps: float, drain_s: float = 1.0) -> Stream:
    """Send ``count`` datagrams at ``rate_pps`` from A to B (bounded: count/rate + drain_s seconds)."""
    with in_netns(p.a):
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with in_netns(p.b):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with tx, rx:
        tx.bind((ADDR_A, 0))
        rx.bind((ADDR_B, PORT))
        rx.setsockopt(socket.SOL_SOCKET, SCM_TIMESTAMPNS, 1)
        rx.setblocking(False)
        out = Stream(sent=count)

        def drain(until: float) -> None:
            while True:
                left = until - time.monotonic()
                ready, _, _ = select.select([rx], [], [], max(0.0, left))
                if not ready:
                    return
                while True:
                    try:
                        data, anc, _, _ = rx.recvmsg(64, socket.CMSG_SPACE(16))
                    except BlockingIOError:
                        break
                    (stamp,) = [c for c in anc if c[0] == socket.SOL_SOCKET and c[1] == SCM_TIMESTAMPNS]
                    sec, nsec = struct.unpack("qq", stamp[2][:16])
                    seq, sent_ns = struct.unpack("!Iq", data[:12])
                    out.arrivals.append((seq, (sec * 1_000_000_000 + nsec - sent_ns) / 1e6))

        start = time.monotonic()
        for i in range(count):
            drain(start + i / rate_pps)
            tx.sendto(struct.pack("!Iq", i, time.time_ns()), (ADDR_B, PORT))
        last = time.monotonic()
        end = last + drain_s
        while time.monotonic() < end:
            drain(min(end, time.monotonic() + 0.05))
            if len(out.unique) == count and time.monotonic() > last + 0.2:
                break
        return out
