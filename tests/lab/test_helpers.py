"""The lab test helpers themselves (pure: no lab needed)."""

from __future__ import annotations

import time

import pytest

from bgpctl.errors import LabError
from tests.lab.helpers import BUDGETS, assert_json_subset, budget_seconds, eventually, json_mismatches


def test_eventually_returns_the_first_passing_value() -> None:
    calls: list[float] = []

    def check() -> int:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise LabError("vtysh not answering yet") if len(calls) == 1 else AssertionError("not yet")
        return 42

    assert eventually(check, 5.0, interval=0.01) == 42
    assert len(calls) == 3


def test_eventually_names_the_budget_and_the_last_failure() -> None:
    def never() -> None:
        raise AssertionError("edge has 0 routes")

    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=r"routes: still failing after budget 0.2 s .* last: edge has 0 routes"):
        eventually(never, 0.2, interval=0.05, what="routes")
    assert 0.2 <= time.monotonic() - t0 < 1.0


def test_other_exceptions_are_not_swallowed() -> None:
    def broken() -> None:
        raise KeyError("bug in the test")

    with pytest.raises(KeyError):
        eventually(broken, 1.0)


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
