"""Policy routing that pins each path's probes to that path's TGW, whatever the main table says.

For every path of the policy::

    ip rule add from <probe_source> lookup <table> priority 9200 protocol 200
    ip route replace default via <next_hop> dev <if> table <table> proto 200
    ip addr add <probe_source>/32 dev <if> proto 200        # only if the address is missing

Ownership: bgpctl only ever touches what carries its marks: rules in its priority range
(:data:`RULE_PRIORITY_MIN`..:data:`RULE_PRIORITY_MAX`) with rule protocol :data:`RT_PROTO_BGPCTL`, routes with
``proto 200`` in the policy's probe tables, and addresses with ``proto 200`` (Linux >= 5.18). A probe
table that holds any route bgpctl did not install is refused, not overwritten. ``install()`` is
idempotent (run it twice: nothing changes the second time); ``remove()`` takes away exactly what carries
the marks for the policy's paths: by default only what this object's ``install()`` created, so that a
short ``bgpctl probe`` run leaves a running daemon's pins alone; ``purge()`` takes away all of it.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from bgpctl.errors import ProbeError
from bgpctl.policy.model import Policy

RT_PROTO_BGPCTL = 200
RULE_PRIORITY_MIN = 9200
RULE_PRIORITY_MAX = 9299
RULE_PRIORITY = RULE_PRIORITY_MIN


@dataclass(frozen=True, slots=True, order=True)
class Pin:
    """Probes from ``source`` go through ``table``, whose default route is ``next_hop``."""

    source: str
    table: int
    next_hop: str
    label: str = ""  # "region/path", for messages

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ip_address(self.source).version == 6 else socket.AF_INET


def pins_from_policy(policy: Policy) -> list[Pin]:
    """Pure: one pin per path. Two paths may share a source or a table only if they pin it identically."""
    pins: list[Pin] = []
    for region_name, region in sorted(policy.regions.items()):
        for path_name, path in sorted(region.paths.items()):
            pin = Pin(str(path.probe_source), path.table, str(path.next_hop), f"{region_name}/{path_name}")
            if ip_address(pin.source).version != ip_address(pin.next_hop).version:
                raise ProbeError(f"path {pin.label}: probe_source {pin.source} and next_hop {pin.next_hop} "
                                 f"are different IP versions; use one family per path")
            for other in pins:
                same = (other.source, other.table, other.next_hop) == (pin.source, pin.table, pin.next_hop)
                if not same and (other.source == pin.source or other.table == pin.table):
                    what = "probe_source" if other.source == pin.source else "table"
                    raise ProbeError(f"paths {other.label} and {pin.label} share a {what} but pin it "
                                     f"differently: give each path its own probe_source and table")
            pins.append(pin)
    return pins


def _attr(msg: Any, name: str, default: Any = None) -> Any:
    value = msg.get_attr(name)
    return default if value is None else value


@contextmanager
def _iproute(netns: str | None) -> Iterator[Any]:
    try:
        ipr = IPRoute() if netns is None else IPRoute(netns=netns, flags=0)
    except FileNotFoundError:
        raise ProbeError(f"network namespace '{netns}' does not exist: check 'ip netns list'") from None
    try:
        yield ipr
    finally:
        ipr.close()


def _is_default(route: Any) -> bool:
    return int(route["dst_len"]) == 0


class Pinning:
    """Installs and removes the pins of a set of paths in one network namespace (None = this one)."""

    def __init__(self, pins: Iterable[Pin], *, netns: str | None = None, priority: int = RULE_PRIORITY,
                 add_addresses: bool = True) -> None:
        if not RULE_PRIORITY_MIN <= priority <= RULE_PRIORITY_MAX:
            raise ProbeError(f"rule priority {priority} is outside bgpctl's range "
                             f"{RULE_PRIORITY_MIN}-{RULE_PRIORITY_MAX}")
        self.pins = sorted(set(pins))
        self.netns, self.priority, self.add_addresses = netns, priority, add_addresses
        self._created: set[tuple[str, Pin]] = set()

    def __enter__(self) -> Pinning:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # ---- reading state

    def _table_routes(self, ipr: Any, pin: Pin) -> list[Any]:
        return [r for r in ipr.get_routes(family=pin.family, table=pin.table)
                if _attr(r, "RTA_TABLE", r["table"]) == pin.table]

    def _owned_rules(self, ipr: Any, family: int) -> list[Any]:
        return [r for r in ipr.get_rules(family=family)
                if RULE_PRIORITY_MIN <= _attr(r, "FRA_PRIORITY", 0) <= RULE_PRIORITY_MAX
                and _attr(r, "FRA_PROTOCOL", 0) == RT_PROTO_BGPCTL]

    @staticmethod
    def _rule_matches(rule: Any, pin: Pin) -> bool:
        return (_attr(rule, "FRA_SRC") == pin.source and int(rule["src_len"]) == (32 if pin.family ==
                                                                                  socket.AF_INET else 128)
                and _attr(rule, "FRA_TABLE", rule["table"]) == pin.table)

    def _addresses(self, ipr: Any, pin: Pin) -> list[Any]:
        return [a for a in ipr.get_addr(family=pin.family)
                if _attr(a, "IFA_LOCAL", _attr(a, "IFA_ADDRESS")) == pin.source
                or (pin.family == socket.AF_INET6 and _attr(a, "IFA_ADDRESS") == pin.source)]

    def _oif(self, ipr: Any, pin: Pin) -> int:
        try:
            routes = list(ipr.route("get", dst=pin.next_hop))
        except NetlinkError as e:
            raise ProbeError(f"path {pin.label}: next hop {pin.next_hop} is not reachable from here "
                             f"({e.args[-1]}); the TGW must be on a connected network") from None
        gateway = _attr(routes[0], "RTA_GATEWAY")
        if gateway is not None:
            raise ProbeError(f"path {pin.label}: next hop {pin.next_hop} is not on a connected network "
                             f"(reached via {gateway}); the TGW must be directly reachable from the "
                             f"probe host")
        return int(_attr(routes[0], "RTA_OIF"))

    # ---- changing state

    def install(self) -> None:
        """Make the pins true; remember which of their parts this call created (for :meth:`remove`)."""
        with _iproute(self.netns) as ipr:
            for pin in self.pins:  # check everything before changing anything
                foreign = [r for r in self._table_routes(ipr, pin) if r["proto"] != RT_PROTO_BGPCTL]
                if foreign:
                    raise ProbeError(f"path {pin.label}: routing table {pin.table} holds {len(foreign)} "
                                     f"route(s) bgpctl did not install (proto "
                                     f"{sorted({int(r['proto']) for r in foreign})}): give the path a "
                                     f"table number of its own in the policy")
            for pin in self.pins:
                oif = self._oif(ipr, pin)
                if self.add_addresses and not self._addresses(ipr, pin):
                    self._created.add(("addr", pin))
                    ipr.addr("add", index=oif, address=pin.source,
                             prefixlen=32 if pin.family == socket.AF_INET else 128, proto=RT_PROTO_BGPCTL)
                dst = "0.0.0.0" if pin.family == socket.AF_INET else "::"
                if not any(_is_default(r) for r in self._table_routes(ipr, pin)):
                    self._created.add(("route", pin))
                ipr.route("replace", dst=dst, dst_len=0, gateway=pin.next_hop, oif=oif, table=pin.table,
                          proto=RT_PROTO_BGPCTL, family=pin.family)
                for stale in self._table_routes(ipr, pin):  # e.g. an old next hop of ours
                    if _is_default(stale) and _attr(stale, "RTA_GATEWAY") == pin.next_hop:
                        continue
                    ipr.route("del", **self._route_key(stale, pin))
                owned = self._owned_rules(ipr, pin.family)
                for rule in owned:  # our rule for this source, but towards another table: stale
                    if _attr(rule, "FRA_SRC") == pin.source and not self._rule_matches(rule, pin):
                        self._del_rule(ipr, rule, pin.family)
                if not any(self._rule_matches(r, pin) for r in owned):
                    self._created.add(("rule", pin))
                    ipr.rule("add", family=pin.family, src=pin.source,
                             src_len=32 if pin.family == socket.AF_INET else 128, table=pin.table,
                             priority=self.priority, protocol=RT_PROTO_BGPCTL)

    @staticmethod
    def _route_key(route: Any, pin: Pin) -> dict[str, Any]:
        key: dict[str, Any] = {"family": pin.family, "table": pin.table, "dst_len": int(route["dst_len"]),
                               "proto": RT_PROTO_BGPCTL}
        dst = _attr(route, "RTA_DST")
        if dst is not None:
            key["dst"] = dst
        priority = _attr(route, "RTA_PRIORITY")
        if priority is not None:
            key["priority"] = priority
        return key

    @staticmethod
    def _del_rule(ipr: Any, rule: Any, family: int) -> None:
        ipr.rule("del", family=family, src=_attr(rule, "FRA_SRC"), src_len=int(rule["src_len"]),
                 table=_attr(rule, "FRA_TABLE", rule["table"]), priority=_attr(rule, "FRA_PRIORITY"),
                 protocol=RT_PROTO_BGPCTL)

    def remove(self) -> None:
        """Take away what :meth:`install` created in this object's lifetime, and nothing else.

        So a ``bgpctl probe`` run next to a running daemon leaves the daemon's pins in place.
        """
        self._take_away(lambda part, pin: (part, pin) in self._created)
        self._created.clear()

    def purge(self) -> None:
        """Take away every part of these pins that carries bgpctl's marks, whoever installed it
        (a daemon's exit, or the clean-up after a crash)."""
        self._take_away(lambda part, pin: True)
        self._created.clear()

    def _take_away(self, wanted: Callable[[str, Pin], bool]) -> None:
        with _iproute(self.netns) as ipr:
            for pin in self.pins:
                if wanted("rule", pin):
                    for rule in self._owned_rules(ipr, pin.family):
                        if self._rule_matches(rule, pin):
                            self._del_rule(ipr, rule, pin.family)
                if wanted("route", pin):
                    for route in self._table_routes(ipr, pin):
                        if route["proto"] == RT_PROTO_BGPCTL:
                            ipr.route("del", **self._route_key(route, pin))
                if wanted("addr", pin):
                    for addr in self._addresses(ipr, pin):
                        if _attr(addr, "IFA_PROTO", 0) == RT_PROTO_BGPCTL:
                            ipr.addr("del", index=addr["index"], address=pin.source,
                                     prefixlen=addr["prefixlen"])

    def state(self) -> dict[str, Any]:
        """What is installed now, for tests and ``bgpctl probe --show-pins``: rules, routes, addresses."""
        out: dict[str, Any] = {}
        with _iproute(self.netns) as ipr:
            for pin in self.pins:
                rules = [r for r in self._owned_rules(ipr, pin.family) if self._rule_matches(r, pin)]
                routes = self._table_routes(ipr, pin)
                out[pin.label] = {
                    "rules": len(rules),
                    "routes": [{"default": _is_default(r), "gateway": _attr(r, "RTA_GATEWAY"),
                                "proto": int(r["proto"])} for r in routes],
                    "address_owned": any(_attr(a, "IFA_PROTO", 0) == RT_PROTO_BGPCTL
                                         for a in self._addresses(ipr, pin)),
                }
        return out
