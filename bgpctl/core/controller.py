"""The controller's state and one evaluation step: samples -> stats -> decide -> plan. No I/O.

This is the one place the daemon's decisions live (docs/design.md, "Data flow"):
per-path sample windows, the health decide() keeps between calls, and the last plan (what the
speaker was asked to hold). The async daemon only feeds samples in, calls :meth:`Controller.step`
and hands the resulting plan to the speaker, so the loop itself is testable without a network.

When a step plans:

* a path's health changed (decide's transitions), including the hard-failure fast path, which
  decide() applies in the very call that sees the N-th consecutive lost probe;
* the previous plan held changes back (rate limit): they are retried once per second;
* the first time any path is judged (before that, nothing is announced);
* a peer's negotiated ADD-PATH changed (:meth:`Controller.negotiated`; the daemon passes what the speaker
  read from the sessions' OPENs, a replay what the recording says);
* the runtime overrides changed (:meth:`Controller.set_overrides`: a control verb, or a recording's
  ``overrides`` line) or one of them expired (the step whose ``now`` reaches its ``expires`` drops it and
  reports it in :attr:`Step.expired`; an expired drain leaves the holds of its return after the rise
  rules, :func:`bgpctl.core.overrides.returning_holds`). plan() gets the policy's overrides plus the runtime ones
  (:func:`bgpctl.core.overrides.merged`), so both go through the same rules.


A TGW session's state is an input too (:meth:`Controller.session`, fed like ``negotiated``): while the
session of a path's peer is down, decide() holds that path DOWN (its rule 0), and the change of health
plans as any other transition does. Start-up: a session counts as down only after it was seen up once
since the controller was made (or since its state was last unknown: a restarted ExaBGP). Before that
(sessions come up after the probes start, and a TGW that is not up yet has nothing announced to it)
the probes alone judge the path, so a slow first session does not take a region away at start. A
session that never comes up is the speaker's session watch's alarm, not the path's.

Outside signals are inputs the same way (:meth:`Controller.signal`, fed by the daemon from
:mod:`bgpctl.signals`, by a replay from the recording's ``signal`` lines): per signal, the marks it says
now (none: cleared, or stale, or broken: the daemon decides what counts). decide()'s rule 0b makes a
marked path as bad as its mark; the change of health plans as any other transition does, and plan()'s
fail-static keeps the routes when a mark leaves a service no announceable path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bgpctl.core import ha
from bgpctl.core.decide import decide, path_keys, signal_marks
from bgpctl.core.overrides import Runtime, expire, merged
from bgpctl.core.plan import AddPathState, plan
from bgpctl.core.reload import PolicyDiff, diff
from bgpctl.core.stats import PathWindow
from bgpctl.core.types import Health, PathHealth, PathKey, PathStats, Plan, Sample, SignalMark, Transition
from bgpctl.policy.model import Family, Overrides, Policy

RETRY_DEFERRED_S = 1.0


@dataclass(frozen=True, slots=True)
class Step:
    """What one evaluation found: the health changes and, when it planned, the new plan."""

    at: float
    transitions: tuple[Transition, ...]
    plan: Plan | None  # None: nothing to plan this time
    stats: Mapping[PathKey, PathStats] = field(default_factory=dict)
    expired: Runtime = ()  # runtime overrides that expired at this step


def _window(policy: Policy, key: PathKey) -> PathWindow:
    """A path's window. Replies are read once per probe slot, so an answer is known one interval after
    the probe at the earliest: the adaptive RTO never goes below 1.5 intervals (nor above the timeout)."""
    service = policy.services[key.service]
    interval_s, timeout_s = service.probe.interval_ms / 1000.0, service.probe.timeout_ms / 1000.0
    return PathWindow(
        policy.sla_classes[service.sla].hysteresis.window_s,
        rto_floor_s=min(1.5 * interval_s, timeout_s),
        rto_cap_s=timeout_s,
    )


def _carried(health: Mapping[PathKey, PathHealth], keys: list[PathKey]) -> dict[PathKey, PathHealth]:
    """The health a reload keeps: each path's as it is; a new path unknown."""
    return {k: health.get(k, PathHealth()) for k in keys}


class Controller:
    """Holds the windows, the health and the last plan of one policy."""

    def __init__(self, policy: Policy, add_path: AddPathState | None = None) -> None:
        """``add_path``: the families each peer negotiated ADD-PATH send in; ``{}`` (the daemon's start:
        nothing negotiated yet) or None (as the policy configures: replay of an old recording)."""
        self.policy = policy
        self.keys = path_keys(policy)
        self.windows: dict[PathKey, PathWindow] = {k: _window(policy, k) for k in self.keys}
        self.health: dict[PathKey, PathHealth] = {k: PathHealth() for k in self.keys}
        self.last_plan: Plan | None = None
        self._last_plan_at = 0.0
        self.add_path: dict[str, frozenset[Family]] | None = None if add_path is None else dict(add_path)
        self._replan = False
        self.runtime: Runtime = ()
        self._seen_up: set[str] = set()  # peers whose session was up at least once
        self.sessions_down: frozenset[str] = frozenset()  # of those, the peers whose session is not up now
        self.signals: dict[str, tuple[SignalMark, ...]] = {}  # signal name -> the marks it says now
        self._marks: dict[tuple[str, str], SignalMark] = {}  # (region, path) -> the mark that counts
        self.held_back = False  # HA: this controller hands over (bgpctl.core.ha.held_back)

    def set_overrides(self, runtime: Runtime) -> bool:
        """The runtime overrides in force from now on; True if they differ (the next step plans again)."""
        if tuple(runtime) == self.runtime:
            return False
        self.runtime = tuple(runtime)
        self._replan = True
        return True

    def session(self, peer: str, up: bool | None) -> bool:
        """What a peer's BGP session is now: up (True), not up (False: down, or connecting again after
        it was up), or unknown (None: the speaker has heard nothing of it yet, e.g. a restarted ExaBGP).
        A peer counts as down only while False after it was seen up: unknown forgets that it was (the
        start-up rule again). True if what the controller holds changed (the next step judges it)."""
        seen, down = set(self._seen_up), set(self.sessions_down)
        if up is True:
            seen.add(peer)
            down.discard(peer)
        elif up is None:
            seen.discard(peer)
            down.discard(peer)
        elif peer in seen:
            down.add(peer)
        if seen == self._seen_up and down == self.sessions_down:
            return False
        self._seen_up, self.sessions_down = seen, frozenset(down)
        return True

    def signal(self, name: str, marks: tuple[SignalMark, ...]) -> bool:
        """What the outside signal ``name`` says from now on: its marks, or none (cleared, stale or broken:
        it says nothing). True if that changed (the next step judges it)."""
        marks = tuple(marks)
        if self.signals.get(name, ()) == marks:
            return False
        if marks:
            self.signals[name] = marks
        else:
            self.signals.pop(name, None)
        self._marks = signal_marks(self.policy, (m for n in sorted(self.signals) for m in self.signals[n]))
        return True

    def negotiated(self, add_path: AddPathState) -> bool:
        """A new view of what the sessions negotiated; True if it differs (the next step plans again)."""
        new = {peer: fams for peer, fams in add_path.items() if fams}
        old = None if self.add_path is None else {peer: fams for peer, fams in self.add_path.items() if fams}
        if new == old:
            return False
        self.add_path = new
        self._replan = True
        return True

    def sent(self, key: PathKey, seq: int, at: float) -> None:
        window = self.windows.get(key)
        if window is not None:
            window.sent(seq, at)

    def add(self, key: PathKey, sample: Sample) -> None:
        window = self.windows.get(key)
        if window is not None:  # a key the policy does not measure is no business of ours
            window.add(sample)

    def stats(self, now: float) -> dict[PathKey, PathStats]:
        return {k: w.stats(now) for k, w in self.windows.items()}

    def preview(self, new: Policy, now: float) -> Plan:
        """The plan the next step would make under ``new`` (``bgpctl reload --dry-run``); changes nothing.

        The same plan() as :meth:`step`, over the health the reload would carry (:meth:`reload`), the last
        plan (so make-before-break and the rate limit's minute apply) and the overrides in force."""
        health = _carried(self.health, path_keys(new))
        held = ha.held_back(new, health, self.held_back)
        ov = merged(new.overrides, self.runtime)
        return plan(new, health, self.last_plan, now, ov, add_path=self.add_path, held_back=held)

    def reload(self, new: Policy) -> PolicyDiff:
        """Run ``new`` from now on; the next step plans again. The caller checked it needs no restart
        (:func:`bgpctl.core.reload.restart_needed`) and names no missing override target.

        Paths in both policies keep their health; those whose probe or window changed get a fresh window
        (their old samples say nothing about the new probe), the others keep theirs. New paths start
        unknown (not announced until judged), removed ones are forgotten. The last plan, the rate limit's
        minute, the sessions and what was negotiated stay: plan() diffs the new RIB against what the
        speaker holds."""
        changes = diff(self.policy, new)
        fresh = set(changes.added) | set(changes.reprobed)
        keys = path_keys(new)
        self.windows = {k: _window(new, k) if k in fresh else self.windows[k] for k in keys}
        self.health = _carried(self.health, keys)
        self.policy, self.keys = new, keys
        # the outside signals' marks, against the new paths (a signal that names a region marks its new paths too)
        self._marks = signal_marks(new, (m for n in sorted(self.signals) for m in self.signals[n]))
        self._replan = True
        return changes

    def step(self, now: float) -> Step:
        kept, expired = expire(self.runtime, now, self.policy)
        if expired:
            self.runtime, self._replan = kept, True
        stats = self.stats(now)
        decision = decide(self.policy, stats, self.health, now, self.sessions_down, signals=self._marks)
        self.health = dict(decision.health)
        held = ha.held_back(self.policy, self.health, self.held_back)
        if held != self.held_back:
            self.held_back, self._replan = held, True
        judged = any(h.health is not Health.UNKNOWN for h in self.health.values())
        retry = (
            self.last_plan is not None
            and bool(self.last_plan.deferred)
            and now - self._last_plan_at >= RETRY_DEFERRED_S
        )
        first = self.last_plan is None and judged
        replan = self._replan and self.last_plan is not None
        if not (decision.transitions or retry or first or replan):
            return Step(now, decision.transitions, None, stats, expired)
        self._replan = False
        new_plan = plan(
            self.policy,
            self.health,
            self.last_plan,
            now,
            self.overrides,
            add_path=self.add_path,
            held_back=self.held_back,
        )
        self.last_plan = new_plan
        self._last_plan_at = now
        return Step(now, decision.transitions, new_plan, stats, expired)

    @property
    def overrides(self) -> Overrides:
        """The overrides plan() applies: the policy's and the runtime ones."""
        return merged(self.policy.overrides, self.runtime)
