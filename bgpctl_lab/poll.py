"""The one polling helper: wait until a condition holds, or fail saying what was last seen.

    eventually("edge has both TGW routes", budget="route_converged",
               probe=lambda: lab.vtysh_json("edge", "show ip route json"), expect={"203.0.113.0/26": [...]})
    eventually("sessions up", budget=20, probe=lambda: all_established(lab))   # done when probe stops raising

Never sleep-and-hope: poll structured state until it holds or the budget runs out. A budget is a
number of seconds or the name of one of :data:`BUDGETS`, so a slow machine shows *which* expectation
was too tight, and the numbers live in one place. The runner, the drills, the lab tests and the
benchmarks all wait with this function.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bgpctl.errors import BgpctlError
from bgpctl_lab.jsonmatch import mismatches

T = TypeVar("T")

# Named budgets (seconds).
BUDGETS: dict[str, float] = {
    "lab_up": 20.0,  # `up` until every FRR<->FRR session is Established (issue: < 20 s)
    "lab_down": 10.0,  # `down` removes everything (issue: < 10 s)
    "bgp_established": 20.0,  # a (re)configured or restarted session comes back
    "bgp_down": 15.0,  # a session notices its peer is gone (hold time 9 s + margin)
    "admin_down": 5.0,  # a session is administratively shut (local, immediate)
    "route_converged": 10.0,  # a BGP change reaches the RIB / kernel of a neighbour
    "ipv6_warm": 10.0,  # a fresh IPv6 data path's neighbour discovery settles (first packets held or lost meanwhile)
    "process_exit": 5.0,  # a killed process is gone
    "process_start": 5.0,  # a spawned process runs inside its node's namespace (`ip netns exec` has switched)
    "frr_socket": 10.0,  # an FRR daemon's vty socket appears
    # tests that run pieces of bgpctl against their own topology (tests/topologies/*.clab.yml)
    "link_carrier": 10.0,  # both ends of a fresh veth report carrier (operstate UP)
    "probe_settle": 10.0,  # an in-process prober/reflector has counted what the test sent it
    "speaker_session": 30.0,  # ExaBGP start + OPEN exchange with FRR (FRR's connect retry 1 s)
    "speaker_converge": 10.0,  # a speaker change reaches FRR's BGP table
    "speaker_restart": 40.0,  # ExaBGP killed -> restarted, session up, routes refreshed
    "speaker_retry": 10.0,  # an errored speaker command retried after the fault is gone
    "supervisor_restart": 10.0,  # a supervised child restarts (or prints its first line)
    "exabgp_refuses_config": 60.0,  # ExaBGP starts, reads a config it rejects and exits (1-2 s idle)
    "delayer_settle": 10.0,  # the delayer's nft rules and queue appear/disappear
    "delayer_run_out": 11.0,  # a delayer started for 1 s ran out and removed its rules (1 s + delayer_settle)
}

# What a probe may raise while the condition does not hold yet: a failed check, a daemon that does not
# answer yet (bgpctl's own errors), a file or socket that is not there yet. Anything else is a bug in
# the probe and propagates at once.
NOT_YET: tuple[type[BaseException], ...] = (AssertionError, BgpctlError, OSError)


class BudgetExceeded(BgpctlError, AssertionError):
    """A wait budget ran out before the condition held (an AssertionError too: a failed test)."""


@dataclass(frozen=True)
class Waited(Generic[T]):
    name: str
    elapsed_s: float
    polls: int
    value: T


def budget_seconds(budget: str | float) -> tuple[str, float]:
    """(label, seconds) of a named or numeric budget."""
    if isinstance(budget, str):
        try:
            return budget, BUDGETS[budget]
        except KeyError:
            raise KeyError(f"unknown budget {budget!r}; known: {', '.join(BUDGETS)}") from None
    return f"{budget:g} s", float(budget)


def eventually(
    name: str,
    *,
    budget: str | float,
    probe: Callable[[], T],
    expect: Any = None,
    check: Callable[[T], list[str]] | None = None,
    interval_s: float = 0.05,
) -> Waited[T]:
    """Call ``probe`` until its value matches ``expect`` (JSON subset, see :mod:`bgpctl_lab.jsonmatch`),
    or ``check(value)`` returns no problems, or (neither given) ``probe`` returns without raising.

    Exceptions of :data:`NOT_YET` raised by ``probe`` count as "not yet" and are reported if the budget
    runs out; :class:`BudgetExceeded` names the wait, the budget, the number of polls and the last problems.
    """
    if expect is not None and check is not None:
        raise ValueError("give at most one of expect= or check=")
    label, seconds = budget_seconds(budget)
    if isinstance(budget, str):
        label = f"{label} ({seconds:g} s)"
    start = time.monotonic()
    deadline = start + seconds
    polls = 0
    while True:
        polls += 1
        try:
            value = probe()
            if check is not None:
                problems = check(value)
            elif expect is not None:
                problems = mismatches(value, expect)
            else:
                problems = []
        except NOT_YET as e:
            problems = [f"{type(e).__name__}: {e}"]
        now = time.monotonic()
        if not problems:
            return Waited(name, now - start, polls, value)
        if now >= deadline:
            shown = "\n  ".join(problems[:12])
            raise BudgetExceeded(
                f"'{name}' did not hold within its budget of {label} ({polls} polls); last problems:\n  {shown}"
            )
        time.sleep(min(interval_s, max(0.0, deadline - now)))


def until(cond: Callable[[], bool], seconds: float, *, interval_s: float = 0.01) -> bool:
    """Poll ``cond`` for up to ``seconds``; True as soon as it holds, False if it still does not at the
    end (for waits that escalate instead of failing, e.g. SIGTERM, then SIGKILL)."""
    deadline = time.monotonic() + seconds
    while not cond():
        now = time.monotonic()
        if now >= deadline:
            return False
        time.sleep(min(interval_s, deadline - now))
    return True
