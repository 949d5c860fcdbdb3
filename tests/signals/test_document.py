"""The signal document (bgpctl.signals.document): what a good one marks, and the verdict on a reading in time."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpctl.core.types import Health, SignalMark
from bgpctl.policy.model import Policy
from bgpctl.signals.document import (
    CLOCK_SKEW_S,
    Document,
    Reading,
    SignalError,
    State,
    document_reading,
    parse_document,
    verdict,
)
from tests.signals.support import policy_with

T = 1_800_000_000.0


@pytest.fixture(scope="module")
def policy(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    return policy_with(
        tmp_path_factory.mktemp("p"),
        "  relay: { kind: http, url: 'http://192.0.2.7/h.json', max_age_s: 60 }\n",
    )


def test_a_document_marks_regions_and_paths_and_ok_marks_nothing(policy: Policy) -> None:
    doc = parse_document(
        "relay",
        b'{"generated_at": 1800000000, "regions": {"use1": {"state": "down", "reason": "AWS Health: API errors"},'
        b' "usw2": {"state": "ok"}}, "paths": {"usw2/interconnect": {"state": "degraded"}}}',
        policy,
    )
    assert doc == Document(
        (
            SignalMark("relay", "use1", None, Health.DOWN, "AWS Health: API errors"),
            SignalMark("relay", "usw2", "interconnect", Health.DEGRADED, "(no reason given)"),
        ),
        T,
    )
    assert parse_document("relay", b"{}", policy) == Document(())


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ('"2027-01-15T08:00:00Z"', T),
        ('"2027-01-15T09:00:00+01:00"', T),
        ("1800000000.0", T),
    ],
)
def test_generated_at_is_unix_seconds_or_iso_8601_with_a_zone(policy: Policy, text: str, at: float) -> None:
    assert parse_document("r", f'{{"generated_at": {text}}}'.encode(), policy).generated_at == at


def test_a_flag_file_may_be_yaml(policy: Policy) -> None:
    doc = parse_document("flag", b"regions:\n  usw2: {state: degraded, reason: change freeze}\n", policy, yaml=True)
    assert doc.marks == (SignalMark("flag", "usw2", None, Health.DEGRADED, "change freeze"),)
    with pytest.raises(SignalError) as e:
        parse_document("relay", b"regions: {}\n", policy)  # an HTTP document is JSON only
    assert e.value.reason == "parse"


def _doc(generated_at: float | None) -> Document:
    return Document((SignalMark("r", "use1", None, Health.DOWN, "x"),), generated_at)


def test_the_verdict_counts_age_from_generated_at_else_the_files_mtime_else_the_read() -> None:
    assert verdict(None, T, 60).state is State.PENDING
    fresh = verdict(Reading(T - 5, _doc(T - 30)), T, 60)
    assert (fresh.state, fresh.age_s, len(fresh.marks)) == (State.FRESH, 30.0, 1)
    stale = verdict(Reading(T - 5, _doc(T - 61)), T, 60)
    assert (stale.state, stale.marks, stale.reason) == (State.STALE, (), "stale")
    assert "61.0 s old, more than max_age_s 60" in stale.message
    assert verdict(Reading(T - 5, _doc(None), born=T - 100), T, 60).state is State.STALE  # mtime
    assert verdict(Reading(T - 5, _doc(None)), T, 60).state is State.FRESH  # read 5 s ago
    assert verdict(Reading(T - 5, _doc(T - 10_000)), T, None).state is State.FRESH  # no max age: never stale


def test_a_document_from_the_future_is_an_error_and_an_error_has_no_marks() -> None:
    future = verdict(document_reading(T, _doc(T + CLOCK_SKEW_S + 1)), T, 60)
    assert (future.state, future.reason, future.marks) == (State.ERROR, "clock", ())
    assert "31 s in the future" in future.message
    assert verdict(document_reading(T, _doc(T + CLOCK_SKEW_S - 1)), T, 60).state is State.FRESH
    broken = verdict(Reading(T - 2, error=SignalError("timeout", "no answer")), T, 60)
    assert (broken.state, broken.reason, broken.message, broken.marks, broken.age_s) == (
        State.ERROR,
        "timeout",
        "no answer",
        (),
        2.0,
    )


def test_every_refusal_has_a_reason_code(policy: Policy, tmp_path: Path) -> None:
    cases = {
        b"\xff\xfe": "parse",
        b"[1]": "malformed",
        b'{"regions": {"use9": {"state": "down"}}}': "unknown_target",
        b'{"paths": {"use1": {"state": "down"}}}': "unknown_target",
        b'{"regions": {"use1": {"state": "down", "why": "x"}}}': "malformed",
        b'{"generated_at": "yesterday"}': "malformed",
        b'{"generated_at": "2027-01-15T08:00:00"}': "malformed",
        b'{"generated_at": true}': "malformed",
    }
    for data, reason in cases.items():
        with pytest.raises(SignalError) as e:
            parse_document("r", data, policy)
        assert e.value.reason == reason, (data, e.value)
