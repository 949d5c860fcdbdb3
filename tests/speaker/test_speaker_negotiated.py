"""The speaker keeps what each session negotiated (issue 9.1): fed ExaBGP's lines, no process."""

from __future__ import annotations

from pathlib import Path

from bgpctl import events
from bgpctl.core.types import RouteKey
from bgpctl.policy.model import Family
from bgpctl.speaker import Speaker
from tests.speaker.lab import LogTap, make_policy
from tests.speaker.test_messages import NB, H
from tests.speaker.test_messages_negotiated import WITH, WITHOUT

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
