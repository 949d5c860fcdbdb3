"""JSON subset matching, in the spirit of FRR topotests' ``json_cmp``.

``mismatches(actual, expected)`` lists every place where ``actual`` does not contain ``expected``:

* a dict matches when every expected key is present and matches (extra keys are fine);
  the expected value ``None`` means "this key must be absent";
* a list matches when every expected element matches some distinct actual element, in any order;
  ``{"__exact_len__": N}`` as the first element of an expected list also requires exactly N elements;
* scalars match when equal.

An empty result means "matches". Each entry is a readable path + reason, for failure messages.
"""

from __future__ import annotations

from typing import Any

EXACT_LEN = "__exact_len__"


def mismatches(actual: Any, expected: Any, path: str = "$") -> list[str]:
    if isinstance(expected, dict):
        return _dict(actual, expected, path)
    if isinstance(expected, list):
        return _list(actual, expected, path)
    if actual != expected:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []


def matches(actual: Any, expected: Any) -> bool:
    return not mismatches(actual, expected)


def _dict(actual: Any, expected: dict[str, Any], path: str) -> list[str]:
    if not isinstance(actual, dict):
        return [f"{path}: expected an object, got {type(actual).__name__}"]
    out: list[str] = []
    for key, want in expected.items():
        where = f"{path}.{key}"
        if want is None:
            if key in actual:
                out.append(f"{where}: expected absent, got {actual[key]!r}")
            continue
        if key not in actual:
            out.append(f"{where}: missing")
            continue
        out.extend(mismatches(actual[key], want, where))
    return out


def _list(actual: Any, expected: list[Any], path: str) -> list[str]:
    if not isinstance(actual, list):
        return [f"{path}: expected a list, got {type(actual).__name__}"]
    items = list(expected)
    out: list[str] = []
    if items and isinstance(items[0], dict) and set(items[0]) == {EXACT_LEN}:
        want_len = items.pop(0)[EXACT_LEN]
        if len(actual) != want_len:
            out.append(f"{path}: expected {want_len} elements, got {len(actual)}")
    free = list(range(len(actual)))
    for i, want in enumerate(items):
        hit = next((j for j in free if not mismatches(actual[j], want)), None)
        if hit is None:
            out.append(f"{path}[{i}]: no element matches {want!r}")
        else:
            free.remove(hit)
    return out
