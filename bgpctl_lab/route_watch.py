"""Watch a node's kernel routes during a drill and count next-hop changes.

FRR's ``show ip route ... json`` has no change counter, so a background thread dumps the node's main
routing table (netlink, in the node's namespace; the IPv4 or IPv6 table, or both, as the watched prefixes are)
every ``interval_ms`` and records each time the set of next hops of a watched prefix differs from the previous
poll. That is what forwarding used: the kernel FIB, after zebra. Changes shorter than the interval can be
missed; the report says the interval.

The pure helpers (:func:`nexthops_of`, :func:`changes`) do the shaping; :class:`RouteWatcher` only polls.
"""

from __future__ import annotations

import ipaddress
import itertools
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict
from pyroute2 import IPRoute

MAIN_TABLE = 254

NextHops = tuple[str, ...]  # sorted gateway addresses; () = no route (or a route without a gateway)


class RouteChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    at_s: float  # seconds since the watch started (the drill's meter start)
    prefix: str
    nexthops: list[str]  # the new set; [] = the route is gone


def _attr(msg: Mapping[str, Any], name: str) -> Any:
    for key, value in msg.get("attrs", ()):
        if key == name:
            return value
    return None


def nexthops_of(routes: Iterable[Mapping[str, Any]], prefixes: Sequence[str]) -> dict[str, NextHops]:
    """Next-hop gateways of each watched prefix in a netlink route dump (pyroute2 messages).

    An ECMP route carries RTA_MULTIPATH (one entry per next hop; the kernel expands a nexthop-group
    route this way too), a single-path route RTA_GATEWAY. A prefix missing from the dump maps to ()."""
    wanted = {str(ipaddress.ip_network(p)): p for p in prefixes}
    out: dict[str, NextHops] = dict.fromkeys(prefixes, ())
    for msg in routes:
        dst = _attr(msg, "RTA_DST")
        if dst is None or _attr(msg, "RTA_TABLE") not in (None, MAIN_TABLE):
            continue
        key = f"{dst}/{msg.get('dst_len')}"
        if key not in wanted:
            continue
        gws: set[str] = set()
        multipath = _attr(msg, "RTA_MULTIPATH")
        if multipath:
            for nh in multipath:
                gw = _attr(nh, "RTA_GATEWAY")
                if gw:
                    gws.add(str(gw))
        gw = _attr(msg, "RTA_GATEWAY")
        if gw:
            gws.add(str(gw))
        out[wanted[key]] = tuple(sorted(set(out[wanted[key]]) | gws))
    return out


def changes(samples: Sequence[tuple[float, Mapping[str, NextHops]]]) -> list[RouteChange]:
    """The changes between consecutive samples (the first sample is the baseline, not a change)."""
    out: list[RouteChange] = []
    for (_, before), (at, after) in itertools.pairwise(samples):
        for prefix, hops in after.items():
            if before.get(prefix) != hops:
                out.append(RouteChange(at_s=round(at, 3), prefix=prefix, nexthops=list(hops)))
    return out


class RouteWatcher:
    """Poll ``netns``'s main table every ``interval_ms`` in a thread until :meth:`stop`.

    Only changes are kept (a soak of 10 minutes at 20 ms is 30 000 polls)."""

    def __init__(self, netns: str, prefixes: Sequence[str], *, interval_ms: float, t0: float | None = None) -> None:
        self.netns = netns
        self.prefixes = list(prefixes)
        # the family of the dump: AF_UNSPEC (both tables) as soon as one watched prefix is IPv6
        nets = [ipaddress.ip_network(p) for p in self.prefixes]
        self.family = socket.AF_INET6 if all(n.version == 6 for n in nets) else socket.AF_INET
        if {n.version for n in nets} == {4, 6}:
            self.family = socket.AF_UNSPEC
        self.interval_s = interval_ms / 1000
        self.t0 = time.monotonic() if t0 is None else t0
        self.polls = 0
        self.errors: list[str] = []
        self.baseline: dict[str, NextHops] | None = None
        self._samples: list[tuple[float, dict[str, NextHops]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"route-watch-{netns}", daemon=True)

    def start(self) -> RouteWatcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        ip = IPRoute(netns=self.netns, flags=0)  # flags=0: never create a missing namespace
        try:
            last: dict[str, NextHops] | None = None
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    routes = ip.route("dump", family=self.family, table=MAIN_TABLE)
                    now_hops = nexthops_of(routes, self.prefixes)
                except Exception as e:  # kept for the report; a drill must not die of one bad poll
                    if len(self.errors) < 10:
                        self.errors.append(f"{type(e).__name__}: {e}")
                    now_hops = last or {}
                at = time.monotonic() - self.t0
                self.polls += 1
                if last is None:
                    self.baseline = now_hops
                    self._samples.append((at, now_hops))
                elif now_hops != last:
                    self._samples.append((at, now_hops))
                last = now_hops
                next_at += self.interval_s
                self._stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            ip.close()

    def stop(self) -> list[RouteChange]:
        self._stop.set()
        self._thread.join(timeout=5)
        return changes(self._samples)
