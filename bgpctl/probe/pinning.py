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
short ``bgpctl probe`` run leaves a running daemon's pins alone; ``purge()`` takes away all of it;
``sweep()`` (the daemon, at start) also every other rule carrying the marks (a crashed daemon's, whose
policy had other paths) with its table's routes.

Shape: what to change is decided by pure functions (:func:`plan_install`, :func:`plan_take_away`,
:func:`check_tables`, :func:`describe`) from an :class:`Observed` snapshot of one pin's netlink state;
the async methods of :class:`Pinning` (pyroute2's ``AsyncIPRoute``) only read snapshots and apply steps.
The daemon awaits them on its own event loop; the synchronous methods (``bgpctl probe``) run the same
coroutines with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, Literal, TypeVar

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from bgpctl.errors import ProbeError
from bgpctl.policy.model import Policy

RT_PROTO_BGPCTL = 200
RULE_PRIORITY_MIN = 9200
RULE_PRIORITY_MAX = 9299
RULE_PRIORITY = RULE_PRIORITY_MIN

Part = Literal["addr", "route", "rule"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True, order=True)
class Pin:
    """Probes from ``source`` go through ``table``, whose default route is ``next_hop``."""

    source: str
    table: int
    next_hop: str
    label: str = ""  # "region/path" ("region/path/ipv6": a dual-stack path's IPv6 pin), for messages

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ip_address(self.source).version == 6 else socket.AF_INET

    @property
    def host_len(self) -> int:
        return 32 if self.family == socket.AF_INET else 128


def pins_from_policy(policy: Policy) -> list[Pin]:
    """Pure: one pin per path, and a second one (IPv6) per dual-stack path: its ``probe_source_v6`` through
    the same table number, whose IPv6 FIB gets the default route via ``next_hop_v6`` (label
    ``region/path/ipv6``). Two pins of one family may share a source or a table only if they pin it
    identically; the IPv4 and IPv6 FIBs of a table number are apart, so a path's two pins share it."""
    pins: list[Pin] = []
    for region_name, region in sorted(policy.regions.items()):
        for path_name, path in sorted(region.paths.items()):
            label = f"{region_name}/{path_name}"
            candidates = [Pin(str(path.probe_source), path.table, str(path.next_hop), label)]
            if path.probe_source_v6 is not None:
                next_hop_v6 = path.next_hop_for(6)
                if next_hop_v6 is None:  # policy check refuses this (xref); a policy built in code may not
                    raise ProbeError(
                        f"path {label}: probe_source_v6 {path.probe_source_v6} but no IPv6 next hop: "
                        f"give the path next_hop_v6 or remove probe_source_v6"
                    )
                candidates.append(Pin(str(path.probe_source_v6), path.table, str(next_hop_v6), f"{label}/ipv6"))
            for pin in candidates:
                if ip_address(pin.source).version != ip_address(pin.next_hop).version:
                    raise ProbeError(
                        f"path {pin.label}: probe_source {pin.source} and next_hop {pin.next_hop} "
                        f"are different IP versions; use one family per path"
                    )
                for other in pins:
                    if other.family != pin.family:
                        continue
                    same = (other.source, other.table, other.next_hop) == (pin.source, pin.table, pin.next_hop)
                    if not same and (other.source == pin.source or other.table == pin.table):
                        what = "probe_source" if other.source == pin.source else "table"
                        raise ProbeError(
                            f"paths {other.label} and {pin.label} share a {what} but pin it "
                            f"differently: give each path its own probe_source and table"
                        )
                pins.append(pin)
    return pins


# ------------------------------------------------------------------------------------ snapshots (values)


@dataclass(frozen=True, slots=True)
class RouteSeen:
    """A route of a pin's table."""

    dst: str | None
    dst_len: int
    priority: int | None
    gateway: str | None
    proto: int

    @property
    def default(self) -> bool:
        return self.dst_len == 0


@dataclass(frozen=True, slots=True)
class RuleSeen:
    """A rule carrying bgpctl's marks (priority range and protocol) of the pin's family."""

    src: str | None
    src_len: int
    table: int
    priority: int


@dataclass(frozen=True, slots=True)
class AddrSeen:
    """An address equal to the pin's source, on any interface."""

    index: int
    prefixlen: int
    proto: int


@dataclass(frozen=True, slots=True)
class Observed:
    """One pin's netlink state, read at once; what the planners decide from."""

    routes: tuple[RouteSeen, ...] = ()
    rules: tuple[RuleSeen, ...] = ()
    addrs: tuple[AddrSeen, ...] = ()
    oif: int | None = None  # the interface the next hop is reached through (install only)
    oif_problem: str | None = None  # why the next hop cannot be a pin's gateway (install only)


@dataclass(frozen=True, slots=True)
class Step:
    """One netlink change: ``await ipr.<call>(command, **args)``; ``creates`` names the part it adds."""

    call: Literal["addr", "route", "rule"]
    command: Literal["add", "replace", "del"]
    args: tuple[tuple[str, Any], ...]
    creates: Part | None = None

    def kwargs(self) -> dict[str, Any]:
        return dict(self.args)


def _step(
    call: Literal["addr", "route", "rule"],
    command: Literal["add", "replace", "del"],
    creates: Part | None = None,
    **args: Any,
) -> Step:
    return Step(call, command, tuple(sorted(args.items())), creates)


# ------------------------------------------------------------------------------------ pure planning


def rule_matches(rule: RuleSeen, pin: Pin) -> bool:
    return rule.src == pin.source and rule.src_len == pin.host_len and rule.table == pin.table


def check_tables(pins: Iterable[Pin], observed: dict[Pin, Observed]) -> None:
    """Refuse (before anything changes) a pin whose table holds routes bgpctl did not install."""
    for pin in pins:
        foreign = [r for r in observed[pin].routes if r.proto != RT_PROTO_BGPCTL]
        if foreign:
            raise ProbeError(
                f"path {pin.label}: routing table {pin.table} holds {len(foreign)} "
                f"route(s) bgpctl did not install (proto {sorted({r.proto for r in foreign})}): "
                f"give the path a table number of its own in the policy"
            )


def _route_del(route: RouteSeen, pin: Pin) -> Step:
    key: dict[str, Any] = {"family": pin.family, "table": pin.table, "dst_len": route.dst_len, "proto": RT_PROTO_BGPCTL}
    if route.dst is not None:
        key["dst"] = route.dst
    if route.priority is not None:
        key["priority"] = route.priority
    return _step("route", "del", **key)


def _rule_del(rule: RuleSeen, pin: Pin) -> Step:
    return _step(
        "rule",
        "del",
        family=pin.family,
        src=rule.src,
        src_len=rule.src_len,
        table=rule.table,
        priority=rule.priority,
        protocol=RT_PROTO_BGPCTL,
    )


def plan_install(pin: Pin, seen: Observed, *, priority: int, add_addresses: bool) -> list[Step]:
    """The steps that make ``pin`` true, from its snapshot; idempotent (a second plan adds nothing new
    but the ``replace`` of the default route, which changes nothing)."""
    if seen.oif_problem is not None or seen.oif is None:
        raise ProbeError(f"path {pin.label}: {seen.oif_problem or 'no interface reaches the next hop'}")
    steps: list[Step] = []
    if add_addresses and not seen.addrs:
        steps.append(
            _step(
                "addr", "add", "addr", index=seen.oif, address=pin.source, prefixlen=pin.host_len, proto=RT_PROTO_BGPCTL
            )
        )
    has_default = any(r.default for r in seen.routes)
    steps.append(
        _step(
            "route",
            "replace",
            None if has_default else "route",
            dst="0.0.0.0" if pin.family == socket.AF_INET else "::",
            dst_len=0,
            gateway=pin.next_hop,
            oif=seen.oif,
            table=pin.table,
            proto=RT_PROTO_BGPCTL,
            family=pin.family,
        )
    )
    for route in seen.routes:  # e.g. an old next hop of ours; a metric-0 default is replaced in place
        if route.default and (route.gateway == pin.next_hop or not route.priority):
            continue
        steps.append(_route_del(route, pin))
    for rule in seen.rules:  # our rule for this source, but towards another table: stale
        if rule.src == pin.source and not rule_matches(rule, pin):
            steps.append(_rule_del(rule, pin))
    if not any(rule_matches(r, pin) for r in seen.rules):
        steps.append(
            _step(
                "rule",
                "add",
                "rule",
                family=pin.family,
                src=pin.source,
                src_len=pin.host_len,
                table=pin.table,
                priority=priority,
                protocol=RT_PROTO_BGPCTL,
            )
        )
    return steps


def plan_take_away(pin: Pin, seen: Observed, wanted: Callable[[Part, Pin], bool]) -> list[Step]:
    """The steps that take away the parts of ``pin`` that carry bgpctl's marks and that ``wanted`` names."""
    steps: list[Step] = []
    if wanted("rule", pin):
        steps += [_rule_del(r, pin) for r in seen.rules if rule_matches(r, pin)]
    if wanted("route", pin):
        steps += [_route_del(r, pin) for r in seen.routes if r.proto == RT_PROTO_BGPCTL]
    if wanted("addr", pin):
        steps += [
            _step("addr", "del", index=a.index, address=pin.source, prefixlen=a.prefixlen)
            for a in seen.addrs
            if a.proto == RT_PROTO_BGPCTL
        ]
    return steps


def orphans(marked: Iterable[tuple[int, RuleSeen]], pins: Iterable[Pin]) -> list[Pin]:
    """Pure: the rules carrying bgpctl's marks that no pin of ``pins`` owns (left by a crashed daemon whose
    policy had other paths), as pins to take away whole: the rule, its table's ``proto 200`` routes and a
    ``proto 200`` address equal to its source. ``marked``: (address family, rule) pairs."""
    keep = list(pins)
    out: set[Pin] = set()
    for family, rule in marked:
        if rule.src is None:
            continue
        stale = Pin(rule.src, rule.table, rule.src, f"stale rule {rule.src} -> table {rule.table}")
        if stale.family != family or rule.src_len != stale.host_len:
            continue
        if not any(rule_matches(rule, pin) for pin in keep):
            out.add(stale)
    return sorted(out)


def describe(pin: Pin, seen: Observed) -> dict[str, Any]:
    """What is installed for ``pin``: its rules, its table's routes, and whether bgpctl owns the address."""
    return {
        "rules": sum(1 for r in seen.rules if rule_matches(r, pin)),
        "routes": [{"default": r.default, "gateway": r.gateway, "proto": r.proto} for r in seen.routes],
        "address_owned": any(a.proto == RT_PROTO_BGPCTL for a in seen.addrs),
    }


# ------------------------------------------------------------------------------------ netlink I/O


def _attr(msg: Any, name: str, default: Any = None) -> Any:
    value = msg.get_attr(name)
    return default if value is None else value


@asynccontextmanager
async def _iproute(netns: str | None) -> AsyncIterator[Any]:
    # flags=0: a mistyped namespace must not be created (pyroute2 0.9 defaults to O_CREAT)
    ipr = AsyncIPRoute() if netns is None else AsyncIPRoute(netns=netns, flags=0)
    try:
        try:
            await ipr.setup_endpoint()
        except FileNotFoundError:
            raise ProbeError(f"network namespace '{netns}' does not exist: check 'ip netns list'") from None
        yield ipr
    finally:
        ipr.close()


async def _table_routes(ipr: Any, pin: Pin) -> tuple[RouteSeen, ...]:
    return tuple(
        [
            RouteSeen(
                _attr(r, "RTA_DST"),
                int(r["dst_len"]),
                _attr(r, "RTA_PRIORITY"),
                _attr(r, "RTA_GATEWAY"),
                int(r["proto"]),
            )
            async for r in await ipr.get_routes(family=pin.family, table=pin.table)
            if _attr(r, "RTA_TABLE", r["table"]) == pin.table
        ]
    )


async def _owned_rules(ipr: Any, pin: Pin) -> tuple[RuleSeen, ...]:
    return tuple(
        [
            RuleSeen(
                _attr(r, "FRA_SRC"),
                int(r["src_len"]),
                int(_attr(r, "FRA_TABLE", r["table"])),
                int(_attr(r, "FRA_PRIORITY", 0)),
            )
            async for r in await ipr.get_rules(family=pin.family)
            if RULE_PRIORITY_MIN <= _attr(r, "FRA_PRIORITY", 0) <= RULE_PRIORITY_MAX
            and _attr(r, "FRA_PROTOCOL", 0) == RT_PROTO_BGPCTL
        ]
    )


async def _marked_rules(ipr: Any) -> list[tuple[int, RuleSeen]]:
    """Every rule of either family with bgpctl's marks (priority range and protocol)."""
    out: list[tuple[int, RuleSeen]] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        out += [
            (
                family,
                RuleSeen(
                    _attr(r, "FRA_SRC"),
                    int(r["src_len"]),
                    int(_attr(r, "FRA_TABLE", r["table"])),
                    int(_attr(r, "FRA_PRIORITY", 0)),
                ),
            )
            async for r in await ipr.get_rules(family=family)
            if RULE_PRIORITY_MIN <= _attr(r, "FRA_PRIORITY", 0) <= RULE_PRIORITY_MAX
            and _attr(r, "FRA_PROTOCOL", 0) == RT_PROTO_BGPCTL
        ]
    return out


async def _addresses(ipr: Any, pin: Pin) -> tuple[AddrSeen, ...]:
    return tuple(
        [
            AddrSeen(int(a["index"]), int(a["prefixlen"]), int(_attr(a, "IFA_PROTO", 0)))
            async for a in await ipr.get_addr(family=pin.family)
            if _attr(a, "IFA_LOCAL", _attr(a, "IFA_ADDRESS")) == pin.source
            or (pin.family == socket.AF_INET6 and _attr(a, "IFA_ADDRESS") == pin.source)
        ]
    )


async def _oif(ipr: Any, pin: Pin) -> tuple[int | None, str | None]:
    try:
        routes = list(await ipr.route("get", dst=pin.next_hop))
    except NetlinkError as e:
        return None, (
            f"next hop {pin.next_hop} is not reachable from here ({e.args[-1]}); the TGW must be on a connected network"
        )
    gateway = _attr(routes[0], "RTA_GATEWAY")
    if gateway is not None:
        return None, (
            f"next hop {pin.next_hop} is not on a connected network (reached via {gateway}); the "
            f"TGW must be directly reachable from the probe host"
        )
    return int(_attr(routes[0], "RTA_OIF")), None


async def observe(ipr: Any, pin: Pin, *, next_hop: bool = False) -> Observed:
    """Read one pin's state (and, with ``next_hop``, how its next hop is reached)."""
    oif, problem = await _oif(ipr, pin) if next_hop else (None, None)
    return Observed(
        routes=await _table_routes(ipr, pin),
        rules=await _owned_rules(ipr, pin),
        addrs=await _addresses(ipr, pin),
        oif=oif,
        oif_problem=problem,
    )


async def apply(ipr: Any, steps: Iterable[Step]) -> None:
    for s in steps:
        await getattr(ipr, s.call)(s.command, **s.kwargs())


def _run_sync(coro: Coroutine[Any, Any, T], what: str) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    coro.close()
    raise ProbeError(
        f"Pinning.{what}() was called inside a running event loop: await Pinning.{what}_async() there instead"
    )


class Pinning:
    """Installs and removes the pins of a set of paths in one network namespace (None = this one).

    Async: ``await install_async()`` / ``remove_async()`` / ``purge_async()`` / ``state_async()``, or
    ``async with``. Sync (no running event loop): ``install()`` / ``remove()`` / ``purge()`` / ``state()``,
    or ``with``."""

    def __init__(
        self,
        pins: Iterable[Pin],
        *,
        netns: str | None = None,
        priority: int = RULE_PRIORITY,
        add_addresses: bool = True,
    ) -> None:
        if not RULE_PRIORITY_MIN <= priority <= RULE_PRIORITY_MAX:
            raise ProbeError(
                f"rule priority {priority} is outside bgpctl's range {RULE_PRIORITY_MIN}-{RULE_PRIORITY_MAX}"
            )
        self.pins = sorted(set(pins))
        self.netns, self.priority, self.add_addresses = netns, priority, add_addresses
        self._created: set[tuple[Part, Pin]] = set()

    # ---- async (the daemon)

    async def install_async(self) -> None:
        """Make the pins true; remember which of their parts this call created (for :meth:`remove`)."""
        async with _iproute(self.netns) as ipr:
            check_tables(self.pins, {pin: await observe(ipr, pin) for pin in self.pins})
            for pin in self.pins:  # one at a time: a pin sharing a source with the last sees its rule
                steps = plan_install(
                    pin,
                    await observe(ipr, pin, next_hop=True),
                    priority=self.priority,
                    add_addresses=self.add_addresses,
                )
                for s in steps:
                    if s.creates is not None:
                        self._created.add((s.creates, pin))
                    await apply(ipr, [s])

    async def remove_async(self) -> None:
        """Take away what :meth:`install` created in this object's lifetime, and nothing else.

        So a ``bgpctl probe`` run next to a running daemon leaves the daemon's pins in place.
        """
        created = set(self._created)
        await self._take_away(lambda part, pin: (part, pin) in created)

    async def purge_async(self) -> None:
        """Take away every part of these pins that carries bgpctl's marks, whoever installed it
        (a daemon's exit, or the clean-up after a crash)."""
        await self._take_away(lambda part, pin: True)

    async def sweep_async(self) -> list[str]:
        """The clean-up after a crash (a daemon killed with SIGKILL removes nothing): take away every part
        of these pins that carries bgpctl's marks, and every other rule with bgpctl's marks together with
        its table's ``proto 200`` routes and address. Returns the labels of the stale pins found."""
        async with _iproute(self.netns) as ipr:
            found = [
                pin.label for pin in self.pins if any(rule_matches(r, pin) for r in (await observe(ipr, pin)).rules)
            ]
            stale = orphans(await _marked_rules(ipr), self.pins)
            for pin in [*self.pins, *stale]:
                await apply(ipr, plan_take_away(pin, await observe(ipr, pin), lambda part, pin: True))
        self._created.clear()
        return found + [pin.label for pin in stale]

    async def _take_away(self, wanted: Callable[[Part, Pin], bool]) -> None:
        async with _iproute(self.netns) as ipr:
            for pin in self.pins:
                await apply(ipr, plan_take_away(pin, await observe(ipr, pin), wanted))
        self._created.clear()

    async def state_async(self) -> dict[str, Any]:
        """What is installed now, for tests and ``bgpctl probe --show-pins``: rules, routes, addresses."""
        async with _iproute(self.netns) as ipr:
            return {pin.label: describe(pin, await observe(ipr, pin)) for pin in self.pins}

    async def __aenter__(self) -> Pinning:
        await self.install_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.remove_async()

    # ---- sync (the CLI, tests): the same coroutines, outside any event loop

    def install(self) -> None:
        _run_sync(self.install_async(), "install")

    def remove(self) -> None:
        _run_sync(self.remove_async(), "remove")

    def purge(self) -> None:
        _run_sync(self.purge_async(), "purge")

    def state(self) -> dict[str, Any]:
        return _run_sync(self.state_async(), "state")

    def sweep(self) -> list[str]:
        return _run_sync(self.sweep_async(), "sweep")

    def __enter__(self) -> Pinning:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
