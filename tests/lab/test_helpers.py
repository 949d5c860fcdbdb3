"""The one polling helper (bgpctl_lab.poll) and the JSON helpers of the lab tests (pure: no lab needed)."""

from __future__ import annotations

import time

import pytest

from bgpctl.errors import BgpctlError, LabError
from bgpctl_lab.poll import BUDGETS, BudgetExceeded, budget_seconds, eventually
from tests.lab.helpers import assert_json_subset, json_mismatches


def test_eventually_returns_the_first_passing_value() -> None:
    calls: list[float] = []

    def check() -> int:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise LabError("vtysh not answering yet") if len(calls) == 1 else AssertionError("not yet")
        return 42

    waited = eventually("answer", budget=5.0, probe=check, interval_s=0.01)
    assert waited.value == 42
    assert waited.polls == 3
    assert len(calls) == 3


def test_eventually_names_the_budget_and_the_last_failure() -> None:
    def never() -> None:
        raise AssertionError("edge has 0 routes")

    t0 = time.monotonic()
    with pytest.raises(
        BudgetExceeded,
        match=r"'routes' did not hold within its budget of 0.2 s \(\d+ polls\); "
        r"last problems:\n  AssertionError: edge has 0 routes",
    ):
        eventually("routes", budget=0.2, probe=never, interval_s=0.05)
    assert 0.2 <= time.monotonic() - t0 < 1.0


def test_budget_exceeded_is_a_test_failure_and_a_bgpctl_error() -> None:
    assert issubclass(BudgetExceeded, AssertionError)
    assert issubclass(BudgetExceeded, BgpctlError)


def test_a_named_budget_is_named_in_the_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BUDGETS, "tiny", 0.05)
    with pytest.raises(BudgetExceeded, match=r"budget of tiny \(0.05 s\)"):
        eventually("x", budget="tiny", probe=lambda: 1, check=lambda v: [f"value {v}"], interval_s=0.01)


def test_other_exceptions_are_not_swallowed() -> None:
    def broken() -> None:
        raise KeyError("bug in the test")

    with pytest.raises(KeyError):
        eventually("broken", budget=1.0, probe=broken)


def test_expect_and_check_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="at most one"):
        eventually("x", budget=1.0, probe=lambda: 1, expect=1, check=lambda v: [])


def test_named_budgets() -> None:
    assert budget_seconds("lab_up") == ("lab_up", 20.0)
    assert budget_seconds(1.5) == ("1.5 s", 1.5)
    assert BUDGETS["lab_down"] == 10.0
    with pytest.raises(KeyError, match="unknown budget 'nope'"):
        budget_seconds("nope")


def test_json_subset() -> None:
    summary = {"ipv4Unicast": {"as": 65010, "peers": {"198.18.1.11": {"state": "Established", "pfxRcd": 3}}}}
    assert_json_subset(summary, {"ipv4Unicast": {"peers": {"198.18.1.11": {"state": "Established"}}}})
    assert json_mismatches({"ipv4Unicast": {"peers": {"198.18.1.12": {}}}}, summary)
    assert json_mismatches({"ipv4Unicast": {"as": None}}, summary)  # None: must be absent
    with pytest.raises(AssertionError, match=r"198\.18\.1\.11"):
        assert_json_subset(summary, {"ipv4Unicast": {"peers": {"198.18.1.11": {"state": "Idle"}}}})
