"""Polling with named budgets: wait until a condition holds, or fail saying what was last seen.

    eventually("edge has both TGW routes", budget_s=20, probe=lambda: lab.vtysh_json(...),
               expect={"203.0.113.0/26": [...]})

Never sleep-and-hope: poll structured state until it matches or the named budget runs out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bgpctl.errors import BgpctlError
from bgpctl.lab.jsonmatch import mismatches


class BudgetExceeded(BgpctlError):
    """A named wait budget ran out before the condition held."""


@dataclass(frozen=True)
class Waited:
    name: str
    elapsed_s: float
    polls: int
    value: Any


def eventually(name: str, *, budget_s: float, probe: Callable[[], Any], expect: Any = None,
               check: Callable[[Any], list[str]] | None = None, interval_s: float = 0.05) -> Waited:
    """Call ``probe`` until its value matches ``expect`` (JSON subset) or ``check`` returns no problems.

    Exceptions raised by ``probe`` count as "not yet" (a daemon may not answer while starting) and are
    reported if the budget runs out.
    """
    if (expect is None) == (check is None):
        raise ValueError("give exactly one of expect= or check=")
    start = time.monotonic()
    deadline = start + budget_s
    polls = 0
    last_problems: list[str] = []
    last_value: Any = None
    while True:
        polls += 1
        try:
            last_value = probe()
            last_problems = check(last_value) if check is not None else mismatches(last_value, expect)
        except Exception as e:  # reported below if it persists
            last_problems = [f"probe raised {type(e).__name__}: {e}"]
        now = time.monotonic()
        if not last_problems:
            return Waited(name, now - start, polls, last_value)
        if now >= deadline:
            shown = "\n  ".join(last_problems[:12])
            raise BudgetExceeded(f"'{name}' did not hold within its budget of {budget_s:g} s "
                                 f"({polls} polls); last problems:\n  {shown}")
        time.sleep(min(interval_s, max(0.0, deadline - now)))
