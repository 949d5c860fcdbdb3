"""JSON subset matching used by lab tests and drills (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgpctl_lab.jsonmatch import mismatches
from bgpctl_lab.poll import BudgetExceeded, eventually

CASES: list[tuple[str, Any, Any, list[str]]] = [
    ("equal scalars", 1, 1, []),
    ("different scalars", 1, 2, ["$: expected 2, got 1"]),
    ("subset dict", {"a": 1, "b": 2}, {"a": 1}, []),
    ("missing key", {"a": 1}, {"b": 1}, ["$.b: missing"]),
    ("absent required", {"a": 1}, {"a": None}, ["$.a: expected absent, got 1"]),
    ("absent ok", {"a": 1}, {"b": None}, []),
    ("list any order", [{"ip": "x"}, {"ip": "y"}], [{"ip": "y"}, {"ip": "x"}], []),
    ("list distinct elements", [{"ip": "x"}], [{"ip": "x"}, {"ip": "x"}], ["$[1]: no element matches {'ip': 'x'}"]),
    ("exact length", [1, 2, 3], [{"__exact_len__": 2}, 1], ["$: expected 2 elements, got 3"]),
    ("exact length ok", [1, 2], [{"__exact_len__": 2}, 2, 1], []),
    ("type mismatch", [1], {"a": 1}, ["$: expected an object, got list"]),
    (
        "nested path",
        {"r": {"n": [{"ip": "a"}]}},
        {"r": {"n": [{"ip": "b"}]}},
        ["$.r.n[0]: no element matches {'ip': 'b'}"],
    ),
]


@pytest.mark.parametrize(("name", "actual", "expected", "problems"), CASES, ids=[c[0] for c in CASES])
def test_mismatches(name: str, actual: Any, expected: Any, problems: list[str]) -> None:
    assert mismatches(actual, expected) == problems


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)


def _strip_none(v: Any) -> Any:
    # None in an expectation means "absent", so a value compared with itself must not use it
    if isinstance(v, dict):
        return {k: _strip_none(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_strip_none(x) for x in v if x is not None and not (isinstance(x, dict) and "__exact_len__" in x)]
    return v


@given(json_values)
def test_every_value_contains_itself(v: Any) -> None:
    v = _strip_none(v)
    assert mismatches(v, v) == []


def test_eventually_returns_when_matched() -> None:
    values = iter([{"s": "Idle"}, {"s": "Active"}, {"s": "Established"}])
    waited = eventually(
        "session up", budget=5, probe=lambda: next(values), expect={"s": "Established"}, interval_s=0.001
    )
    assert waited.polls == 3


def test_eventually_names_the_budget() -> None:
    with pytest.raises(BudgetExceeded, match=r"'session up' did not hold within its budget of 0.05 s"):
        eventually("session up", budget=0.05, probe=lambda: {"s": "Idle"}, expect={"s": "Established"}, interval_s=0.01)
