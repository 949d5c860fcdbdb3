"""Outside signals (issue 14, point 2) in the pure core: decide()'s rule 0b and the controller's signal input.

Pure: the clock is passed in; the probes of every path answer in 1 ms unless a region is made to lose them,
so whatever moves a path here is the signal (or that loss) alone.
"""

from __future__ import annotations

import pytest

from bgpctl.core.controller import Controller
from bgpctl.core.decide import decide, signal_marks
from bgpctl.core.recording import RecordingError, Signalled, parse_line, signal_line
from bgpctl.core.types import Health, PathHealth, PathKey, SignalMark
from bgpctl.signals.document import Document, Reading, State, verdict
from tests.core.fed_run import LAB, STEP_S, T0, FedRun, hysteresis, region_paths, replay_takes_down, replayed_steps

USE1_DOWN = SignalMark("relay", "use1", None, Health.DOWN, "AWS Health: elevated errors in us-east-1")
USE1_DEGRADED = SignalMark("relay", "use1", None, Health.DEGRADED, "AWS Health: increased latency")


def _judged_up() -> FedRun:
    """Probes fed once a lost one would be known lost (TIMEOUT_S), all answered: every path judged UP."""
    run = FedRun()
    run.advance(12)
    assert all(run.health(k).health is Health.UP for k in run.ctl.keys)
    assert run.edge_hops() == {"198.18.1.11"}  # nothing negotiated ADD-PATH: the best path, use1's
    return run


# ------------------------------------------------------------------------------------------ decide()


def test_a_down_mark_takes_the_region_down_at_once_with_the_signal_as_its_reason() -> None:
    keys = list(Controller(LAB).keys)
    up = {k: PathHealth(health=Health.UP, since=T0 - 100) for k in keys}
    d = decide(LAB, {}, up, T0, signals=signal_marks(LAB, [USE1_DOWN]))
    assert {t.key for t in d.transitions} == region_paths(LAB, "use1")
    for key in region_paths(LAB, "use1"):
        h = d.health[key]
        assert h.health is Health.DOWN and h.since == T0
        assert [(r.metric, r.value, r.threshold) for r in h.reasons] == [("signal", None, None)]
        assert h.reasons[0].text == "signal relay: region use1 down: AWS Health: elevated errors in us-east-1"
        assert h.down_until == T0 + hysteresis(key).hold_down_s
    assert all(d.health[k].health is Health.UP for k in keys if k.region == "usw2")
    assert not decide(LAB, {}, up, T0).transitions  # the same call without the signal changes nothing


def test_a_degraded_mark_never_makes_a_path_better_and_never_judges_an_unjudged_one() -> None:
    keys = list(Controller(LAB).keys)
    media, api = PathKey("media", "use1", "interconnect"), PathKey("api", "use1", "interconnect")
    prev = {k: PathHealth(health=Health.UP, since=T0 - 100) for k in keys}
    prev[api] = PathHealth(health=Health.DOWN, since=T0 - 5, down_until=T0 + 25)
    prev[PathKey("signalling", "use1", "interconnect")] = PathHealth(health=Health.UNKNOWN, since=T0 - 1)
    d = decide(LAB, {}, prev, T0, signals=signal_marks(LAB, [USE1_DEGRADED]))
    assert d.health[media].health is Health.DEGRADED
    assert d.health[media].reasons[0].text.startswith("signal relay: region use1 degraded: ")
    assert d.health[api].health is Health.DOWN  # the probes' DOWN stands, with the probes' reason
    assert [r.metric for r in d.health[api].reasons] == ["samples"]
    assert d.health[PathKey("signalling", "use1", "interconnect")].health is Health.UNKNOWN
    # a standing mark with nothing new: the same object back (no allocation on the hot path)
    again = decide(LAB, {}, d.health, T0 + 0.5, signals=signal_marks(LAB, [USE1_DEGRADED]))
    assert again.health[media] is d.health[media] and not again.transitions


def test_marks_combine_per_path_worst_first_and_unknown_targets_are_left_out() -> None:
    path_mark = SignalMark("flag", "use1", "interconnect", Health.DOWN, "fibre cut")
    marks = signal_marks(LAB, [USE1_DEGRADED, path_mark, SignalMark("x", "use9", None, Health.DOWN, "?")])
    assert marks == {("use1", "interconnect"): path_mark}
    assert signal_marks(LAB, [path_mark, USE1_DEGRADED]) == {("use1", "interconnect"): path_mark}
    assert signal_marks(LAB, [SignalMark("x", "use1", "nope", Health.DOWN, "?")]) == {}


# ------------------------------------------------------------------------------------------ controller


def test_the_controller_counts_what_each_signal_says_now_and_nothing_is_no_change() -> None:
    ctl = Controller(LAB)
    assert not ctl.signal("relay", ())  # says nothing, as before: no change
    assert ctl.signal("relay", (USE1_DOWN,))
    assert not ctl.signal("relay", (USE1_DOWN,))
    assert ctl.signal("flag", (USE1_DEGRADED,))
    assert ctl.signals == {"relay": (USE1_DOWN,), "flag": (USE1_DEGRADED,)}
    assert ctl.signal("relay", ())  # stale or broken: the daemon says "nothing" -> the mark is gone
    assert ctl.signals == {"flag": (USE1_DEGRADED,)}


def test_signal_down_moves_the_edge_to_usw2_in_the_next_step() -> None:
    run = _judged_up()
    assert run.signal("relay", (USE1_DOWN,))
    t_mark = run.now
    run.advance(STEP_S)
    assert set(run.steps[-1][1]) == {(str(k), "down") for k in region_paths(LAB, "use1")}
    assert run.edge_hops() == {"198.18.1.12"}
    assert run.ctl.last_plan is not None and not any("fail-static" in n for n in run.ctl.last_plan.notes)
    assert all(run.first[(k, Health.DOWN)] == t_mark + STEP_S for k in region_paths(LAB, "use1"))


def test_signal_down_on_the_only_healthy_region_keeps_the_routes_with_a_fail_static_note() -> None:
    run = _judged_up()
    run.losing.add("usw2")  # usw2's probes die: the probes take it down
    run.advance(3)
    assert all(run.health(k).health is Health.DOWN for k in region_paths(LAB, "usw2"))
    assert run.edge_hops() == {"198.18.1.11"}
    before = run.ctl.last_plan
    assert before is not None
    run.signal("relay", (USE1_DOWN,))
    run.advance(STEP_S)
    assert all(run.health(k).health is Health.DOWN for k in run.ctl.keys)  # the signal does count ...
    after = run.ctl.last_plan
    assert after is not None and after is not before
    assert after.desired == before.desired  # ... but fail-static keeps every route: use1 stays announced
    assert after.changes == ()
    assert {n.split(":")[0] for n in after.notes if "fail-static" in n} == {"fail-static"}
    assert any("no path is up or degraded; kept" in n for n in after.notes)
    assert run.edge_hops() == {"198.18.1.11"}


def _marked_and_cleared(mark: SignalMark, seconds: float = 20.0) -> tuple[FedRun, float, float, float]:
    """Judged UP, then ``mark`` for ``seconds``, then cleared; returns (run, t_mark, last step marked, t_clear)."""
    run = _judged_up()
    t_mark = run.now
    assert run.signal(mark.signal, (mark,))
    run.advance(seconds)
    last_marked = run.now
    assert all(run.health(k).health is mark.health for k in region_paths(LAB, "use1"))
    assert run.signal(mark.signal, ())
    t_clear = run.now
    run.forget_firsts()
    run.advance(45)
    return run, t_mark, last_marked, t_clear


def test_a_cleared_down_signal_returns_the_region_through_the_rise_rules() -> None:
    run, t_mark, last_marked, t_clear = _marked_and_cleared(USE1_DOWN)
    for key in region_paths(LAB, "use1"):
        h = hysteresis(key)
        earliest = max(last_marked + h.hold_down_s, t_clear + h.rise_s, t_mark + STEP_S + h.min_dwell_s)
        assert earliest <= run.first[(key, Health.UP)] <= earliest + STEP_S, (
            key,
            run.first[(key, Health.UP)] - t_clear,
        )
        assert run.health(key).health is Health.UP
        assert run.why[(key, Health.UP)][0] == "rise"  # back by the rise rule, on clean measurements
    assert run.edge_hops() == {"198.18.1.11"}


def test_a_cleared_degraded_signal_returns_the_region_after_rise_s_of_clean_probes() -> None:
    run, t_mark, _, t_clear = _marked_and_cleared(USE1_DEGRADED, seconds=2.0)
    for key in region_paths(LAB, "use1"):
        h = hysteresis(key)
        earliest = max(t_clear + h.rise_s, t_mark + STEP_S + h.min_dwell_s)
        assert earliest <= run.first[(key, Health.UP)] <= earliest + STEP_S
    assert not [t for s in run.steps if s[0] > t_clear for t in s[1] if t[1] == "down"]


def test_a_stale_signal_is_ignored_the_same_document_fresh_takes_the_region_down() -> None:
    run = _judged_up()
    says_down = Document((USE1_DOWN,), generated_at=run.now - 61)  # the relay's view, 61 s old
    stale = verdict(Reading(run.now, says_down), run.now, 60)
    assert (stale.state, stale.marks) == (State.STALE, ())
    assert not run.signal("relay", stale.marks)  # the daemon tells the controller what the verdict says: nothing
    run.advance(5)
    assert all(run.health(k).health is Health.UP for k in run.ctl.keys)
    assert not [s for s in run.steps[-10:] if s[1]]
    fresh = verdict(Reading(run.now, says_down), run.now, 120)  # the same document within max_age_s
    assert fresh.state is State.FRESH and run.signal("relay", fresh.marks)
    run.advance(STEP_S)
    assert {k for k in run.ctl.keys if run.health(k).health is Health.DOWN} == region_paths(LAB, "use1")


# ------------------------------------------------------------------------------------------ recording


def test_signal_lines_round_trip() -> None:
    marks = (USE1_DOWN, SignalMark("relay", "usw2", "interconnect", Health.DEGRADED, 'quote " and ünïcode'))
    assert parse_line(signal_line("relay", marks, 12.5), "rec:1") == Signalled("relay", marks, 12.5)
    assert parse_line(signal_line("relay", (), 13.0), "rec:2") == Signalled("relay", (), 13.0)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"ev": "signal", "marks": [], "at": 1}', "'signal' must be the signal's name"),
        ('{"ev": "signal", "signal": "r", "marks": {}, "at": 1}', "'marks' must be a list"),
        ('{"ev": "signal", "signal": "r", "marks": [], "at": "x"}', "'at' must be a finite number"),
        (
            '{"ev": "signal", "signal": "r", "marks": [{"region": "use1", "state": "up", "reason": ""}], "at": 1}',
            r"marks\[0\]: region \(string\), path \(string or null\), state \('degraded' or 'down'\)",
        ),
        ('{"ev": "signal", "signal": "r", "marks": [7], "at": 1}', r"marks\[0\]"),
    ],
)
def test_bad_signal_lines_name_the_field(line: str, message: str) -> None:
    with pytest.raises(RecordingError, match=message):
        parse_line(line, "rec.jsonl:7")


def test_a_replay_of_the_recording_makes_the_same_decisions() -> None:
    run, *_ = _marked_and_cleared(USE1_DOWN)
    replayed, summary = replayed_steps(run.lines)
    assert summary.exact
    assert replayed == [s for s in run.steps if s[1]]
    assert any(("media/use1/interconnect", "down") in s[1] for s in replayed)
    # without the signal lines nothing in the recording takes a path down (the probes all answered)
    quiet = [line for line in run.lines if '"ev":"signal"' not in line]
    assert len(quiet) == len(run.lines) - 2
    assert not replay_takes_down(quiet)
