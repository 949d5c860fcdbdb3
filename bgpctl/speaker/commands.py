"""RouteChange -> the exact ExaBGP API line. Pure: no I/O.

Every token that goes into a line is checked against a strict pattern first, so nothing a caller passes
can inject a second command into ExaBGP's line protocol. The prefix allowlist is checked here as well as
in the planner, by the same function (:func:`bgpctl.policy.allowlist.allowed`; docs/design.md, "Invariants"):
a route outside it raises :class:`SpeakerError` and is never sent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
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
    """One line for ExaBGP, and what it does to our view of its RIB once ExaBGP acknowledges it.

    A command whose line :func:`wire_line` refuses cannot be built (SpeakerError)."""

    peer: str  # peer name (policy)
    line: str  # without the trailing newline
    change: RouteChange | None  # None for End-of-RIB

    def __post_init__(self) -> None:
        wire_line(self.line)


def _network(prefix: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(prefix, strict=True)
    except ValueError as e:
        raise SpeakerError(
            f"route {prefix!r} is not a valid prefix ({e}): the planner must produce "
            f"network addresses like 203.0.113.0/26"
        ) from e


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


def announce_line(policy: Policy, peer_name: str, key: RouteKey, attrs: RouteAttrs) -> str:
    """``neighbor ADDR announce route PREFIX [path-information ID] next-hop NH [med M] [as-path [ .. ]]
    [community [ .. ]] [large-community [ .. ]] [extended-community [ bandwidth:AS:BPS ]] origin igp``,
    after every check."""
    net = check_allowed(key.prefix, policy.guards.allowlist)
    peer = _checked_peer(policy, peer_name, net)
    where = f"route {net} to {peer_name}"
    med = ""
    if attrs.med is not None:
        if not 0 <= attrs.med <= _U32:
            raise SpeakerError(f"{where}: MED {attrs.med} is not 0..{_U32}")
        med = f" med {attrs.med}"
    line = (
        f"neighbor {peer.address} announce route {net}{_path_information(peer, key)}"
        f" next-hop {_next_hop(peer, net, attrs.next_hop)}{med}"
        f"{_as_path(where, policy.speaker.local_as, attrs.as_path)}"
        f"{_communities(where, attrs.communities)}{_large_communities(where, attrs.large_communities)}"
        f"{_extended_communities(where, policy.speaker.local_as, attrs.weight)}"
        f" origin igp"
    )
    wire_line(line)
    return line


def withdraw_line(policy: Policy, peer_name: str, key: RouteKey, attrs: RouteAttrs | None = None) -> str:
    """``neighbor ADDR withdraw route PREFIX [path-information ID] [next-hop NH]``.

    Withdrawals are not allowlist-checked (withdrawing is always safe), but the prefix must be valid."""
    net = _network(key.prefix)
    peer = _checked_peer(policy, peer_name, net)
    nh = f" next-hop {_next_hop(peer, net, attrs.next_hop)}" if attrs is not None else ""
    line = f"neighbor {peer.address} withdraw route {net}{_path_information(peer, key)}{nh}"
    wire_line(line)
    return line


def eor_lines(policy: Policy, peer_name: str) -> list[Command]:
    """``neighbor ADDR announce eor AFI SAFI`` for each family of the peer (used with manual-eor)."""
    peer = policy.peer(peer_name)
    return [
        Command(peer_name, f"neighbor {peer.address} announce eor {' '.join(f.words)}", None) for f in peer.families
    ]


def render(policy: Policy, change: RouteChange, announced: RouteAttrs | None = None) -> Command:
    """The command for one change. ``announced``: the attributes ExaBGP holds now (gives a withdraw its next hop)."""
    if change.kind is ChangeKind.ANNOUNCE:
        if change.attrs is None:
            raise SpeakerError(
                f"announce of {change.key.prefix} to {change.peer} carries no attributes: "
                f"the planner must give next hop and AS path"
            )
        return Command(change.peer, announce_line(policy, change.peer, change.key, change.attrs), change)
    return Command(change.peer, withdraw_line(policy, change.peer, change.key, announced), change)


def validate_rib(policy: Policy, rib: Rib) -> None:
    """Every route of ``rib`` renders (allowlist, peer, family, attributes); the first problem raises."""
    for peer_name, routes in rib.items():
        for key, attrs in routes.items():
            announce_line(policy, peer_name, key, attrs)


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
    return Command(peer_name, f"neighbor {peer.address} teardown {subcode}", None)
