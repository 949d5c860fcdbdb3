"""Negotiated lines in a daemon recording (issue 9, point 1): a replay plans with what the sessions
negotiated, as the daemon did."""

from __future__ import annotations

import pytest

from bgpctl.core.recording import (
    Header,
    Negotiated,
    RecordingError,
    Schedule,
    header_line,
    negotiated_line,
    parse_line,
    read_recording,
    step_line,
)
from bgpctl.core.replay import ReplaySummary, replay
from bgpctl.core.types import PathKey
from bgpctl.policy.model import Family
from tests.core.plans.support import REPLAY_PATCH, lab_policy, recording_lines

LAB = lab_policy(REPLAY_PATCH)
V4 = frozenset({Family.IPV4_UNICAST})
MEDIA = "203.0.113.0/26"


def test_negotiated_line_round_trip() -> None:
    ev = parse_line(negotiated_line({"edge": V4, "tgw-use1": frozenset()}), "rec:1")
    assert ev == Negotiated({"edge": V4, "tgw-use1": frozenset()})
    head = parse_line(header_line({}, steps=True, negotiated=True), "rec:1")
    assert isinstance(head, Header) and head.negotiated


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"ev": "negotiated"}', "'add_path' must map peer names"),
        ('{"ev": "negotiated", "add_path": {"edge": ["ipv4"]}}', "add_path.edge: a list of families"),
        ('{"ev": "negotiated", "add_path": {"edge": "ipv4-unicast"}}', "add_path.edge: a list of families"),
        ('{"bgpctl_recording": 2, "paths": {}, "negotiated": 1}', "'negotiated' must be true or false"),
    ],
)
def test_bad_negotiated_lines_name_the_field(line: str, message: str) -> None:
    with pytest.raises(RecordingError, match=message):
        parse_line(line, "rec.jsonl:7")


def _daemon_recording(negotiate_at: float | None) -> list[str]:
    """Both media paths answering; steps every 20 ms; ADD-PATH negotiated with the edge at ``negotiate_at``."""
    keys = {PathKey("media", r, "interconnect"): 12.0 for r in ("use1", "usw2")}
    samples = [line for line in recording_lines(keys, 3.0, 0.02) if '"bgpctl_recording"' not in line]
    sched = {k: Schedule(0.02, 0.2) for k in keys}
    out = [header_line(sched, steps=True, negotiated=True)]
    t0 = None
    for line in samples:
        ev = parse_line(line, "x")
        at = ev.sample.received or ev.sample.sent  # type: ignore[union-attr]
        t0 = at if t0 is None else t0
        if negotiate_at is not None and at - t0 >= negotiate_at:
            out.append(negotiated_line({"edge": V4}))
            negotiate_at = None
        out.extend([line, step_line(at)])
    return out


def _edge_path_ids(lines: list[str]) -> list[set[int]]:
    summary = ReplaySummary()
    return [
        {k.path_id for k in e.plan.desired["edge"] if k.prefix == MEDIA}
        for e in replay(LAB, read_recording(lines), None, summary)
        if e.plan.changes
    ]


def test_a_replay_plans_with_what_was_negotiated_when_it_was() -> None:
    assert _edge_path_ids(_daemon_recording(None))[-1] == {0}  # never negotiated: one path
    ids = _edge_path_ids(_daemon_recording(2.0))
    assert ids[0] == {0} and ids[-1] == {1, 2}
