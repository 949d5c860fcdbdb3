"""The speaker keeps what each session negotiated (issue 9.1): fed ExaBGP's lines, no process."""

from __future__ import annotations

from pathlib import Path

from bgpctl import events
from bgpctl.core.types import RouteAttrs, RouteKey
from bgpctl.policy.model import Family
from bgpctl.speaker import Speaker
from tests.speaker.exabgp_lines import NB, WITH, WITHOUT, H
from tests.speaker.lab import LogTap, make_policy

V4 = frozenset({Family.IPV4_UNICAST})


def _negotiated(body: str) -> str:
    return H + '"type": "negotiated", ' + NB + f', "negotiated": {body} }} }}'


def _state(state: str) -> str:
    return H + '"type": "state", ' + NB + f', "state": "{state}" }} }}'


def test_negotiated_add_path_is_kept_until_the_session_goes_down(tmp_path: Path) -> None:
    tap = LogTap()
    sp = Speaker(make_policy(), tmp_path / "run", tap.log)
    calls: list[int] = []
    sp.on_negotiated = lambda: calls.append(1)
    assert sp.add_path_send() == {}  # never assumed
    sp._dispatch(_negotiated(WITH))
    sp._dispatch(_state("up"))
    assert sp.add_path_send() == {"edge": V4} and len(calls) == 1
    assert "edge" in sp._await_plan  # its End-of-RIB waits for the plan made for ADD-PATH (or AWAIT_PLAN_S)
    assert tap.events(events.BGP_CAPABILITIES)[-1]["level"] == "info"
    sp._dispatch(_state("down"))
    assert sp.add_path_send() == {} and len(calls) == 2
    sp._dispatch(_negotiated(WITHOUT))  # it comes back without ADD-PATH receive
    sp._dispatch(_state("up"))
    assert sp.add_path_send() == {"edge": frozenset()} and len(calls) == 2  # same plan as "not seen": no call
    warned = tap.events(events.BGP_CAPABILITIES)[-1]
    assert warned["level"] == "warning" and warned["add_path_refused"] == ["ipv4-unicast"]
    assert "one best path per prefix" in warned["hint"] and sp.counters["add_path_refused"] == 1


def test_withdrawals_that_would_remove_a_fresh_announcement_are_recognised(tmp_path: Path) -> None:
    sp = Speaker(make_policy(), tmp_path / "run", LogTap().log)
    media = "203.0.113.0/26"
    sp._dispatch(_negotiated(WITHOUT))
    sp._dispatch(_state("up"))
    fresh = {("edge", media)}
    assert sp._collapses("edge", RouteKey(media, 2), fresh)  # "withdraw media" on the wire: goes first
    assert not sp._collapses("edge", RouteKey(media, 0), fresh)
    assert not sp._collapses("edge", RouteKey("203.0.113.64/26", 2), fresh)  # nothing announced there
    sp._dispatch(_negotiated(WITH))
    assert not sp._collapses("edge", RouteKey(media, 2), fresh)  # with ADD-PATH path ids are kept apart


def test_a_family_the_session_did_not_negotiate_is_never_assumed(tmp_path: Path) -> None:
    """MP-BGP: the edge's policy entry carries ipv6-unicast over its IPv4 session; a peer that does not
    activate IPv6 negotiates only IPv4, ExaBGP drops the IPv6 routes, and the speaker says so."""
    policy = make_policy()
    edge = policy.peers[0].model_copy(update={"families": [Family.IPV4_UNICAST, Family.IPV6_UNICAST]})
    policy = policy.model_copy(update={"peers": [edge, *policy.peers[1:]]})
    tap = LogTap()
    sp = Speaker(policy, tmp_path / "run", tap.log)
    v4, v6 = RouteKey("203.0.113.0/26"), RouteKey("2001:db8:100::/48")
    attrs = RouteAttrs("198.18.1.11", (65000,))
    sp._held["edge"] = {v4: attrs, v6: RouteAttrs("2001:db8:1::11", (65000,))}
    assert sp.negotiated_families() == {}
    sp._dispatch(_negotiated(WITHOUT))  # families: ["ipv4 unicast"]
    sp._dispatch(_state("up"))
    assert sp.negotiated_families() == {"edge": V4}
    assert sp.announced()["edge"] == {v4: attrs}  # held by ExaBGP, never sent: not announced
    warned = [e for e in tap.events(events.BGP_CAPABILITIES) if e.get("families_refused")]
    assert warned[-1]["level"] == "warning" and warned[-1]["families_refused"] == ["ipv6-unicast"]
    assert "drops those routes" in warned[-1]["hint"] and sp.counters["family_refused"] == 1
    sp._dispatch(_state("down"))
    assert sp.negotiated_families() == {}
    both = WITHOUT.replace('"families": ["ipv4 unicast"]', '"families": ["ipv4 unicast", "ipv6 unicast"]')
    sp._dispatch(_negotiated(both))
    sp._dispatch(_state("up"))
    assert sp.negotiated_families() == {"edge": frozenset(Family)}
    assert set(sp.announced()["edge"]) == {v4, v6} and sp.counters["family_refused"] == 1
