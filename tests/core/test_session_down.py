"""A TGW session is part of the path (issue 9, point 3): decide()'s rule 0 and the controller's session input.

Pure: the clock is passed in; the probes of every path answer in 1 ms throughout, so whatever moves a
path here is the session's state alone.
"""

from __future__ import annotations

import pytest

from bgpctl.core.controller import Controller
from bgpctl.core.decide import decide
from bgpctl.core.recording import RecordingError, Session, parse_line, session_line
from bgpctl.core.types import ChangeKind, Health, PathHealth
from bgpctl.policy.model import Policy
from tests.core.fed_run import LAB, STEP_S, T0, FedRun, hysteresis, region_paths, replay_takes_down, replayed_steps


def _run(policy: Policy = LAB) -> FedRun:
    """Probes fed as soon as they are answered (every probe answers): what moves a path is the session."""
    return FedRun(policy, feed_after_s=0.001)


def test_decide_takes_a_path_down_at_once_when_its_peer_session_is_down() -> None:
    keys = list(Controller(LAB).keys)
    up = {k: PathHealth(health=Health.UP, since=T0 - 100) for k in keys}
    d = decide(LAB, {}, up, T0, frozenset({"tgw-use1"}))
    down = {t.key for t in d.transitions}
    assert down == region_paths(LAB, "use1")
    for key in down:
        h = d.health[key]
        assert h.health is Health.DOWN and h.since == T0
        assert [r.metric for r in h.reasons] == ["session"]
        assert "tgw-use1" in h.reasons[0].text
        hold = hysteresis(key).hold_down_s
        assert h.down_until == T0 + hold
    # usw2 has no data here (fail-static): kept UP, not touched by tgw-use1's session
    assert all(d.health[k].health is Health.UP for k in keys if k.region == "usw2")
    # the same call without the session input changes nothing
    assert not decide(LAB, {}, up, T0).transitions


def test_a_session_never_seen_up_does_not_take_a_path_down() -> None:
    run = _run()
    assert not run.session("tgw-use1", False)  # start-up: the session is not up yet
    run.advance(12)
    assert all(run.health(k).health is Health.UP for k in run.ctl.keys)
    assert run.ctl.sessions_down == frozenset()


def test_unknown_forgets_that_a_session_was_up() -> None:
    run = _run()
    run.session("tgw-use1", True)
    assert run.session("tgw-use1", None)  # a restarted ExaBGP: nothing heard of the peer yet
    assert not run.session("tgw-use1", False)  # connecting again: not down, it was not seen up since
    assert run.ctl.sessions_down == frozenset()


def _down_and_back(policy: Policy = LAB) -> tuple[FedRun, float, float, float]:
    """Judged UP, session up, then down at t_down for 20 s, then up again at t_up; returns (run,
    t_down, the last step that saw it down, t_up)."""
    run = _run(policy)
    run.session("tgw-use1", True)
    run.advance(12)
    assert all(run.health(k).health is Health.UP for k in run.ctl.keys)
    t_down = run.now
    assert run.session("tgw-use1", False)
    run.advance(STEP_S)
    run.advance(20 - STEP_S)
    last_down = run.now
    assert all(run.health(k).health is Health.DOWN for k in region_paths(policy, "use1"))
    assert run.session("tgw-use1", True)
    t_up = run.now
    run.forget_firsts()
    run.advance(45)
    return run, t_down, last_down, t_up


def test_session_down_moves_the_region_off_in_the_next_step_and_back_after_the_rise_rules() -> None:
    run, t_down, last_down, t_up = _down_and_back()
    # down in the first step after the session went down, with the session as the reason
    first = next(s for s in run.steps if s[0] > t_down)
    assert first[0] == t_down + STEP_S
    assert set(first[1]) == {(str(k), "down") for k in region_paths(LAB, "use1")}
    # usw2 never moved after its first judgement
    assert not [t for s in run.steps if s[0] > t_down for t in s[1] if "/usw2/" in t[0]]
    # back: not before the hold-down (from the last step that saw the session down), rise_s of clean
    # measurements from the session's return and min_dwell_s in DOWN; at most one step after all hold
    for key in region_paths(LAB, "use1"):
        h = hysteresis(key)
        earliest = max(last_down + h.hold_down_s, t_up + h.rise_s, t_down + STEP_S + h.min_dwell_s)
        assert earliest <= run.first[(key, Health.UP)] <= earliest + STEP_S, (key, run.first[(key, Health.UP)] - t_up)
        assert run.health(key).health is Health.UP


def test_the_plan_withdraws_the_region_and_names_the_session() -> None:
    run = _run()
    run.session("tgw-use1", True)
    run.advance(12)
    assert {a.next_hop for a in run.ctl.last_plan.desired["edge"].values()} == {"198.18.1.11"}  # type: ignore[union-attr]
    run.session("tgw-use1", False)
    step = run.ctl.step(run.now + STEP_S)
    assert step.plan is not None
    assert {t.key for t in step.transitions} == region_paths(LAB, "use1")
    assert all(t.reasons[0].metric == "session" for t in step.transitions)
    before = run.ctl.last_plan
    edge = step.plan.desired["edge"]
    # nothing negotiated ADD-PATH: one path per prefix, moved from use1's next hop to usw2's
    assert {(k.prefix, a.next_hop) for k, a in edge.items()} == {
        (p, "198.18.1.12") for p in ("203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26")
    }
    moved = {(c.peer, c.kind, c.key.prefix) for c in step.plan.changes}
    assert moved == {
        ("edge", ChangeKind.ANNOUNCE, "203.0.113.0/26"),
        ("edge", ChangeKind.ANNOUNCE, "203.0.113.64/26"),
        ("edge", ChangeKind.ANNOUNCE, "203.0.113.128/26"),
        ("tgw-use1", ChangeKind.WITHDRAW, "192.0.2.0/24"),
    }
    assert before is step.plan


def test_session_lines_round_trip_and_bad_ones_are_refused() -> None:
    for up in (True, False, None):
        assert parse_line(session_line("tgw-use1", up, 12.5), "rec:1") == Session("tgw-use1", up, 12.5)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"ev": "session", "up": false, "at": 1}', "'peer' must be the peer's name"),
        ('{"ev": "session", "peer": "", "up": false, "at": 1}', "'peer' must be the peer's name"),
        ('{"ev": "session", "peer": "tgw-use1", "up": "down", "at": 1}', "'up' must be true, false or null"),
        ('{"ev": "session", "peer": "tgw-use1", "up": true}', "'at' must be a finite number"),
        ('{"ev": "sessions", "peer": "tgw-use1"}', "unknown event 'sessions'"),
    ],
)
def test_bad_session_lines_name_the_field(line: str, message: str) -> None:
    with pytest.raises(RecordingError, match=message):
        parse_line(line, "rec.jsonl:7")


def test_a_replay_of_the_recording_makes_the_same_decisions() -> None:
    run, *_ = _down_and_back()
    replayed, summary = replayed_steps(run.lines)
    assert summary.exact
    assert replayed == [s for s in run.steps if s[1]]
    assert any(("media/use1/interconnect", "down") in s[1] for s in replayed)
    # without the session lines, nothing in the recording moves a path (the probes all answered)
    no_sessions = [line for line in run.lines if '"ev":"session"' not in line]
    assert len(no_sessions) < len(run.lines)
    assert not replay_takes_down(no_sessions)
