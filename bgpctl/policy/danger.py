"""Dangerous policies: values that parse and cross-reference fine, but would hurt the network or the host.

Refused at `bgpctl policy check` (and so at daemon start) with file:line and a hint, like every other
problem of a policy (docs/design.md, "Dangerous policies"):

* prefixes (allowlist, services, corporate) that are a default route, shorter than
  :data:`MIN_PREFIX_LEN` (IPv4 /8, IPv6 /16), or inside a martian range (:data:`MARTIANS`);
* addresses a BGP session or a next hop cannot use (unspecified, loopback, multicast, broadcast,
  reserved, "this network", IPv4-mapped IPv6), and probe targets that would send probes nowhere or to many;
* router-id 0.0.0.0 and the reserved ASNs 23456 (AS_TRANS), 65535 and 4294967295;
* a ``down`` action that announces, the blackhole community on an announced route, and community
  lists that cannot fit in one BGP UPDATE (:data:`COMMUNITY_BYTES`);
* a service prefix whose path next hop is of the other family (the speaker would refuse every RIB);
* a run directory that is empty, relative, not normalised, shared (/tmp), too long for the API
  socket's path, or holds characters ExaBGP's ``run`` line cannot carry.

Like :mod:`bgpctl.policy.xref`, the rules read the raw data and skip what is malformed (the structural
pass reports that), so all problems of a file come out in one run.
"""

from __future__ import annotations

import posixpath
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

from bgpctl.errors import Problem
from bgpctl.policy.model import PathState
from bgpctl.policy.xref import Found, _addr, _Ctx, _dict, _items, _list, _net, _peer_entries, lacks_family
from bgpctl.policy.yamlsource import Loc, Locator, render_path

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

MIN_PREFIX_LEN = {4: 8, 6: 16}
"""A prefix (allowlist, service, corporate) shorter than this covers too much of the address space."""

MARTIANS: tuple[tuple[Network, str], ...] = tuple(
    (ip_network(net), what)
    for net, what in (
        ("0.0.0.0/8", "'this network'"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/8", "reserved"),
        ("100::/64", "discard-only"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "deprecated site-local"),
        ("ff00::/8", "multicast"),
    )
)
"""Ranges never announced. Documentation ranges (192.0.2.0/24, 2001:db8::/32, ...) and private ones are
allowed: the lab uses the former, corporate networks the latter."""

RESERVED_ASNS = {
    23456: "AS_TRANS (RFC 6793): it stands in for a 4-byte AS and is never a real one",
    65535: "reserved (RFC 7300)",
    4294967295: "reserved (RFC 7300)",
}

UPDATE_MAX = 4096
"""Largest BGP message (RFC 4271) without the extended-message capability, which ExaBGP does not offer here."""
_UPDATE_FIXED = (
    19  # message header
    + 2  # withdrawn routes length
    + 2  # total path attribute length
    + 4  # ORIGIN
    + 4
    + 2
    + 4 * 11  # AS_PATH (extended length): one AS_SEQUENCE of the local AS and 10 prepends, 4-byte ASNs
    + 4
    + 3
    + 1
    + 32
    + 1
    + (4 + 1 + 16)  # MP_REACH_NLRI: IPv6 global + link-local next hop, one ADD-PATH /128
    + 7  # MULTI_EXIT_DISC
    + 4  # COMMUNITIES header (extended length)
    + 4  # LARGE_COMMUNITY header (extended length)
)
COMMUNITY_BYTES = UPDATE_MAX - _UPDATE_FIXED
"""Room for communities in one UPDATE carrying the largest rest bgpctl sends: 4 bytes per standard
community, 12 per large one (3942 bytes: 985 standard or 328 large communities)."""

_BLACKHOLE = {"blackhole", "65535:666"}

RUN_DIR_MAX = 107 - len("/exabgp-api.sock")
"""A unix socket path holds 107 bytes; the API socket lives in the run directory
(bgpctl.speaker.speaker.SOCKET_NAME; tests/policy/test_danger.py keeps the two in step)."""
_RUN_DIR_CHARS = re.compile(r"[A-Za-z0-9_./+-]+")
_SHARED_DIRS = {"/", "/tmp", "/var/tmp", "/dev/shm", "/run", "/var/run", "/run/lock", "/var/lock"}


def check(data: dict[str, object], filename: str, locator: Locator) -> list[tuple[Problem, Loc]]:
    """Every danger in one file's data, as (Problem, loc) like :func:`bgpctl.policy.xref.check`."""
    c = _Ctx(filename, locator)
    out: list[tuple[Problem, Loc]] = []
    for rule in (_speaker, _peers, _paths, _prefixes, _targets, _actions):
        out.extend(rule(c, data))
    return out


# --------------------------------------------------------------------------------------------
# addresses and numbers


def _unusable(addr: Address) -> str | None:
    """Why ``addr`` cannot be a BGP neighbour, local address or next hop; None if it can."""
    if addr.is_unspecified:
        return "the unspecified address"
    if addr.is_loopback:
        return "a loopback address"
    if addr.is_multicast:
        return "a multicast address"
    if isinstance(addr, IPv4Address):
        if addr == IPv4Address("255.255.255.255"):
            return "the broadcast address"
        if addr in IPv4Network("240.0.0.0/4"):
            return "a reserved address (240.0.0.0/4)"
        if addr in IPv4Network("0.0.0.0/8"):
            return "a 'this network' address (0.0.0.0/8)"
    elif addr.ipv4_mapped is not None:
        return "an IPv4-mapped IPv6 address"
    elif addr.is_link_local:
        # ExaBGP 5 puts one 16-byte next hop in MP_REACH_NLRI (never RFC 2545's global + link-local pair) and
        # binds a session to no interface: a link-local address means nothing to a peer off that one link
        return "an IPv6 link-local address (bgpctl announces global next hops and peers over global addresses)"
    return None


def _address_problem(c: _Ctx, loc: list[str | int], raw: object, role: str) -> Found:
    addr = _addr(raw)
    why = _unusable(addr) if addr is not None else None
    if why is not None:
        yield c.at(
            loc,
            f"{addr} is {why}: it cannot be {role}",
            "use the unicast address of the interface on the link to the neighbour",
        )


def _asn_problem(c: _Ctx, loc: list[str | int], raw: object) -> Found:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw in RESERVED_ASNS:
        yield c.at(loc, f"AS {raw} is {RESERVED_ASNS[raw]}", "use the AS number assigned to this network")


def _speaker(c: _Ctx, data: dict[str, object]) -> Found:
    speaker = _dict(data.get("speaker"))
    if speaker is None:
        return
    yield from _asn_problem(c, ["speaker", "local_as"], speaker.get("local_as"))
    if _addr(speaker.get("router_id")) == IPv4Address("0.0.0.0"):
        yield c.at(
            ["speaker", "router_id"],
            "router-id 0.0.0.0 is not allowed (RFC 6286): peers refuse the session",
            "use one of the speaker's IPv4 addresses",
        )
    for i, raw in enumerate(_list(speaker.get("local_addresses")) or []):
        yield from _address_problem(c, ["speaker", "local_addresses", i], raw, "a BGP session's local address")
    exabgp = _dict(speaker.get("exabgp"))
    if exabgp is not None and "run_dir" in exabgp:
        yield from _run_dir(c, exabgp.get("run_dir"))


def _run_dir(c: _Ctx, raw: object) -> Found:
    loc: list[str | int] = ["speaker", "exabgp", "run_dir"]
    if not isinstance(raw, str):
        return
    if not raw:
        yield c.at(loc, "the run directory is empty", "write an absolute path like /run/bgpctl")
    elif not raw.startswith("/"):
        yield c.at(
            loc,
            f"'{raw}' is a relative path",
            "write an absolute path like /run/bgpctl: the daemon does not run from the policy's directory",
        )
    elif not _RUN_DIR_CHARS.fullmatch(raw):
        yield c.at(
            loc,
            "the run directory holds characters other than letters, digits and _ . / + -",
            "ExaBGP's 'run' line cannot carry them: use a plain path like /run/bgpctl",
        )
    elif posixpath.normpath(raw) != raw or raw.startswith("//"):
        yield c.at(
            loc,
            f"'{raw}' is not a normalised path",
            f"write it as {posixpath.normpath(raw)}, without '..', '.' or '//'",
        )
    elif raw in _SHARED_DIRS:
        yield c.at(
            loc,
            f"{raw} is a shared system directory",
            "give bgpctl a directory of its own, like /run/bgpctl: it is made mode 0700 and owned by the daemon",
        )
    elif len(raw.encode()) > RUN_DIR_MAX:
        yield c.at(
            loc,
            f"the run directory is {len(raw.encode())} bytes long, at most {RUN_DIR_MAX}",
            "the API socket's path must fit in a unix socket address, 107 bytes: use a shorter path",
        )


def _peers(c: _Ctx, data: dict[str, object]) -> Found:
    for i, p in _peer_entries(data):
        yield from _address_problem(c, ["peers", i, "address"], p.get("address"), "a BGP neighbour")
        if p.get("local_address") is not None:
            yield from _address_problem(
                c, ["peers", i, "local_address"], p.get("local_address"), "a BGP session's local address"
            )
        yield from _asn_problem(c, ["peers", i, "peer_as"], p.get("peer_as"))


def _path_entries(data: dict[str, object]) -> list[tuple[list[str | int], dict[str, object]]]:
    return [
        (["regions", rname, "paths", pname], path)
        for rname, region in _items(_dict(data.get("regions")))
        for pname, path in _items(_dict(region.get("paths")))
    ]


def _paths(c: _Ctx, data: dict[str, object]) -> Found:
    for loc, path in _path_entries(data):
        for field in ("next_hop", "next_hop_v6"):
            yield from _address_problem(c, [*loc, field], path.get(field), "a next hop")
        for field in ("probe_source", "probe_source_v6"):
            yield from _address_problem(c, [*loc, field], path.get(field), "a probe source")
    corp = _dict(data.get("corporate"))
    if corp is not None:
        for field in ("next_hop", "next_hop_v6"):
            yield from _address_problem(c, ["corporate", field], corp.get(field), "a next hop")


# --------------------------------------------------------------------------------------------
# prefixes


def _prefix_problem(c: _Ctx, loc: list[str | int], net: Network) -> Found:
    if net.prefixlen == 0:
        yield c.at(
            loc,
            f"{net} is a default route",
            "bgpctl announces and allows only the services' own prefixes: list those",
        )
        return
    shortest = MIN_PREFIX_LEN[net.version]
    if net.prefixlen < shortest:
        yield c.at(
            loc,
            f"{net} covers 1/{2**net.prefixlen} of the IPv{net.version} address space: "
            f"prefixes shorter than /{shortest} are refused",
            "list the specific prefixes you own",
        )
        return
    for martian, what in MARTIANS:
        if net.version == martian.version and net.overlaps(martian):
            yield c.at(
                loc,
                f"{net} is in {martian}: {what} addresses, never routed",
                "fix the prefix: list the routable prefixes you own",
            )
            return


def _no_next_hop_hint(net: Network, field: str) -> str:
    if net.version == 6:
        return f"give it its IPv6 next hop as {field}_v6, or announce only IPv4 prefixes"
    return f"make its {field} the IPv4 one and the IPv6 one {field}_v6, or announce only IPv6 prefixes"


def _family_next_hops(c: _Ctx, data: dict[str, object], loc: list[str | int], net: Network) -> Found:
    for ploc, path in _path_entries(data):
        if lacks_family(path, "next_hop", net.version):
            nh = _addr(path.get("next_hop"))
            yield c.at(
                loc,
                f"{net} is IPv{net.version} but {render_path(ploc)} has no IPv{net.version} next hop, only "
                f"next_hop {nh}: the speaker would refuse every route of this service",
                _no_next_hop_hint(net, "next_hop").replace("give it", "give every path"),
            )
            return


def _prefixes(c: _Ctx, data: dict[str, object]) -> Found:
    guards = _dict(data.get("guards"))
    for i, raw in enumerate((_list(guards.get("allowlist")) if guards else None) or []):
        net = _net(raw)
        if net is not None:
            yield from _prefix_problem(c, ["guards", "allowlist", i], net)
    for sname, svc in _items(_dict(data.get("services"))):
        for i, raw in enumerate(_list(svc.get("prefixes")) or []):
            net = _net(raw)
            if net is not None:
                yield from _prefix_problem(c, ["services", sname, "prefixes", i], net)
                yield from _family_next_hops(c, data, ["services", sname, "prefixes", i], net)
    corp = _dict(data.get("corporate"))
    if corp is None:
        return
    for i, raw in enumerate(_list(corp.get("prefixes")) or []):
        net = _net(raw)
        if net is None:
            continue
        loc: list[str | int] = ["corporate", "prefixes", i]
        yield from _prefix_problem(c, loc, net)
        if lacks_family(corp, "next_hop", net.version):
            yield c.at(
                loc,
                f"{net} is IPv{net.version} but corporate has no IPv{net.version} next hop, only "
                f"next_hop {_addr(corp.get('next_hop'))}: the speaker would refuse the corporate routes",
                _no_next_hop_hint(net, "next_hop").replace("give it", "give corporate"),
            )


def _targets(c: _Ctx, data: dict[str, object]) -> Found:
    for sname, svc in _items(_dict(data.get("services"))):
        probe = _dict(svc.get("probe"))
        for tname, target in _items(_dict(probe.get("targets")) if probe else None):
            for field in ("address", "address_v6"):
                addr = _addr(target.get(field))
                why = _unusable(addr) if addr is not None else None
                if why is not None and addr is not None and not addr.is_loopback:
                    yield c.at(
                        ["services", sname, "probe", "targets", tname, field],
                        f"{addr} is {why}: probes to it reach no endpoint, or many",
                        "probe the unicast address of the region's endpoint",
                    )


# --------------------------------------------------------------------------------------------
# actions


def _actions(c: _Ctx, data: dict[str, object]) -> Found:
    actions = _dict(data.get("actions"))
    if actions is None:
        return
    for state in PathState:
        for role, action in _items(_dict(actions.get(state.value))):
            loc: list[str | int] = ["actions", state.value, role]
            if action.get("withdraw") is True:
                continue
            if state is PathState.DOWN:
                yield c.at(
                    loc,
                    "a down path still announces",
                    "write 'withdraw: true': a route through a path that is down draws traffic into it",
                )
            yield from _community_problems(c, loc, state, action)


def _community_problems(c: _Ctx, loc: list[str | int], state: PathState, action: dict[str, object]) -> Found:
    communities = _list(action.get("communities")) or []
    large = _list(action.get("large_communities")) or []
    for i, community in enumerate(communities):
        if isinstance(community, str) and community.strip().lower() in _BLACKHOLE:
            yield c.at(
                [*loc, "communities", i],
                f"the blackhole community ({community}) on a {state.value} route: the neighbour drops the "
                "traffic the route draws",
                "remove it; a path that must carry no traffic is withdrawn, in actions.down",
            )
    need = 4 * len(communities) + 12 * len(large)
    if need > COMMUNITY_BYTES:
        yield c.at(
            loc,
            f"{len(communities)} communities and {len(large)} large communities take {need} bytes; one BGP UPDATE "
            f"({UPDATE_MAX} bytes) has room for {COMMUNITY_BYTES}",
            "remove some: a standard community takes 4 bytes, a large one 12",
        )
