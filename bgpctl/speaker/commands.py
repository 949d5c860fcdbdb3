"""RouteChange -> the exact ExaBGP API line. Pure: no I/O.

One renderer, one command form for routes: ``neighbor ADDR announce attributes ATTRS nlri P1 P2 ...`` and
``neighbor ADDR withdraw attributes [path-information ID] [next-hop NH] nlri P1 P2 ...`` (ExaBGP 5,
``reactor/api/command/announce.py``): the routes to one peer with the same family, path id and attributes
go in one command, which ExaBGP parses once and acknowledges with one ``done`` (or ``error`` for all of
them); its adj-rib-out then packs those of IPv4 unicast into as few UPDATEs as the message size allows
(``group-updates``). :func:`batch` makes the commands of a list of changes; each :class:`Command` carries
the changes it makes, so that the speaker books every route of an acknowledged command, and retries the
routes of a refused one one per command.

Every token that goes into a line is checked against a strict pattern first, so nothing a caller passes
can inject a second command into ExaBGP's line protocol. The prefix allowlist is checked here as well as
in the planner, by the same function (:func:`bgpctl.policy.allowlist.allowed`; docs/design.md, "Invariants"):
a route outside it raises :class:`SpeakerError` and is never sent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bgpctl.core.types import ChangeKind, Rib, RouteAttrs, RouteChange, RouteKey
from bgpctl.errors import SpeakerError
from bgpctl.policy.allowlist import allowed
from bgpctl.policy.model import (
    MAX_WEIGHT,
    AddPath,
    Family,
    IPNetwork,
    Peer,
    Policy,
    is_community,
    is_large_community,
)

_U32 = 4294967295


_MAX_LINE = 8192
"""Longest command line written to ExaBGP (the longest real one, 64 communities of each kind, is ~2 KB)."""


def wire_line(line: str) -> bytes:
    """``line`` as the bytes written to ExaBGP (newline added), after the second guard against injection:
    printable ASCII only, no control character (a newline would split one command into two), at most
    :data:`_MAX_LINE` characters. Raises :class:`SpeakerError`, naming the first bad character; pure."""
    if not line or len(line) > _MAX_LINE:
        raise SpeakerError(
            f"refusing to write a command of {len(line)} characters to ExaBGP (1-{_MAX_LINE} allowed): "
            f"{line[:80]!r}; this is a bgpctl bug, report it"
        )
    for column, char in enumerate(line):
        if not " " <= char <= "~":
            kind = "control character" if char.isascii() or not char.isprintable() else "non-ASCII character"
            raise SpeakerError(
                f"refusing to write a command to ExaBGP: {kind} U+{ord(char):04X} at column {column + 1} "
                f"of {line[:80]!r}; nothing was written (a value slipped past validation: report it)"
            )
    return line.encode("ascii") + b"\n"


def wire(lines: Sequence[str]) -> bytes:
    """Every line of a batch through :func:`wire_line`: one bad line refuses the whole batch."""
    return b"".join(wire_line(line) for line in lines)


@dataclass(frozen=True, slots=True)
class Command:
    """One line for ExaBGP, and what it does to our view of its RIB once ExaBGP acknowledges it: every
    route in ``changes`` (all to ``peer``, all of one kind), none for End-of-RIB and teardown.

    A command whose line :func:`wire_line` refuses cannot be built (SpeakerError)."""

    peer: str  # peer name (policy)
    line: str  # without the trailing newline
    changes: tuple[RouteChange, ...] = ()

    def __post_init__(self) -> None:
        wire_line(self.line)


def _network(prefix: str) -> IPNetwork:
    try:
        net = ipaddress.ip_network(prefix, strict=True)
    except ValueError as e:
        raise SpeakerError(
            f"route {prefix!r} is not a valid prefix ({e}): the planner must produce "
            f"network addresses like 203.0.113.0/26"
        ) from e
    if str(net) != prefix:
        # ExaBGP and the peers report prefixes back in canonical form; the speaker books routes by text
        raise SpeakerError(f"route {prefix!r} is not in canonical form: write {net}")
    return net


def check_network(prefix: str) -> IPNetwork:
    """The prefix as a network (SpeakerError naming it when it is not one)."""
    return _network(prefix)


def check_allowed(prefix: str, allowlist: Sequence[IPNetwork]) -> IPNetwork:
    """The prefix as a network if it lies inside the allowlist; otherwise SpeakerError (never announced)."""
    net = _network(prefix)
    if allowed(prefix, allowlist):
        return net
    raise SpeakerError(
        f"refusing to announce {prefix}: it is outside the policy allowlist "
        f"({', '.join(str(a) for a in allowlist)}); fix the plan or extend guards.allowlist"
    )


def _path_information(peer: Peer, key: RouteKey) -> str:
    if not 0 <= key.path_id <= _U32:
        raise SpeakerError(f"route {key.prefix} to {peer.name}: path id {key.path_id} is not 0..{_U32}")
    if key.path_id == 0:
        return ""
    if peer.add_path not in (AddPath.SEND, AddPath.BOTH):
        raise SpeakerError(
            f"route {key.prefix} to {peer.name} has path id {key.path_id}, but ADD-PATH send is "
            f"off for this peer: set add_path: send in the policy or use path id 0"
        )
    return f" path-information {ipaddress.IPv4Address(key.path_id)}"


def _next_hop(peer: Peer, net: IPNetwork, next_hop: str) -> str:
    if next_hop == "self":
        if peer.address.version != net.version:
            # ExaBGP 5: neighbor.ip_self() raises for a family other than the session's, and MPRNLRI then
            # packs four zero bytes: the peer would get the route with next hop 0.0.0.0
            raise SpeakerError(
                f"route {net} to {peer.name}: next-hop self over an IPv{peer.address.version} session would "
                f"reach the peer as next hop 0.0.0.0 (ExaBGP has no IPv{net.version} address of its own "
                f"there); give the IPv{net.version} next hop"
            )
        return next_hop
    try:
        addr = ipaddress.ip_address(next_hop)
    except ValueError as e:
        raise SpeakerError(f"route {net} to {peer.name}: next hop {next_hop!r} is not an IP address or 'self'") from e
    if isinstance(addr, ipaddress.IPv6Address) and addr.scope_id is not None:  # str() would keep the %zone
        raise SpeakerError(f"route {net} to {peer.name}: next hop {next_hop!r} is not an IP address without a zone")
    if addr.version != net.version:
        raise SpeakerError(
            f"route {net} to {peer.name}: next hop {addr} is IPv{addr.version} but the prefix is "
            f"IPv{net.version}; give a next hop of the prefix's family"
        )
    if isinstance(addr, ipaddress.IPv6Address) and (addr.is_link_local or addr.ipv4_mapped is not None):
        # ExaBGP 5 sends one 16-byte next hop, never RFC 2545's global + link-local pair
        raise SpeakerError(
            f"route {net} to {peer.name}: next hop {addr} is not a global IPv6 address "
            f"({'link-local' if addr.is_link_local else 'IPv4-mapped'}); ExaBGP sends a single next hop, "
            f"which must be global: give the global IPv6 address"
        )
    return str(addr)


def _communities(where: str, values: Sequence[str]) -> str:
    for c in values:
        if not is_community(c):
            raise SpeakerError(
                f"{where}: {c!r} is not a standard community (ASN:VALUE, each 0-65535, or a well-known name)"
            )
    return f" community [ {' '.join(values)} ]" if values else ""


def _large_communities(where: str, values: Sequence[str]) -> str:
    for c in values:
        if not is_large_community(c):
            raise SpeakerError(f"{where}: {c!r} is not a large community (GLOBAL:LOCAL1:LOCAL2, each 0-{_U32})")
    return f" large-community [ {' '.join(values)} ]" if values else ""


LINK_BANDWIDTH_UNIT = 125_000
"""Bytes per second of one unit of weight in the link-bandwidth community: 1 Mbit/s. Any weight 1-1000
times this is exact in the community's IEEE 32-bit float (w x 2^3 x 5^6, below 2^24 x 2^3), and FRR
weighs the routes it installs together by these values, so the ratio on the wire is the weights' ratio."""
AS_TRANS = 23456
"""RFC 6793: the 2-octet stand-in for a 4-octet AS, in the link-bandwidth community's 2-octet AS field."""
_BANDWIDTH = re.compile(r"bandwidth:[0-9]{1,5}:[0-9]{1,10}")


def link_bandwidth(local_as: int, weight: int) -> str:
    """The link-bandwidth extended community (draft-ietf-idr-link-bandwidth; type 0x40, sub-type 0x04) as
    ExaBGP's API spells it: ``bandwidth:AS:BYTES_PER_SECOND``. ExaBGP parses the number as an integer and
    packs it as the 32-bit float the draft asks for."""
    asn = local_as if local_as <= 65535 else AS_TRANS
    token = f"bandwidth:{asn}:{weight * LINK_BANDWIDTH_UNIT}"
    if not _BANDWIDTH.fullmatch(token):  # pragma: no cover - the arithmetic above keeps it true
        raise SpeakerError(f"link bandwidth {token!r} does not fit ExaBGP's syntax; report this bgpctl bug")
    return token


def _extended_communities(where: str, local_as: int, weight: int | None) -> str:
    if weight is None:
        return ""
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
        raise SpeakerError(
            f"{where}: weight {weight!r} is not 1..{MAX_WEIGHT} (a region of weight 0 gets no link-bandwidth "
            f"community: FRR reads bandwidth 0 as none)"
        )
    return f" extended-community [ {link_bandwidth(local_as, weight)} ]"


def _as_path(where: str, local_as: int, as_path: Sequence[int]) -> str:
    if not as_path:
        return ""  # ExaBGP then sends [local_as] itself
    if any(not 1 <= asn <= _U32 for asn in as_path):
        raise SpeakerError(f"{where}: AS path {list(as_path)} holds an ASN outside 1..{_U32}")
    if as_path[0] != local_as:
        raise SpeakerError(
            f"{where}: AS path {list(as_path)} does not start with the local AS {local_as}; "
            f"ExaBGP sends an explicit path verbatim and peers drop such routes: prepend by "
            f"repeating the local AS"
        )
    return f" as-path [ {' '.join(str(a) for a in as_path)} ]"


def _checked_peer(policy: Policy, peer_name: str, net: IPNetwork) -> Peer:
    try:
        peer = policy.peer(peer_name)
    except KeyError:
        raise SpeakerError(
            f"route {net} is for peer {peer_name!r}, which is not in the policy's peers "
            f"({', '.join(p.name for p in policy.peers)})"
        ) from None
    if Family.of(net) not in peer.families:
        raise SpeakerError(
            f"route {net} to {peer_name}: the session only carries "
            f"{', '.join(f.value for f in peer.families)}; add {Family.of(net).value} to the "
            f"peer's families or route the prefix elsewhere"
        )
    return peer


class _Nets:
    """Each prefix parsed (and allowlist-checked) once per :func:`batch` / :func:`validate_rib` call: a
    scale RIB holds each of its 1,000 prefixes 64 times (16 peers x 4 paths)."""

    def __init__(self, allowlist: Sequence[IPNetwork]) -> None:
        self._allowlist = allowlist
        self._parsed: dict[str, IPNetwork] = {}
        self._allowed: dict[str, IPNetwork] = {}

    def network(self, prefix: str) -> IPNetwork:
        net = self._parsed.get(prefix)
        if net is None:
            net = self._parsed[prefix] = _network(prefix)
        return net

    def allowed(self, prefix: str) -> IPNetwork:
        net = self._allowed.get(prefix)
        if net is None:
            net = self._allowed[prefix] = check_allowed(prefix, self._allowlist)
        return net


def _attributes(policy: Policy, peer: Peer, net: IPNetwork, where: str, attrs: RouteAttrs) -> str:
    """`` next-hop NH [med M] [as-path [ .. ]] [community [ .. ]] [large-community [ .. ]]
    [extended-community [ bandwidth:AS:BPS ]] origin igp``, every value checked."""
    med = ""
    if attrs.med is not None:
        if not 0 <= attrs.med <= _U32:
            raise SpeakerError(f"{where}: MED {attrs.med} is not 0..{_U32}")
        med = f" med {attrs.med}"
    return (
        f" next-hop {_next_hop(peer, net, attrs.next_hop)}{med}"
        f"{_as_path(where, policy.speaker.local_as, attrs.as_path)}"
        f"{_communities(where, attrs.communities)}{_large_communities(where, attrs.large_communities)}"
        f"{_extended_communities(where, policy.speaker.local_as, attrs.weight)}"
        f" origin igp"
    )


def _nlri_lines(head: str, nets: Sequence[IPNetwork]) -> list[str]:
    """``head`` + `` nlri P1 P2 ...``, split into as many lines as :data:`_MAX_LINE` needs."""
    lines: list[str] = []
    room = _MAX_LINE - len(head) - len(" nlri")
    if room < 44:  # one IPv6 prefix with its space: the attributes alone nearly fill a line
        raise SpeakerError(f"the attributes of {head[:80]!r}... leave no room for a prefix in one ExaBGP command")
    chunk: list[str] = []
    used = 0
    for net in nets:
        text = str(net)
        if used + 1 + len(text) > room:
            lines.append(f"{head} nlri {' '.join(chunk)}")
            chunk, used = [], 0
        chunk.append(text)
        used += 1 + len(text)
    if chunk:
        lines.append(f"{head} nlri {' '.join(chunk)}")
    for line in lines:
        wire_line(line)
    return lines


def _group(
    policy: Policy, peer_name: str, prefixes: Sequence[str], check: Callable[[str], IPNetwork]
) -> tuple[Peer, list[IPNetwork]]:
    """The peer and the checked networks of one command's prefixes: one family, which the session carries."""
    if not prefixes:
        raise SpeakerError(f"a command to {peer_name} without a prefix; this is a bgpctl bug, report it")
    nets = [check(p) for p in prefixes]
    peer = _checked_peer(policy, peer_name, nets[0])
    if any(n.version != nets[0].version for n in nets):
        raise SpeakerError(
            f"routes to {peer_name}: one command mixes IPv4 and IPv6 prefixes ({', '.join(prefixes[:4])} ...); "
            f"this is a bgpctl bug, report it"
        )
    return peer, nets


def announce_lines(
    policy: Policy,
    peer_name: str,
    path_id: int,
    attrs: RouteAttrs,
    prefixes: Sequence[str],
    *,
    nets: _Nets | None = None,
) -> list[str]:
    """``neighbor ADDR announce attributes [path-information ID] next-hop NH [med M] [as-path [ .. ]]
    [community [ .. ]] [large-community [ .. ]] [extended-community [ bandwidth:AS:BPS ]] origin igp nlri P1
    P2 ...`` for routes to one peer with the same family, path id and attributes, after every check (each
    prefix inside the allowlist, of the peer's families); as many lines as the line limit needs."""
    check = (nets or _Nets(policy.guards.allowlist)).allowed
    peer, networks = _group(policy, peer_name, prefixes, check)
    net = networks[0]
    where = (
        f"route {net} to {peer_name}" if len(networks) == 1 else f"routes {net} (+{len(networks) - 1}) to {peer_name}"
    )
    head = (
        f"neighbor {peer.address} announce attributes{_path_information(peer, RouteKey(str(net), path_id))}"
        f"{_attributes(policy, peer, net, where, attrs)}"
    )
    return _nlri_lines(head, networks)


def withdraw_lines(
    policy: Policy,
    peer_name: str,
    path_id: int,
    prefixes: Sequence[str],
    next_hop: str | None = None,
    *,
    nets: _Nets | None = None,
) -> list[str]:
    """``neighbor ADDR withdraw attributes [path-information ID] [next-hop NH] nlri P1 P2 ...``.

    Withdrawals are not allowlist-checked (withdrawing is always safe), but every prefix must be valid."""
    check = (nets or _Nets(policy.guards.allowlist)).network
    peer, networks = _group(policy, peer_name, prefixes, check)
    net = networks[0]
    nh = f" next-hop {_next_hop(peer, net, next_hop)}" if next_hop is not None else ""
    head = f"neighbor {peer.address} withdraw attributes{_path_information(peer, RouteKey(str(net), path_id))}{nh}"
    return _nlri_lines(head, networks)


def announce_line(policy: Policy, peer_name: str, key: RouteKey, attrs: RouteAttrs) -> str:
    """The command of one route: :func:`announce_lines` with one prefix."""
    (line,) = announce_lines(policy, peer_name, key.path_id, attrs, [key.prefix])
    return line


def withdraw_line(policy: Policy, peer_name: str, key: RouteKey, attrs: RouteAttrs | None = None) -> str:
    """The withdrawal of one route (with ``attrs``: the next hop it was announced with)."""
    nh = attrs.next_hop if attrs is not None else None
    (line,) = withdraw_lines(policy, peer_name, key.path_id, [key.prefix], nh)
    return line


def eor_lines(policy: Policy, peer_name: str) -> list[Command]:
    """``neighbor ADDR announce eor AFI SAFI`` for each family of the peer (used with manual-eor)."""
    peer = policy.peer(peer_name)
    return [Command(peer_name, f"neighbor {peer.address} announce eor {' '.join(f.words)}") for f in peer.families]


def _family_of(prefix: str) -> int:
    return 6 if ":" in prefix else 4  # only groups: every prefix is parsed and checked when rendered


def batch(policy: Policy, changes: Sequence[RouteChange], held: Rib | None = None) -> list[Command]:
    """The commands for ``changes``: the changes to one peer of one kind, family and path id with the same
    attributes (announce) or the same held next hop (withdraw) share commands, in the order of each group's
    first change. ``held``: the attributes ExaBGP holds now, per peer (gives a withdrawal its next hop).
    Every route is checked as by :func:`announce_lines` / :func:`withdraw_lines`; one bad route refuses the
    whole batch (SpeakerError)."""
    held = held or {}
    groups: dict[tuple[str, ChangeKind, int, int, RouteAttrs | str | None], list[RouteChange]] = {}
    for change in changes:
        what: RouteAttrs | str | None
        if change.kind is ChangeKind.ANNOUNCE:
            if change.attrs is None:
                raise SpeakerError(
                    f"announce of {change.key.prefix} to {change.peer} carries no attributes: "
                    f"the planner must give next hop and AS path"
                )
            what = change.attrs
        else:
            before = held.get(change.peer, {}).get(change.key)
            what = before.next_hop if before is not None else None
        key = (change.peer, change.kind, _family_of(change.key.prefix), change.key.path_id, what)
        groups.setdefault(key, []).append(change)
    nets = _Nets(policy.guards.allowlist)
    out: list[Command] = []
    for (peer, kind, _family, path_id, what), members in groups.items():
        prefixes = [c.key.prefix for c in members]
        if kind is ChangeKind.ANNOUNCE:
            assert isinstance(what, RouteAttrs)
            lines = announce_lines(policy, peer, path_id, what, prefixes, nets=nets)
        else:
            assert not isinstance(what, RouteAttrs)
            lines = withdraw_lines(policy, peer, path_id, prefixes, what, nets=nets)
        start = 0
        for line in lines:
            count = line.count(" ", line.index(" nlri ") + 5)  # the prefixes on this line
            out.append(Command(peer, line, tuple(members[start : start + count])))
            start += count
        assert start == len(members), "every change in exactly one command"
    return out


def render(policy: Policy, change: RouteChange, announced: RouteAttrs | None = None) -> Command:
    """The command for one change. ``announced``: the attributes ExaBGP holds now (gives a withdraw its next hop)."""
    held = {change.peer: {change.key: announced}} if announced is not None else None
    (cmd,) = batch(policy, [change], held)
    return cmd


def validate_rib(policy: Policy, rib: Rib, valid: Rib | None = None) -> None:
    """Every route of ``rib`` renders (allowlist, peer, family, attributes); the first problem raises.

    ``valid``: a RIB this check accepted under the same ``policy``; its routes (same peer, key and
    attributes) are not checked again, so a sync at scale checks what changed, not ~60,000 routes."""
    batch(
        policy,
        [
            RouteChange(peer_name, ChangeKind.ANNOUNCE, key, attrs, "check")
            for peer_name, routes in rib.items()
            for key, attrs in routes.items()
            if valid is None or valid.get(peer_name, {}).get(key) != attrs
        ],
    )


def diff(policy: Policy, desired: Rib, held: Rib, full: frozenset[str] = frozenset()) -> list[RouteChange]:
    """The changes that take ``held`` (what ExaBGP has) to ``desired``, make-before-break: every
    announcement (of every peer) before any withdrawal. Peers in ``full`` get all their desired routes
    re-announced, changed or not (resync after a session comes up)."""
    announces: list[RouteChange] = []
    withdraws: list[RouteChange] = []
    for peer in policy.peers:
        want = desired.get(peer.name, {})
        have = held.get(peer.name, {})
        for key in sorted(want):
            if peer.name in full or have.get(key) != want[key]:
                why = "resync" if have.get(key) == want[key] else ("update" if key in have else "new")
                announces.append(RouteChange(peer.name, ChangeKind.ANNOUNCE, key, want[key], why))
        withdraws.extend(
            RouteChange(peer.name, ChangeKind.WITHDRAW, key, None, "not desired")
            for key in sorted(have)
            if key not in want
        )
    return announces + withdraws


CEASE_MAX_PREFIXES = 1  # RFC 4486: Cease / Maximum Number of Prefixes Reached


def teardown_line(policy: Policy, peer_name: str, subcode: int = CEASE_MAX_PREFIXES) -> Command:
    """``neighbor ADDR teardown SUBCODE``: ExaBGP closes the established session with Cease / ``subcode``."""
    if not 1 <= subcode <= 255:
        raise SpeakerError(f"Cease subcode {subcode} is outside 1-255")
    peer = policy.peer(peer_name)
    return Command(peer_name, f"neighbor {peer.address} teardown {subcode}")
