"""Replay: recordings through PathWindow, decide() and plan(), on the recording's clock."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bgpctl.core.plan import apply_changes
from bgpctl.core.recording import RecordingError, Settled, parse_line, read_recording
from bgpctl.core.replay import (
    ReplayError,
    ReplaySummary,
    TimelineEvent,
    default_tick,
    event_to_dict,
    render_event,
    replay,
)
from bgpctl.core.types import ChangeKind, Health, PathKey, RouteKey
from tests.core.plans.support import REPLAY_PATCH, deep_merge, lab_policy, recording_lines

LAB = lab_policy(REPLAY_PATCH)  # media: 20 ms probes, 200 ms timeout, down after 5 lost in a row
USE1 = PathKey("media", "use1", "interconnect")
USW2 = PathKey("media", "usw2", "interconnect")
MEDIA = "203.0.113.0/26"
RTT = {USE1: 12.0, USW2: 70.0}


def _run(lines: list[str], policy: Any = LAB, tick: float | None = None) -> tuple[list[TimelineEvent], ReplaySummary]:
    summary = ReplaySummary()
    events = list(replay(policy, read_recording(lines), tick, summary))
    return events, summary


def _transitions(events: list[TimelineEvent]) -> list[tuple[str, str, str]]:
    return [(str(t.key), t.old.value, t.new.value) for e in events for t in e.transitions]


def _blackhole(start: float, end: float, key: PathKey = USE1) -> Any:
    return lambda k, t: k == key and start <= t < end


# ------------------------------------------------------------------------------------------
# reading


BAD_LINES = [
    ("not json", "{", "not JSON"),
    ("not an object", "[1, 2]", "expected a JSON object"),
    (
        "missing fields",
        '{"service": "media", "region": "use1", "path": "interconnect", "seq": 1}',
        "missing sent, received",
    ),
    (
        "seq not an integer",
        '{"service": "media", "region": "use1", "path": "interconnect", "seq": "1", "sent": 0, "received": null}',
        "'seq' must be an integer",
    ),
    (
        "sent not a number",
        '{"service": "media", "region": "use1", "path": "interconnect", "seq": 1, "sent": "0", "received": null}',
        "'sent' must be a finite number",
    ),
    (
        "received before sent",
        '{"service": "media", "region": "use1", "path": "interconnect", "seq": 1, "sent": 5.0, "received": 4.0}',
        "before sent",
    ),
    (
        "path not a string",
        '{"service": "media", "region": "use1", "path": 7, "seq": 1, "sent": 5.0, "received": null}',
        "must be strings",
    ),
]


@pytest.mark.parametrize(("line", "message"), [c[1:] for c in BAD_LINES], ids=[c[0] for c in BAD_LINES])
def test_bad_lines_are_refused_with_file_and_line(line: str, message: str) -> None:
    good = '{"service": "media", "region": "use1", "path": "interconnect", "seq": 0, "sent": 0, "received": 0.01}'
    with pytest.raises(RecordingError, match=rf"^rec\.jsonl:3: .*{message}"):
        list(read_recording([good, "", line], "rec.jsonl"))


def test_a_line_parses_to_a_sample() -> None:
    r = parse_line(
        '{"service": "media", "region": "use1", "path": "interconnect", "seq": 4, "sent": 1.5, "received": null}', "x:1"
    )
    assert isinstance(r, Settled)
    assert r.key == USE1 and r.sample.seq == 4 and r.sample.sent == 1.5 and r.sample.received is None


def test_a_path_the_policy_does_not_measure_is_refused() -> None:
    lines = recording_lines({PathKey("media", "eu1", "interconnect"): 10.0}, 1.0, 0.02)
    with pytest.raises(ReplayError, match="media/eu1/interconnect, which the policy does not measure"):
        _run(lines)


def test_empty_recording_replays_to_nothing() -> None:
    events, summary = _run([])
    assert events == [] and summary.samples == 0 and summary.ticks == 0


def test_default_tick_is_the_smallest_probe_interval() -> None:
    assert default_tick(LAB) == pytest.approx(0.020)


# ------------------------------------------------------------------------------------------
# the timeline


def test_blackhole_goes_down_on_the_tick_the_fifth_loss_settles_and_withdraws_in_that_event() -> None:
    lines = recording_lines(RTT, 60.0, 0.02, lost=_blackhole(20.0, 30.0))
    events, summary = _run(lines)
    # a few losses are not yet confidently over the 1 % degraded loss threshold; 5 probes unanswered
    # past the adaptive RTO make the path suspect (de-preferred), their timeouts confirm it down
    assert _transitions(events)[:4] == [
        (str(USE1), "unknown", "up"),
        (str(USW2), "unknown", "up"),
        (str(USE1), "up", "suspect"),
        (str(USE1), "suspect", "down"),
    ]
    suspect = next(e for e in events if any(t.new is Health.SUSPECT for t in e.transitions))
    # the 5th unanswered probe was sent at 120.08; the RTO is its floor, 1.5 x 20 ms: 120.11, next tick 120.12
    assert suspect.at == pytest.approx(120.12, abs=1e-6)
    assert [(c.peer, c.kind, c.attrs is not None and c.attrs.med) for c in suspect.plan.changes] == [
        ("edge", ChangeKind.ANNOUNCE, 500),
        ("tgw-use1", ChangeKind.ANNOUNCE, None),
    ]  # de-preferred, kept
    down = next(e for e in events if any(t.new is Health.DOWN for t in e.transitions))
    # the recording starts with the first probe (100.0); the 5th lost probe (sent 120.08) settles at
    # its 200 ms timeout, 120.28: a 20 ms tick
    assert down.at == pytest.approx(120.28, abs=1e-6)
    assert [(c.peer, c.kind, c.key) for c in down.plan.changes] == [
        ("edge", ChangeKind.WITHDRAW, RouteKey(MEDIA, 1)),
        ("tgw-use1", ChangeKind.WITHDRAW, RouteKey("192.0.2.0/24")),
    ]
    assert down.plan.changes[0].why == "media/use1/interconnect down: withdrawn"
    # it comes back, after the hold-down and the rise time, and is announced again
    assert _transitions(events)[-1][0::2] == (str(USE1), "up")
    back = events[-1]
    assert back.at - down.at >= 15.0  # hold_down_s of the voice class
    rib: dict[str, Any] = {}
    for e in events:
        rib = apply_changes(rib, e.plan.changes)
    assert RouteKey(MEDIA, 1) in rib["edge"] and RouteKey(MEDIA, 2) in rib["edge"]
    assert summary.final_health[USE1] is Health.UP and summary.final_health[USW2] is Health.UP
    assert summary.samples == len(lines)
    assert summary.route_changes == sum(len(e.plan.changes) for e in events)


def test_answers_later_than_the_timeout_count_as_lost() -> None:
    late = recording_lines(RTT, 30.0, 0.02, extra_ms=lambda k, t: 250.0 if k == USE1 and t >= 10.0 else 0.0)
    events, _ = _run(late)
    assert [t for t in _transitions(events) if t[0] == str(USE1)][-1][2] == "down"
    down = next(e for e in events if any(t.new is Health.DOWN for t in e.transitions))
    assert "consecutive_lost" in down.transitions[0].reasons[0].text


def test_a_coarser_tick_decides_on_its_own_grid() -> None:
    lines = recording_lines(RTT, 40.0, 0.02, lost=_blackhole(20.0, 40.0))
    events, summary = _run(lines, tick=1.0)
    down = next(e for e in events if any(t.new is Health.DOWN for t in e.transitions))
    assert down.t == pytest.approx(21.0)  # the fifth loss settles at t=20.268, the next whole-second tick
    assert summary.ticks == int(summary.end - summary.start) + 1


def test_noise_within_the_thresholds_never_changes_a_route() -> None:
    wobble = recording_lines(RTT, 60.0, 0.02, extra_ms=lambda k, t: 40.0 if int(t * 50) % 7 == 0 else 0.0)
    events, _ = _run(wobble)
    assert _transitions(events) == [(str(USE1), "unknown", "up"), (str(USW2), "unknown", "up")]


def test_a_rate_limited_policy_shows_when_deferred_changes_go_out() -> None:
    policy = lab_policy(deep_merge(REPLAY_PATCH, {"guards": {"max_route_changes_per_minute": 2}}))
    lines = recording_lines(RTT, 70.0, 0.02)
    events, summary = _run(lines, policy)
    first = events[0]
    assert len(first.plan.changes) + len(first.plan.deferred) >= 2
    retries = [e for e in events if not e.transitions]
    assert retries, "deferred changes must show up again when they go out"
    assert retries[0].t - events[0].t >= 60.0 - 0.02
    assert summary.deferred_max >= 1
    assert "(retrying deferred changes)" in render_event(retries[0])[0]
    final: dict[str, Any] = {}
    for e in events:
        final = apply_changes(final, e.plan.changes)
    assert len(final["edge"]) == 2 and len(final["tgw-use1"]) == 1 and len(final["tgw-usw2"]) == 1


def test_a_policy_change_changes_the_timeline() -> None:
    """The point of replay: judge a policy change on last week's data before merging it."""
    lines = recording_lines(RTT, 40.0, 0.02, lost=_blackhole(20.0, 20.4))  # 20 probes lost in a row
    strict, _ = _run(lines)
    patience = {"sla_classes": {"voice": {"hysteresis": {"down_after_lost": 25}}}}
    patient, _ = _run(lines, lab_policy(deep_merge(REPLAY_PATCH, patience)))
    assert (str(USE1), "suspect", "down") in _transitions(strict)
    assert [t for t in _transitions(patient) if t[2] in ("down", "suspect")] == []
    assert (str(USE1), "up", "degraded") in _transitions(patient)  # 8 % loss: degraded, not down


def test_event_json_and_text() -> None:
    lines = recording_lines(RTT, 30.0, 0.02, lost=_blackhole(20.0, 30.0))
    events, _ = _run(lines)
    down = next(e for e in events if any(t.new is Health.DOWN for t in e.transitions))
    data = event_to_dict(down)
    json.dumps(data)
    assert data["transitions"] == [
        {"path": str(USE1), "old": "suspect", "new": "down", "reasons": ["consecutive_lost 5 >= down_after_lost 5"]}
    ]
    changes = data["changes"]
    assert isinstance(changes, list)
    assert [c["kind"] for c in changes] == ["withdraw", "withdraw"]
    text = render_event(down)
    assert text[0].split() == [
        "20.280s",
        str(USE1),
        "suspect",
        "->",
        "down",
        "(consecutive_lost",
        "5",
        ">=",
        "down_after_lost",
        "5)",
    ]
    assert text[1].split()[:4] == ["edge", "withdraw", MEDIA, "id"]


# ------------------------------------------------------------------------------------------
# streaming


def test_lines_a_little_out_of_order_give_the_same_timeline() -> None:
    lines = recording_lines(RTT, 40.0, 0.02, lost=_blackhole(20.0, 30.0))
    shuffled = [lines[i ^ 1] for i in range(len(lines))]  # swaps neighbours: use1/usw2 order flips
    blocks = [shuffled[i : i + 100] for i in range(0, len(shuffled), 100)]  # and each 1 s block reversed
    shuffled = [line for block in blocks for line in reversed(block)]
    assert shuffled != lines
    ordered_events, _ = _run(lines)
    shuffled_events, _ = _run(shuffled)
    assert [(e.at, _transitions([e]), e.plan.changes) for e in shuffled_events] == [
        (e.at, _transitions([e]), e.plan.changes) for e in ordered_events
    ]


def test_a_line_far_out_of_order_is_refused() -> None:
    lines = recording_lines(RTT, 20.0, 0.02)
    late = lines.pop(10)  # sent at 100.1
    lines.insert(1000, late)  # after lines sent at ~110
    with pytest.raises(ReplayError, match=r"more than 5 s before a probe on an earlier line .* sort the recording"):
        _run(lines)


def test_the_recording_is_read_lazily() -> None:
    lines = recording_lines(RTT, 60.0, 0.02)
    consumed = 0

    def source() -> Any:
        nonlocal consumed
        for line in lines:
            consumed += 1
            yield line

    events = replay(LAB, read_recording(source()))
    first = next(events)
    assert first.t < 1.0
    assert consumed < 2 * 50 * 10  # a few seconds of the 60 s read, not the whole recording
    list(events)
    assert consumed == len(lines)
