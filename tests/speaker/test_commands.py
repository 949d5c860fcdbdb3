"""Command rendering: RouteChange -> the exact ExaBGP API line, and every refusal (pure, table-driven)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.core.types import ChangeKind, RouteAttrs, RouteChange, RouteKey
from bgpctl.errors import SpeakerError
from bgpctl.speaker import commands
from tests.speaker.lab import make_policy

POLICY = make_policy()

ANNOUNCE_CASES = [
    (
        "plain, path id 0 on an ADD-PATH peer",
        "edge",
        RouteKey("203.0.113.0/26"),
        RouteAttrs("198.18.1.11", (65000,), 0),
        "neighbor 198.18.1.1 announce attributes next-hop 198.18.1.11 med 0 as-path [ 65000 ] origin "
        "igp nlri 203.0.113.0/26",
    ),
    (
        "path-information, prepend, communities, large communities",
        "edge",
        RouteKey("203.0.113.0/26", 1),
        RouteAttrs("198.18.1.11", (65000, 65000, 65000), 500, ("65000:100", "7224:7100"), ("65000:1:2",)),
        "neighbor 198.18.1.1 announce attributes path-information 0.0.0.1 next-hop 198.18.1.11 med 500 "
        "as-path [ 65000 65000 65000 ] community [ 65000:100 7224:7100 ] large-community [ 65000:1:2 ] origin igp "
        "nlri 203.0.113.0/26",
    ),
    (
        "large path id",
        "edge",
        RouteKey("203.0.113.64/26", 258),
        RouteAttrs("198.18.1.12", (65000,)),
        "neighbor 198.18.1.1 announce attributes path-information 0.0.1.2 next-hop 198.18.1.12 as-path "
        "[ 65000 ] origin igp nlri 203.0.113.64/26",
    ),
    (
        "no MED, no AS path (ExaBGP adds the local AS), well-known community",
        "tgw-use1",
        RouteKey("192.0.2.0/24"),
        RouteAttrs("198.18.1.1", (), None, ("no-export",)),
        "neighbor 198.18.1.11 announce attributes next-hop 198.18.1.1 community [ no-export ] origin "
        "igp nlri 192.0.2.0/24",
    ),
    (
        "IPv6, address normalised",
        "edge6",
        RouteKey("2001:db8:100::/48"),
        RouteAttrs("2001:DB8:1:0::2", (65000, 65000), 7),
        "neighbor 2001:db8:1::1 announce attributes next-hop 2001:db8:1::2 med 7 as-path [ 65000 65000 "
        "] origin igp nlri 2001:db8:100::/48",
    ),
    (
        "next-hop self",
        "tgw-use1",
        RouteKey("192.0.2.0/25"),
        RouteAttrs("self", (65000,)),
        "neighbor 198.18.1.11 announce attributes next-hop self as-path [ 65000 ] origin igp nlri 192.0.2.0/25",
    ),
]


@pytest.mark.parametrize(("why", "peer", "key", "attrs", "line"), ANNOUNCE_CASES, ids=[c[0] for c in ANNOUNCE_CASES])
def test_announce_line(why: str, peer: str, key: RouteKey, attrs: RouteAttrs, line: str) -> None:
    assert commands.announce_line(POLICY, peer, key, attrs) == line


WITHDRAW_CASES = [
    (
        "edge",
        RouteKey("203.0.113.0/26", 2),
        RouteAttrs("198.18.1.12", (65000,)),
        "neighbor 198.18.1.1 withdraw attributes path-information 0.0.0.2 next-hop 198.18.1.12 nlri 203.0.113.0/26",
    ),
    ("tgw-use1", RouteKey("192.0.2.0/24"), None, "neighbor 198.18.1.11 withdraw attributes nlri 192.0.2.0/24"),
    (
        "edge6",
        RouteKey("2001:db8:100::/48"),
        RouteAttrs("2001:db8:1::2", (65000,)),
        "neighbor 2001:db8:1::1 withdraw attributes next-hop 2001:db8:1::2 nlri 2001:db8:100::/48",
    ),
    # withdrawing is always safe: no allowlist check
    ("tgw-use1", RouteKey("198.51.100.0/24"), None, "neighbor 198.18.1.11 withdraw attributes nlri 198.51.100.0/24"),
]


@pytest.mark.parametrize(("peer", "key", "attrs", "line"), WITHDRAW_CASES)
def test_withdraw_line(peer: str, key: RouteKey, attrs: RouteAttrs | None, line: str) -> None:
    change = RouteChange(peer, ChangeKind.WITHDRAW, key, None)
    assert commands.render(POLICY, change, attrs).line == line


def test_eor_lines_per_family() -> None:
    assert [c.line for c in commands.eor_lines(POLICY, "edge")] == ["neighbor 198.18.1.1 announce eor ipv4 unicast"]
    assert [c.line for c in commands.eor_lines(POLICY, "edge6")] == ["neighbor 2001:db8:1::1 announce eor ipv6 unicast"]


A = RouteAttrs("198.18.1.11", (65000,))
REFUSALS = [
    ("outside the allowlist", "edge", RouteKey("198.51.100.0/24"), A, "outside the policy allowlist"),
    ("wider than the allowlist", "edge", RouteKey("203.0.112.0/23"), A, "outside the policy allowlist"),
    (
        "IPv6 outside the allowlist",
        "edge6",
        RouteKey("2001:db8:200::/48"),
        RouteAttrs("2001:db8:1::2", (65000,)),
        "outside the policy allowlist",
    ),
    ("host bits set", "edge", RouteKey("203.0.113.1/26"), A, "not a valid prefix"),
    (
        "IPv6 not in canonical form (FRR and ExaBGP report 2001:db8:100::/64)",
        "edge6",
        RouteKey("2001:db8:100:0::/64"),
        RouteAttrs("2001:db8:1::2", (65000,)),
        "not in canonical form: write 2001:db8:100::/64",
    ),
    (
        "IPv6 in capitals",
        "edge6",
        RouteKey("2001:DB8:100::/64"),
        RouteAttrs("2001:db8:1::2", (65000,)),
        "not in canonical form: write 2001:db8:100::/64",
    ),
    ("IPv4 without its length", "edge", RouteKey("203.0.113.7"), A, "not in canonical form: write 203.0.113.7/32"),
    (
        "line injection in the prefix",
        "edge",
        RouteKey("203.0.113.0/26\nneighbor 198.18.1.1 announce route 0.0.0.0/0 next-hop self"),
        A,
        "not a valid prefix",
    ),
    ("unknown peer", "nobody", RouteKey("203.0.113.0/26"), A, "not in the policy's peers"),
    (
        "family the session lacks",
        "edge",
        RouteKey("2001:db8:100::/48"),
        RouteAttrs("2001:db8:1::2", (65000,)),
        "only carries ipv4-unicast",
    ),
    ("path id without ADD-PATH", "tgw-use1", RouteKey("203.0.113.0/26", 3), A, "ADD-PATH send is off"),
    (
        "next hop of the other family",
        "edge",
        RouteKey("203.0.113.0/26"),
        RouteAttrs("2001:db8:1::2", (65000,)),
        "of the prefix's family",
    ),
    (
        "next hop not an address",
        "edge",
        RouteKey("203.0.113.0/26"),
        RouteAttrs("198.18.1.11 med 0", (65000,)),
        "not an IP address",
    ),
    (
        "AS path not starting with the local AS",
        "edge",
        RouteKey("203.0.113.0/26"),
        RouteAttrs("198.18.1.11", (64999,)),
        "does not start with the local AS",
    ),
    (
        "community injection",
        "edge",
        RouteKey("203.0.113.0/26"),
        RouteAttrs("198.18.1.11", (65000,), None, ("65000:1 ] med 5 [",)),
        "not a standard community",
    ),
    (
        "community out of range",
        "edge",
        RouteKey("203.0.113.0/26"),
        RouteAttrs("198.18.1.11", (65000,), None, ("65536:1",)),
        "not a standard community",
    ),
    (
        "large community malformed",
        "edge",
        RouteKey("203.0.113.0/26"),
        RouteAttrs("198.18.1.11", (65000,), None, (), ("1:2",)),
        "not a large community",
    ),
    (
        "MED out of range",
        "edge",
        RouteKey("203.0.113.0/26"),
        RouteAttrs("198.18.1.11", (65000,), 2**32),
        "MED 4294967296",
    ),
]


@pytest.mark.parametrize(("why", "peer", "key", "attrs", "message"), REFUSALS, ids=[c[0] for c in REFUSALS])
def test_refusals(why: str, peer: str, key: RouteKey, attrs: RouteAttrs, message: str) -> None:
    with pytest.raises(SpeakerError, match=message):
        commands.announce_line(POLICY, peer, key, attrs)
    with pytest.raises(SpeakerError, match=message):
        commands.validate_rib(POLICY, {peer: {key: attrs}})


@pytest.mark.parametrize(("why", "peer", "key", "attrs", "message"), REFUSALS, ids=[c[0] for c in REFUSALS])
def test_a_rib_checked_against_an_accepted_one_still_refuses_each_new_or_changed_route(
    why: str, peer: str, key: RouteKey, attrs: RouteAttrs, message: str
) -> None:
    good = RouteAttrs("198.18.1.11", (65000,))
    accepted = {"edge": {RouteKey("203.0.113.0/26"): good, RouteKey("203.0.113.64/26"): good}}
    commands.validate_rib(POLICY, accepted)
    # the bad route added next to the accepted ones, and (same key) in place of an accepted one
    grown = {**accepted, peer: {**accepted.get(peer, {}), key: attrs}}
    with pytest.raises(SpeakerError, match=message):
        commands.validate_rib(POLICY, grown, accepted)
    commands.validate_rib(POLICY, accepted, accepted)  # nothing new: nothing to refuse


def test_a_rib_checked_against_an_accepted_one_skips_only_identical_routes() -> None:
    """What is skipped is exactly (peer, key, attributes) of the accepted RIB: the same route with other
    attributes, or under another peer, is checked (here: refused for its MED / its unknown peer)."""
    good = RouteAttrs("198.18.1.11", (65000,))
    key = RouteKey("203.0.113.0/26")
    accepted = {"edge": {key: good}}
    with pytest.raises(SpeakerError, match="MED 4294967296"):
        commands.validate_rib(POLICY, {"edge": {key: RouteAttrs("198.18.1.11", (65000,), 2**32)}}, accepted)
    with pytest.raises(SpeakerError, match="nosuchpeer"):
        commands.validate_rib(POLICY, {**accepted, "nosuchpeer": {key: good}}, accepted)


def test_announce_without_attributes_is_refused() -> None:
    with pytest.raises(SpeakerError, match="carries no attributes"):
        commands.render(POLICY, RouteChange("edge", ChangeKind.ANNOUNCE, RouteKey("203.0.113.0/26"), None))


_addresses = st.one_of(
    st.ip_addresses(network="203.0.112.0/23"),
    st.ip_addresses(network="192.0.2.0/24"),
    st.ip_addresses(v=4),
    st.ip_addresses(network="2001:db8:100::/47"),
    st.ip_addresses(v=6),
)
_networks = _addresses.flatmap(
    lambda a: st.integers(0, a.max_prefixlen).map(lambda n: ipaddress.ip_network(f"{a}/{n}", strict=False))
)


@given(_networks)
def test_allowlist_property(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    """A prefix is accepted iff it is inside one allowlist entry of its own family."""
    prefix = str(net)
    inside = any(
        net.version == a.version
        and int(a.network_address) <= int(net.network_address)
        and int(net.broadcast_address) <= int(a.broadcast_address)
        for a in POLICY.guards.allowlist
    )
    if inside:
        assert str(commands.check_allowed(prefix, POLICY.guards.allowlist)) == prefix
    else:
        with pytest.raises(SpeakerError, match="outside the policy allowlist"):
            commands.check_allowed(prefix, POLICY.guards.allowlist)


R1, R2, R3 = RouteKey("203.0.113.0/26", 1), RouteKey("203.0.113.0/26", 2), RouteKey("203.0.113.64/26", 1)
B = RouteAttrs("198.18.1.12", (65000, 65000), 100)


def test_diff_sends_only_the_difference_announcements_first() -> None:
    held = {"edge": {R1: A, R2: B}, "tgw-use1": {RouteKey("192.0.2.0/24"): A}}
    desired = {"edge": {R1: A, R3: B}, "tgw-use1": {RouteKey("192.0.2.0/24"): B}}
    got = [(c.peer, c.kind, c.key, c.why) for c in commands.diff(POLICY, desired, held)]
    assert got == [
        ("edge", ChangeKind.ANNOUNCE, R3, "new"),
        ("tgw-use1", ChangeKind.ANNOUNCE, RouteKey("192.0.2.0/24"), "update"),
        ("edge", ChangeKind.WITHDRAW, R2, "not desired"),
    ]


def test_diff_full_resync_reannounces_unchanged_routes() -> None:
    held = {"edge": {R1: A}}
    got = [(c.peer, c.kind, c.key, c.why) for c in commands.diff(POLICY, {"edge": {R1: A}}, held, frozenset({"edge"}))]
    assert got == [("edge", ChangeKind.ANNOUNCE, R1, "resync")]
    assert commands.diff(POLICY, {"edge": {R1: A}}, held) == []


# ------------------------------------------------------------------ several prefixes per command


def _nlri(line: str) -> list[str]:
    _head, sep, prefixes = line.partition(" nlri ")
    assert sep and " nlri " not in prefixes
    return prefixes.split(" ")


def _announce(peer: str, prefix: str, path_id: int, attrs: RouteAttrs) -> RouteChange:
    return RouteChange(peer, ChangeKind.ANNOUNCE, RouteKey(prefix, path_id), attrs)


def _withdraw(peer: str, prefix: str, path_id: int) -> RouteChange:
    return RouteChange(peer, ChangeKind.WITHDRAW, RouteKey(prefix, path_id), None)


A = RouteAttrs("198.18.1.11", (65000,), 0, ("65000:100",))
B = RouteAttrs("198.18.1.11", (65000, 65000, 65000), 500, ("65000:100",))


def test_batch_puts_routes_with_the_same_peer_family_path_and_attributes_in_one_command() -> None:
    changes = [
        _announce("edge", "203.0.113.0/26", 1, A),
        _announce("edge", "203.0.113.64/26", 1, B),  # other attributes
        _announce("edge", "203.0.113.128/26", 1, A),
        _announce("edge", "203.0.113.128/26", 2, A),  # other path id
        _announce("tgw-use1", "192.0.2.0/24", 0, A),  # other peer
        _announce("edge", "203.0.113.192/26", 1, A),
    ]
    cmds = commands.batch(POLICY, changes)
    assert [c.line for c in cmds] == [
        "neighbor 198.18.1.1 announce attributes path-information 0.0.0.1 next-hop 198.18.1.11 med 0 as-path "
        "[ 65000 ] community [ 65000:100 ] origin igp nlri 203.0.113.0/26 203.0.113.128/26 203.0.113.192/26",
        "neighbor 198.18.1.1 announce attributes path-information 0.0.0.1 next-hop 198.18.1.11 med 500 as-path "
        "[ 65000 65000 65000 ] community [ 65000:100 ] origin igp nlri 203.0.113.64/26",
        "neighbor 198.18.1.1 announce attributes path-information 0.0.0.2 next-hop 198.18.1.11 med 0 as-path "
        "[ 65000 ] community [ 65000:100 ] origin igp nlri 203.0.113.128/26",
        "neighbor 198.18.1.11 announce attributes next-hop 198.18.1.11 med 0 as-path [ 65000 ] community "
        "[ 65000:100 ] origin igp nlri 192.0.2.0/24",
    ]
    assert [[c.key.prefix for c in cmd.changes] for cmd in cmds] == [_nlri(cmd.line) for cmd in cmds]
    assert [c.changes for c in cmds] == [
        (changes[0], changes[2], changes[5]),
        (changes[1],),
        (changes[3],),
        (changes[4],),
    ]


def test_batch_groups_withdrawals_by_the_next_hop_exabgp_holds() -> None:
    held = {
        "edge": {
            RouteKey("203.0.113.0/26", 1): A,
            RouteKey("203.0.113.64/26", 1): RouteAttrs("198.18.1.12", (65000,)),
            RouteKey("203.0.113.128/26", 1): B,
        }
    }
    changes = [_withdraw("edge", p, 1) for p in ("203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26")]
    changes.append(_withdraw("edge", "203.0.113.192/26", 1))  # not held: no next hop
    cmds = commands.batch(POLICY, changes, held)
    assert [c.line for c in cmds] == [
        "neighbor 198.18.1.1 withdraw attributes path-information 0.0.0.1 next-hop 198.18.1.11 nlri "
        "203.0.113.0/26 203.0.113.128/26",
        "neighbor 198.18.1.1 withdraw attributes path-information 0.0.0.1 next-hop 198.18.1.12 nlri 203.0.113.64/26",
        "neighbor 198.18.1.1 withdraw attributes path-information 0.0.0.1 nlri 203.0.113.192/26",
    ]
    assert [c.changes for c in cmds] == [(changes[0], changes[2]), (changes[1],), (changes[3],)]


def test_batch_splits_a_large_group_under_the_line_limit() -> None:
    """2,000 IPv6 host routes with one set of attributes: several lines, each under the limit, every route
    in exactly one of them, in order."""
    net = ipaddress.IPv6Network("2001:db8:100::/48")
    prefixes = [f"{net.network_address + (i << 64) + i}/128" for i in range(2000)]
    attrs = RouteAttrs("2001:db8:1::2", (65000,), 7, ("65000:600",))
    changes = [_announce("edge6", p, 0, attrs) for p in prefixes]
    cmds = commands.batch(POLICY, changes)
    assert len(cmds) > 1
    assert all(len(c.line) <= 8192 for c in cmds)
    assert [p for c in cmds for p in _nlri(c.line)] == prefixes
    assert [ch for c in cmds for ch in c.changes] == changes
    assert all([ch.key.prefix for ch in c.changes] == _nlri(c.line) for c in cmds)


def test_batch_never_mixes_families_in_one_command() -> None:
    mp = make_policy()
    with pytest.raises(SpeakerError, match="mixes IPv4 and IPv6 prefixes"):
        commands.announce_lines(mp, "edge", 0, A, ["203.0.113.0/26", "2001:db8:100::/48"])
    with pytest.raises(SpeakerError, match="without a prefix"):
        commands.withdraw_lines(mp, "edge", 0, [])


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["edge", "tgw-use1"]),
            st.sampled_from([ChangeKind.ANNOUNCE, ChangeKind.WITHDRAW]),
            st.integers(0, 255),
            st.sampled_from([0, 1, 2]),
            st.sampled_from([A, B]),
        ),
        max_size=60,
    )
)
def test_batch_keeps_every_change_exactly_once_with_its_own_attributes(
    specs: list[tuple[str, ChangeKind, int, int, RouteAttrs]],
) -> None:
    changes = []
    for peer, kind, n, path_id, attrs in specs:
        pid = path_id if peer == "edge" else 0  # ADD-PATH send: edge only
        prefix = f"203.0.113.{n}/32" if peer == "edge" else f"192.0.2.{n}/32"
        changes.append(
            _announce(peer, prefix, pid, attrs) if kind is ChangeKind.ANNOUNCE else _withdraw(peer, prefix, pid)
        )
    cmds = commands.batch(POLICY, changes)
    assert sorted(map(id, (ch for c in cmds for ch in c.changes))) == sorted(map(id, changes))
    for cmd in cmds:
        assert [ch.key.prefix for ch in cmd.changes] == _nlri(cmd.line)
        assert len({(ch.peer, ch.kind, ch.key.path_id, ch.attrs) for ch in cmd.changes}) == 1
        alone = commands.render(POLICY, cmd.changes[0]).line  # the same route by itself: the same head
        assert alone.partition(" nlri ")[0] == cmd.line.partition(" nlri ")[0]
