"""Cross-reference checks of a policy: the rules that tie its sections together.

They run on the raw data of the file (plain dicts and lists), not on a validated Policy, so that a file
with a broken section still gets its cross-reference problems reported in the same run. Whatever is
malformed is skipped here: the structural pass (pydantic) reports it.

Each rule yields ``(Problem, loc)``; the loc lets the loader sort problems by their position.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import TypeVar

from bgpctl.errors import Problem
from bgpctl.inputfile import InputFileError, read_regular
from bgpctl.policy.allowlist import allowed
from bgpctl.policy.ha import penalty_problems
from bgpctl.policy.model import Family, Mode, PathState, PeerRole
from bgpctl.policy.secrets import md5_password_problem
from bgpctl.policy.yamlsource import Loc, Locator, render_path

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_ROLES = frozenset(PeerRole)
_MODES = frozenset(Mode)

Found = Iterator[tuple[Problem, Loc]]
_K = TypeVar("_K")
_V = TypeVar("_V")


class _Ctx:
    def __init__(self, filename: str, locator: Locator) -> None:
        self.filename = filename
        self.locator = locator

    def at(self, loc: Loc, message: str, hint: str = "") -> tuple[Problem, Loc]:
        return Problem(self.filename, self.locator.line(loc), render_path(loc), message, hint), loc


# --------------------------------------------------------------------------------------------
# tolerant readers: None means "missing or malformed: the structural pass reports it"


def _dict(v: object) -> dict[str, object] | None:
    return v if isinstance(v, dict) else None


def _list(v: object) -> list[object] | None:
    return v if isinstance(v, list) else None


def _name(v: object) -> str | None:
    return v if isinstance(v, str) and _NAME.match(v) else None


def _names(v: object) -> list[str] | None:
    """The keys of a name -> entry section; None if it is malformed or a key is not a valid name (the
    structural pass reports that, and a guess at the names would only add false cross-reference errors)."""
    if not isinstance(v, dict) or any(_name(k) is None for k in v):
        return None
    return list(v)


def _parsed(parse: Callable[[str], _V], v: object) -> _V | None:
    """``parse(v)`` for a string the parser accepts; None otherwise (the structural pass reports it)."""
    if not isinstance(v, str):
        return None
    try:
        return parse(v)
    except ValueError:
        return None


def _addr(v: object) -> IPv4Address | IPv6Address | None:
    return _parsed(ipaddress.ip_address, v)


def _net(v: object) -> IPv4Network | IPv6Network | None:
    return _parsed(ipaddress.ip_network, v)


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _hint_known(word: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    mean = f"did you mean '{close[0]}'? " if close else ""
    return f"{mean}known {what}: {', '.join(known)}" if known else f"define {what} first"


def _items(d: dict[str, object] | None) -> list[tuple[str, dict[str, object]]]:
    """Entries of a name -> mapping section whose value is a mapping."""
    if d is None:
        return []
    return [(k, v) for k, v in d.items() if isinstance(v, dict)]


def _family(v: IPv4Address | IPv6Address | IPv4Network | IPv6Network) -> str:
    return f"IPv{v.version}"


def address_of(entry: dict[str, object], field: str, version: int) -> IPv4Address | IPv6Address | None:
    """Of a path, probe target or the corporate section (raw data), the address of IP ``version`` that ``field``
    and its ``FIELD_v6`` companion give: ``field`` if it is of that version, else ``FIELD_v6`` for 6; None if
    there is none (or it is malformed: the structural pass reports that)."""
    first = _addr(entry.get(field))
    if first is not None and first.version == version:
        return first
    v6 = _addr(entry.get(f"{field}_v6")) if version == 6 else None
    return v6 if v6 is not None and v6.version == 6 else None


def lacks_family(entry: dict[str, object], field: str, version: int) -> bool:
    """``field`` is a valid address, and neither it nor ``FIELD_v6`` is of IP ``version``."""
    return _addr(entry.get(field)) is not None and address_of(entry, field, version) is None


# --------------------------------------------------------------------------------------------
# the rules


def check(data: dict[str, object], filename: str, locator: Locator) -> list[tuple[Problem, Loc]]:
    """Every cross-reference problem of one file's data."""
    c = _Ctx(filename, locator)
    out: list[tuple[Problem, Loc]] = []
    for rule in (_peers, _paths, _services, _corporate, _overrides, _sla_classes, _actions, _signals, _hooks, _ha):
        out.extend(rule(c, data))
    return out


def _peer_entries(data: dict[str, object]) -> list[tuple[int, dict[str, object]]]:
    peers = _list(data.get("peers")) or []
    return [(i, p) for i, p in enumerate(peers) if isinstance(p, dict)]


def _speaker_addresses(data: dict[str, object]) -> list[IPv4Address | IPv6Address] | None:
    speaker = _dict(data.get("speaker"))
    return _every(_addr, _list(speaker.get("local_addresses")) if speaker else None)


def _every(parse: Callable[[object], _V | None], raw: list[object] | None) -> list[_V] | None:
    """Every entry of ``raw`` parsed, or None if the list is missing or any entry does not parse."""
    parsed = [parse(v) for v in raw or []]
    return None if raw is None or any(v is None for v in parsed) else [v for v in parsed if v is not None]


def _claim(seen: dict[_K, _V], key: _K, owner: _V) -> _V | None:
    """``owner`` claims ``key``: None if it is the first, else whoever had it first."""
    first = seen.setdefault(key, owner)
    return None if first == owner else first


def _peer_once(c: _Ctx, seen: dict[_K, int], key: _K | None, i: int, *, field: str, what: str, hint: str) -> Found:
    """peers[i].field must not repeat an earlier peer's (``key`` None: malformed, reported elsewhere)."""
    if key is not None and (first := _claim(seen, key, i)) is not None:
        yield c.at(["peers", i, field], f"{what} is already used by peers[{first}]", hint)


# the peer rules in one pass over the entries, each an independent `if`
def _peers(c: _Ctx, data: dict[str, object]) -> Found:
    entries = _peer_entries(data)
    names: dict[str, int] = {}
    addresses: dict[IPv4Address | IPv6Address, int] = {}
    local = _speaker_addresses(data)
    for i, p in entries:
        name = _name(p.get("name"))
        yield from _peer_once(
            c, names, name, i, field="name", what=f"peer name '{name}'", hint="give every peer its own name"
        )
        address = _addr(p.get("address"))
        yield from _peer_once(
            c,
            addresses,
            address,
            i,
            field="address",
            what=f"address {address}",
            hint="one BGP session per neighbour address: remove the duplicate or fix the address",
        )
        if "local_address" in p and p["local_address"] is not None:
            la = _addr(p["local_address"])
            if la is not None and local is not None and la not in local:
                yield c.at(
                    ["peers", i, "local_address"],
                    f"{la} is not one of speaker.local_addresses",
                    f"add it there, or use one of: {', '.join(str(a) for a in local)}",
                )
            elif la is not None and address is not None and la.version != address.version:
                yield c.at(
                    ["peers", i, "local_address"],
                    f"{la} is {_family(la)} but the peer address {address} is {_family(address)}",
                    "a session's two ends are of one family: pick a local address of the peer's family",
                )
        elif address is not None and local is not None and not any(a.version == address.version for a in local):
            yield c.at(
                ["peers", i, "address"],
                f"no speaker.local_addresses entry is {_family(address)}, so this session has no local address",
                f"add an {_family(address)} address to speaker.local_addresses",
            )
        secret = _dict(p.get("md5_password"))
        file = secret.get("file") if secret is not None else None
        if isinstance(file, str) and not os.path.isabs(file):
            yield c.at(
                ["peers", i, "md5_password", "file"],
                f"secret file '{file}' is a relative path",
                "write an absolute path: the daemon does not run from the policy's directory",
            )
    roles = [p.get("role") for _, p in entries]
    if entries and all(r in _ROLES for r in roles) and PeerRole.EDGE not in roles:
        yield c.at(
            ["peers"],
            "no peer has role edge",
            "add the corporate edge router as a peer with role: edge; bgpctl announces the Connect prefixes to it",
        )
    used = {
        _name(path.get(field))
        for _, region in _items(_dict(data.get("regions")))
        for _, path in _items(_dict(region.get("paths")))
        for field in ("peer", "peer_v6")
    }
    if _dict(data.get("regions")) is not None:
        for i, p in entries:
            name = _name(p.get("name"))
            if p.get("role") == PeerRole.TRANSIT_GATEWAY and name is not None and name not in used:
                yield c.at(
                    ["peers", i, "name"],
                    f"transit-gateway peer '{name}' is not used by any path",
                    f"add a path with 'peer: {name}' under a region, or remove the peer",
                )


def _paths(c: _Ctx, data: dict[str, object]) -> Found:
    roles = {n: p.get("role") for _, p in _peer_entries(data) if (n := _name(p.get("name"))) is not None}
    entries = _peer_entries(data)
    named = [p for _, p in entries if _name(p.get("name")) is not None]
    peers_known = len(named) == len(entries) == len(_list(data.get("peers")) or [None])
    tgws = sorted(n for n, r in roles.items() if r == PeerRole.TRANSIT_GATEWAY)
    tables: dict[int, str] = {}
    sources: dict[IPv4Address | IPv6Address, str] = {}
    for rname, region in _items(_dict(data.get("regions"))):
        for pname, path in _items(_dict(region.get("paths"))):
            loc: list[str | int] = ["regions", rname, "paths", pname]
            here = render_path(loc)
            peer = _name(path.get("peer"))
            if peer is not None and peers_known:
                if peer not in roles:
                    yield c.at(
                        [*loc, "peer"], f"unknown peer '{peer}'", _hint_known(peer, tgws, "transit-gateway peers")
                    )
                elif roles[peer] == PeerRole.EDGE:
                    yield c.at(
                        [*loc, "peer"],
                        f"peer '{peer}' has role edge",
                        "a path leads to a transit gateway: name a peer with role transit-gateway"
                        + (f" ({', '.join(tgws)})" if tgws else ""),
                    )
            table = path.get("table")
            if isinstance(table, int) and not isinstance(table, bool) and (by := _claim(tables, table, here)):
                yield c.at(
                    [*loc, "table"],
                    f"routing table {table} is already used by {by}",
                    "give every path its own table: each pins its probes to its own next hop",
                )
            for field in ("probe_source", "probe_source_v6"):
                source = _addr(path.get(field))
                if source is not None and (by := _claim(sources, source, here)):
                    yield c.at(
                        [*loc, field],
                        f"probe source {source} is already used by {by}",
                        "give every path its own probe source address: it selects the path's table",
                    )
                if source is not None and lacks_family(path, "next_hop", source.version):
                    yield c.at(
                        [*loc, field],
                        f"probe source {source} is {_family(source)} but the path has no {_family(source)} next hop",
                        "its probes would leave by no route of their family: "
                        + (
                            "give the path its IPv6 next hop as next_hop_v6, or remove the IPv6 probe source"
                            if source.version == 6
                            else "give the path an IPv4 next_hop, or probe over IPv6 only"
                        ),
                    )
            yield from _peer_v6(c, path, loc, roles=roles, tgws=tgws, peers_known=peers_known, data=data)


def _carries_v6(data: dict[str, object], name: str) -> bool | None:
    """Does the peer named ``name`` carry ipv6-unicast (None: unknown peer or malformed families)?"""
    for _, p in _peer_entries(data):
        if _name(p.get("name")) == name:
            fam = p.get("families", [Family.IPV4_UNICAST.value])
            return Family.IPV6_UNICAST.value in fam if isinstance(fam, list) else None
    return None


def _peer_v6(
    c: _Ctx,
    path: dict[str, object],
    loc: list[str | int],
    *,
    roles: dict[str, object],
    tgws: list[str],
    peers_known: bool,
    data: dict[str, object],
) -> Found:
    """``peer_v6``: a transit-gateway peer that carries ipv6-unicast (the path's IPv6 session)."""
    peer_v6 = _name(path.get("peer_v6"))
    if peer_v6 is None or not peers_known:
        return
    if peer_v6 not in roles:
        yield c.at([*loc, "peer_v6"], f"unknown peer '{peer_v6}'", _hint_known(peer_v6, tgws, "transit-gateway peers"))
    elif roles[peer_v6] == PeerRole.EDGE:
        yield c.at(
            [*loc, "peer_v6"],
            f"peer '{peer_v6}' has role edge",
            "peer_v6 names the transit gateway's IPv6 session: a peer with role transit-gateway",
        )
    elif _carries_v6(data, peer_v6) is False:
        yield c.at(
            [*loc, "peer_v6"],
            f"peer '{peer_v6}' does not carry ipv6-unicast, so no IPv6 route can go to it",
            "add ipv6-unicast to that peer's families, or remove peer_v6 so that the IPv6 routes go to 'peer'",
        )


def _allowlist(data: dict[str, object]) -> list[IPv4Network | IPv6Network] | None:
    guards = _dict(data.get("guards"))
    nets: list[IPv4Network | IPv6Network] | None = _every(_net, _list(guards.get("allowlist")) if guards else None)
    return nets or None


def _allowlisted(
    c: _Ctx, loc: list[str | int], net: IPv4Network | IPv6Network, allow: list[IPv4Network | IPv6Network] | None
) -> Found:
    if allow is not None and not allowed(str(net), allow):  # the planner's and the speaker's check
        yield c.at(
            loc,
            f"{net} is outside guards.allowlist",
            "add a covering prefix to guards.allowlist, or fix the prefix; "
            "nothing outside the allowlist is ever announced",
        )


def _overlap(a: IPv4Network | IPv6Network, b: IPv4Network | IPv6Network) -> bool:
    return a.version == b.version and a.overlaps(b)


def _edge_families(data: dict[str, object], role: PeerRole) -> list[tuple[str, object, list[str]]] | None:
    out = []
    for _, p in _peer_entries(data):
        if p.get("role") != role:
            continue
        name = _name(p.get("name"))
        fam = p.get("families", [Family.IPV4_UNICAST.value])
        if name is None or not isinstance(fam, list):
            return None
        out.append((name, p.get("peer_as"), [f for f in fam if isinstance(f, str)]))
    return out


def _family_problems(c: _Ctx, data: dict[str, object], loc: list[str | int], net: IPv4Network | IPv6Network) -> Found:
    """Every edge peer carries the family of a service prefix, unless another edge peer of the same AS (that
    router's session of the other family: IPv6 routes over an IPv6 session) carries it."""
    want = Family.of(net).value
    edges = _edge_families(data, PeerRole.EDGE) or []
    for name, asn, fams in edges:
        if want not in fams and not any(want in f and a == asn for n, a, f in edges if n != name):
            yield c.at(
                loc,
                f"{net} is {_family(net)} but edge peer '{name}' does not carry {want}",
                f"add {want} to that peer's families for MP-BGP over its session, or add a peer of the same "
                "peer_as that carries it over a session of its own",
            )


def _tgw_family_problems(
    c: _Ctx, data: dict[str, object], loc: list[str | int], net: IPv4Network | IPv6Network
) -> Found:
    """Every transit-gateway peer a path sends this corporate prefix to (its ``peer``, or for IPv6 its
    ``peer_v6`` if set) carries the prefix's family."""
    want = Family.of(net).value
    families = {name: fams for name, _, fams in _edge_families(data, PeerRole.TRANSIT_GATEWAY) or []}
    told: set[str] = set()
    for _, region in _items(_dict(data.get("regions"))):
        for _, path in _items(_dict(region.get("paths"))):
            peer = _name(path.get("peer_v6")) if net.version == 6 else None
            peer = peer or _name(path.get("peer"))
            if peer is None or peer not in families or want in families[peer] or peer in told:
                continue
            told.add(peer)
            yield c.at(
                loc,
                f"{net} is {_family(net)} but transit-gateway peer '{peer}' does not carry {want}",
                f"add {want} to that peer's families"
                + (
                    " for MP-BGP over its session, or name the gateway's IPv6 session in the path's peer_v6"
                    if net.version == 6
                    else ""
                ),
            )


def _services(c: _Ctx, data: dict[str, object]) -> Found:
    regions = _names(data.get("regions"))
    sla = _names(data.get("sla_classes"))
    allow = _allowlist(data)
    seen: list[tuple[IPv4Network | IPv6Network, str]] = []
    for sname, svc in _items(_dict(data.get("services"))):
        base: list[str | int] = ["services", sname]
        cls = _name(svc.get("sla"))
        if cls is not None and sla is not None and cls not in sla:
            yield c.at([*base, "sla"], f"unknown SLA class '{cls}'", _hint_known(cls, list(sla), "SLA classes"))
        prefixes = _list(svc.get("prefixes")) or []
        for i, raw in enumerate(prefixes):
            net = _net(raw)
            if net is None:
                continue
            loc = [*base, "prefixes", i]
            yield from _allowlisted(c, loc, net, allow)
            clash = next((where for other, where in seen if _overlap(net, other)), None)
            if clash is not None:
                yield c.at(
                    loc,
                    f"{net} overlaps {clash}",
                    "service prefixes must not overlap: each prefix follows one service's decision",
                )
            seen.append((net, f"{render_path(loc)} ({net})"))
            yield from _family_problems(c, data, loc, net)
        yield from _order(c, svc, base, regions)
        if "weights" in svc:
            yield from _weights(
                c, svc.get("mode", Mode.ACTIVE_ACTIVE.value), svc["weights"], [*base, "weights"], regions
            )
        probe = _dict(svc.get("probe"))
        targets = _dict(probe.get("targets")) if probe else None
        if targets is not None and regions is not None:
            tloc: list[str | int] = [*base, "probe", "targets"]
            for tname in targets:
                if _name(tname) is not None and tname not in regions:
                    yield c.at([*tloc, tname], f"unknown region '{tname}'", _hint_known(tname, regions, "regions"))
            yield from _target_families(c, data, tloc, targets)
            missing = [r for r in regions if r not in targets]
            if missing:
                yield c.at(
                    tloc,
                    f"no probe target for region{'s' if len(missing) > 1 else ''} "
                    f"{', '.join(repr(m) for m in missing)}",
                    "every region needs a probe target per service: add one",
                )


def _target_families(c: _Ctx, data: dict[str, object], tloc: list[str | int], targets: dict[str, object]) -> Found:
    """A target's address (and address_v6) can be probed from every path of its region (a probe source of
    its family); address_v6 is given in every region of the service or in none."""
    regions_d = _dict(data.get("regions")) or {}
    dual = [t for t, target in _items(targets) if target.get("address_v6") is not None]
    for tname, target in _items(targets):
        region = _dict(regions_d.get(tname))
        for field in ("address", "address_v6"):
            addr = _addr(target.get(field))
            if addr is None or region is None:
                continue
            for pname, path in _items(_dict(region.get("paths"))):
                if lacks_family(path, "probe_source", addr.version):
                    yield c.at(
                        [*tloc, tname, field],
                        f"{addr} is {_family(addr)} but path {tname}/{pname} has no {_family(addr)} probe source",
                        "give the path one (for IPv6: probe_source_v6), or probe an address of the path's family",
                    )
                    break
    if dual and len(dual) != len(_items(targets)):
        missing = [t for t, target in _items(targets) if target.get("address_v6") is None]
        yield c.at(
            [*tloc, missing[0]],
            f"address_v6 is given for {', '.join(repr(d) for d in dual)} but not here",
            "the IPv6 routes of a service are judged by IPv6 probes in every region or in none: "
            "add address_v6 here, or remove it from the other regions",
        )


def _order(c: _Ctx, svc: dict[str, object], base: list[str | int], regions: list[str] | None) -> Found:
    mode = svc.get("mode", Mode.ACTIVE_ACTIVE.value)
    order = svc.get("order", [])
    if mode not in _MODES or not isinstance(order, list):
        return
    if mode == Mode.ACTIVE_ACTIVE:
        if order:
            yield c.at([*base, "order"], "'order' is only for active-standby", "remove it, or set mode: active-standby")
        return
    if not order:
        yield c.at(
            [*base, "order"] if "order" in svc else [*base, "mode"],
            "active-standby needs 'order': the regions, most preferred first",
            f"add order: [{', '.join(regions or [])}]",
        )
        return
    if regions is None:
        return
    seen: set[str] = set()
    for i, r in enumerate(order):
        name = _name(r)
        if name is None:
            continue
        if name not in regions:
            yield c.at([*base, "order", i], f"unknown region '{name}'", _hint_known(name, regions, "regions"))
        elif name in seen:
            yield c.at([*base, "order", i], f"region '{name}' is listed twice", "list each region once")
        seen.add(name)
    missing = [r for r in regions if r not in seen]
    if missing and all(_name(r) is not None for r in order):
        yield c.at(
            [*base, "order"],
            f"order leaves out {', '.join(repr(m) for m in missing)}",
            "list every region once, most preferred first",
        )


def _weights(c: _Ctx, mode: object, raw: object, loc: list[str | int], regions: list[str] | None) -> Found:
    """A service's weights (or an override's): active-active only, every region once, not all zero."""
    weights = _dict(raw)
    if weights is None or mode not in _MODES:
        return
    if mode == Mode.ACTIVE_STANDBY:
        yield c.at(
            loc,
            "'weights' are only for active-active services",
            "an active-standby service sends all its traffic to one region: remove weights, or set mode: active-active",
        )
        return
    if regions is None:
        return
    for rname in weights:
        if _name(rname) is not None and rname not in regions:
            yield c.at([*loc, rname], f"unknown region '{rname}'", _hint_known(rname, regions, "regions"))
    missing = [r for r in regions if r not in weights]
    if missing:
        yield c.at(
            loc,
            f"weights leave out {', '.join(repr(m) for m in missing)}",
            "give every region a weight; 0 sends it nothing while a region of weight above 0 is up",
        )
    values = [v for v in weights.values() if isinstance(v, int) and not isinstance(v, bool)]
    if len(values) == len(weights) and values and all(v == 0 for v in values):
        yield c.at(
            loc, "every weight is 0", "give at least one region a weight above 0; weights are relative, like 80 and 20"
        )


def _corporate(c: _Ctx, data: dict[str, object]) -> Found:
    corp = _dict(data.get("corporate"))
    if corp is None:
        return
    allow = _allowlist(data)
    services_d = _dict(data.get("services"))
    services = _names(services_d)
    for i, raw in enumerate(_list(corp.get("prefixes")) or []):
        net = _net(raw)
        if net is None:
            continue
        loc: list[str | int] = ["corporate", "prefixes", i]
        yield from _allowlisted(c, loc, net, allow)
        for sname, svc in _items(services_d):
            for j, sraw in enumerate(_list(svc.get("prefixes")) or []):
                snet = _net(sraw)
                if snet is not None and _overlap(net, snet):
                    yield c.at(
                        loc,
                        f"{net} overlaps services.{sname}.prefixes[{j}] ({snet})",
                        "the agents' prefixes and the Connect prefixes must be disjoint",
                    )
        yield from _tgw_family_problems(c, data, loc, net)
    follow = _name(corp.get("follow_service"))
    if follow is not None and services is not None and follow not in services:
        yield c.at(
            ["corporate", "follow_service"], f"unknown service '{follow}'", _hint_known(follow, services, "services")
        )


def _overrides(c: _Ctx, data: dict[str, object]) -> Found:
    ov = _dict(data.get("overrides"))
    if ov is None:
        return
    regions_d = _dict(data.get("regions")) or {}
    regions = _names(data.get("regions"))
    services = _names(data.get("services"))
    for i, d in enumerate(_list(ov.get("drain")) or []):
        if not isinstance(d, dict) or regions is None:
            continue
        region = _name(d.get("region"))
        if region is None:
            continue
        if region not in regions:
            yield c.at(
                ["overrides", "drain", i, "region"],
                f"unknown region '{region}'",
                _hint_known(region, regions, "regions"),
            )
            continue
        drained = _name(d.get("path"))
        region_d = _dict(regions_d[region])
        paths = _names(region_d.get("paths")) if region_d is not None else None
        if drained is not None and paths is not None and drained not in paths:
            yield c.at(
                ["overrides", "drain", i, "path"],
                f"region '{region}' has no path '{drained}'",
                _hint_known(drained, paths, f"paths of {region}"),
            )
    pin = _dict(ov.get("pin"))
    for service, pinned in (pin or {}).items():
        if _name(service) is not None and services is not None and service not in services:
            yield c.at(
                ["overrides", "pin", service],
                f"unknown service '{service}'",
                _hint_known(service, services, "services"),
            )
        rname = _name(pinned)
        if rname is not None and regions is not None and rname not in regions:
            yield c.at(
                ["overrides", "pin", service], f"unknown region '{rname}'", _hint_known(rname, regions, "regions")
            )
    yield from _override_weights(c, data, ov)


def _override_weights(c: _Ctx, data: dict[str, object], ov: dict[str, object]) -> Found:
    """``overrides.weights``: a service of the policy, with the rules of a service's own weights."""
    regions = _names(data.get("regions"))
    services = _names(data.get("services"))
    services_d = _dict(data.get("services")) or {}
    for service, weights in (_dict(ov.get("weights")) or {}).items():
        loc: list[str | int] = ["overrides", "weights", service]
        svc = _dict(services_d.get(service)) if _name(service) is not None else None
        if svc is None:
            if _name(service) is not None and services is not None:
                yield c.at(loc, f"unknown service '{service}'", _hint_known(service, services, "services"))
            continue
        yield from _weights(c, svc.get("mode", Mode.ACTIVE_ACTIVE.value), weights, loc, regions)


def _signals(c: _Ctx, data: dict[str, object]) -> Found:
    """A flag file's ``present`` names a region (and path) of the policy; no signal without fail-static."""
    signals = _dict(data.get("signals"))
    if not signals:
        return
    guards = _dict(data.get("guards")) or {}
    if guards.get("fail_static") is False:
        yield c.at(
            ["guards", "fail_static"],
            "signals need fail-static: with fail_static false a signal could withdraw the last region",
            "remove 'fail_static: false' (a signal must never take the last routes away), or remove 'signals'",
        )
    regions_d = _dict(data.get("regions")) or {}
    regions = _names(data.get("regions"))
    for name, sig in _items(signals):
        present = _dict(sig.get("present"))
        region = _name(present.get("region")) if present is not None else None
        if present is None or region is None or regions is None:
            continue
        if region not in regions:
            yield c.at(
                ["signals", name, "present", "region"],
                f"unknown region '{region}'",
                _hint_known(region, regions, "regions"),
            )
            continue
        marked = _name(present.get("path"))
        region_d = _dict(regions_d[region])
        paths = _names(region_d.get("paths")) if region_d is not None else None
        if marked is not None and paths is not None and marked not in paths:
            yield c.at(
                ["signals", name, "present", "path"],
                f"region '{region}' has no path '{marked}'",
                _hint_known(marked, paths, f"paths of {region}"),
            )


_SEVERITY = (("rtt_ms", " ms", True), ("jitter_ms", " ms", True), ("loss_pct", "%", True), ("mos_below", "", False))


def _sla_classes(c: _Ctx, data: dict[str, object]) -> Found:
    for name, cls in _items(_dict(data.get("sla_classes"))):
        degraded = _dict(cls.get("degraded"))
        down = _dict(cls.get("down"))
        if degraded is None or down is None:
            continue
        for key, unit, higher_is_worse in _SEVERITY:
            d, w = _num(degraded.get(key)), _num(down.get(key))
            if d is None or w is None:
                continue
            if (d >= w) if higher_is_worse else (d <= w):
                rel = "below" if higher_is_worse else "above"
                yield c.at(
                    ["sla_classes", name, "degraded", key],
                    f"degraded at {d:g}{unit} is not {rel} down at {w:g}{unit}",
                    f"degraded must trigger before down: make degraded.{key} "
                    f"{'smaller' if higher_is_worse else 'larger'} than down.{key}",
                )


def _actions(c: _Ctx, data: dict[str, object]) -> Found:
    actions = _dict(data.get("actions"))
    if actions is None:
        return
    why = {
        PathState.PREFERRED: "a preferred path is announced",
        PathState.STANDBY: "a standby path keeps its routes (a drain relies on it)",
        PathState.DEGRADED: "a degraded path is de-preferred (prepend or raise MED), not withdrawn, "
        "so existing calls keep a route",
    }
    for state, reason in why.items():
        per_role = _dict(actions.get(state))
        for role, action in (per_role or {}).items():
            if isinstance(action, dict) and action.get("withdraw") is True:
                yield c.at(
                    ["actions", state, role, "withdraw"],
                    f"only '{PathState.DOWN}' may withdraw routes",
                    f"{reason}: remove 'withdraw: true' and give med/prepend/communities",
                )


def _ha(c: _Ctx, data: dict[str, object]) -> Found:
    ha = _dict(data.get("ha"))
    actions = _dict(data.get("actions"))
    penalty = _dict(ha.get("secondary")) if ha is not None else None
    if actions is None or penalty is None:
        return
    for p in penalty_problems(actions, penalty):
        yield c.at(["ha", *p.field], p.message, p.hint)


def _hooks(c: _Ctx, data: dict[str, object]) -> Found:
    for name, hook in _items(_dict(data.get("hooks"))):
        secret = _dict(hook.get("secret"))
        file = secret.get("file") if secret is not None else None
        if isinstance(file, str) and not os.path.isabs(file):
            yield c.at(
                ["hooks", name, "secret", "file"],
                f"secret file '{file}' is a relative path",
                "write an absolute path: the daemon does not run from the policy's directory",
            )


# --------------------------------------------------------------------------------------------
# secrets: a password ExaBGP cannot carry refuses the file; a missing one is a warning (read at start)

SECRET_FILE_MAX = 4096


def _secret_value(secret: dict[str, object], environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(where, the secret as the daemon will read it) when it can be read now; (where, None) otherwise.

    As bgpctl.speaker.config.read_secret: a variable's value, or a file's text without its final line break.
    """
    env, path = secret.get("env"), secret.get("file")
    if isinstance(env, str):
        return f"environment variable {env}", environ.get(env) or None
    if not isinstance(path, str) or not os.path.isabs(path):
        return "", None
    try:
        raw = read_regular(path, SECRET_FILE_MAX, "secret")
    except InputFileError:
        return f"secret file {path}", None  # secret_warnings says why
    try:
        return f"secret file {path}", raw.decode("utf-8").rstrip("\r\n") or None
    except UnicodeDecodeError:
        return f"secret file {path}", "\x00"  # not UTF-8: refused as a non-ASCII password, without quoting it


def secret_problems(
    data: dict[str, object], filename: str, locator: Locator, environ: Mapping[str, str]
) -> list[tuple[Problem, Loc]]:
    """MD5 passwords that can be read now and that ExaBGP cannot carry (bgpctl.policy.secrets). Never echoes one."""
    c = _Ctx(filename, locator)
    out: list[tuple[Problem, Loc]] = []
    for i, p in _peer_entries(data):
        secret = _dict(p.get("md5_password"))
        if secret is None:
            continue
        where, value = _secret_value(secret, environ)
        problem = md5_password_problem(value) if value is not None else None
        if problem is not None:
            field = "env" if isinstance(secret.get("env"), str) else "file"
            out.append(
                c.at(
                    ["peers", i, "md5_password", field],
                    f"the MD5 password in {where} {problem}",
                    "choose a password of printable ASCII without those characters, at most 80 long",
                )
            )
    return out


# warnings: secrets are read by the daemon at start, so missing ones do not refuse the file


def _secret_refs(data: dict[str, object]) -> list[tuple[list[str | int], dict[str, object], str]]:
    """Every secret reference of the file: (its location, the reference, what it is for)."""
    refs: list[tuple[list[str | int], dict[str, object], str]] = []
    for i, p in _peer_entries(data):
        secret = _dict(p.get("md5_password"))
        if secret is not None:
            refs.append((["peers", i, "md5_password"], secret, "the session's MD5 password"))
    for name, hook in _items(_dict(data.get("hooks"))):
        secret = _dict(hook.get("secret"))
        if secret is not None:
            refs.append((["hooks", name, "secret"], secret, "the webhook's HMAC key"))
    return refs


def secret_warnings(
    data: dict[str, object], filename: str, locator: Locator, environ: Mapping[str, str]
) -> list[Problem]:
    """Warnings for secrets (MD5 passwords, webhook keys) that cannot be read now. Never reads or prints a
    secret itself."""
    c = _Ctx(filename, locator)
    out: list[Problem] = []
    for loc, secret, what in _secret_refs(data):
        env, path = secret.get("env"), secret.get("file")
        if isinstance(env, str):
            if env not in environ:
                out.append(
                    c.at(
                        [*loc, "env"],
                        f"warning: environment variable {env} is not set",
                        "the daemon reads it at start: set it in the service's environment",
                    )[0]
                )
            elif not environ[env]:
                out.append(c.at([*loc, "env"], f"warning: environment variable {env} is empty", f"set it to {what}")[0])
        if isinstance(path, str):
            problem = _secret_file_warning(path)
            if problem is not None:
                out.append(c.at([*loc, "file"], *problem)[0])
    return out


def _secret_file_warning(path: str) -> tuple[str, str] | None:
    try:
        st = os.stat(path)
    except OSError as e:
        return f"warning: secret file {path}: {e.strerror}", "the daemon reads it at start: create it with mode 0600"
    if not stat.S_ISREG(st.st_mode):
        return f"warning: secret file {path} is not a regular file", "point it at the file holding the secret"
    if st.st_mode & 0o077:
        return (
            f"warning: secret file {path} has mode {stat.S_IMODE(st.st_mode):04o}",
            f"make it readable by its owner only: chmod 600 {path}",
        )
    if not os.access(path, os.R_OK):
        return f"warning: secret file {path} is not readable by this user", "the daemon's user must be able to read it"
    return None
