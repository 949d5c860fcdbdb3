"""Replay a recording through the daemon's own controller: what would this policy have done?

The recording (:mod:`bgpctl.core.recording`) is fed to :class:`~bgpctl.core.controller.Controller`, the
same class the daemon runs (windows with the adaptive RTO, decide(), plan(), the deferred-change retry),
on the recording's clock, without waiting. Two ways, chosen by the recording:

* **Exact** (a daemon recording: its header says it has step lines). Every ``sent``, sample,
  ``step``, ``negotiated``, ``session`` and ``signal`` line is fed in file order, as the daemon fed them, so the
  replay makes the daemon's decisions at the daemon's times (with the recorded policy; with another
  policy, the decisions that policy would have made on the same measurements at the same evaluation
  times).
* **Fixed tick** (samples only: version 1, or ``bgpctl probe --record``). A probe is known to have been
  sent at its ``sent`` time; it settles at ``received`` when answered within the service's
  ``probe.timeout_ms``, else at ``sent + timeout`` as lost (a late answer counts as lost, as
  ProbeSettings says). The controller steps on a fixed tick (``tick_s``; default: the policy's
  smallest probe interval), and at each tick first learns of every probe sent and every sample
  settled by then. Answers are known the moment they arrive, where the daemon reads them once per
  probe slot: decisions can come up to one probe interval earlier than the daemon's.

Each step that changes a health or a route yields one :class:`TimelineEvent`: the time, the health
transitions (with decide's reasons) and the route changes, deferrals and notes.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from bgpctl.core.controller import Controller, Step
from bgpctl.core.decide import path_keys
from bgpctl.core.plan import RATE_WINDOW_S
from bgpctl.core.recording import (
    Event,
    Header,
    Negotiated,
    OverridesSet,
    RecordingError,
    Sent,
    Session,
    Settled,
    Signalled,
    Stepped,
    read_recording,
)
from bgpctl.core.series import SeriesBuilder
from bgpctl.core.types import Health, PathKey, Plan, Sample, Transition
from bgpctl.policy.model import Policy
from bgpctl.render import change_text, change_to_dict, transition_to_dict

__all__ = ["ReplayError", "ReplaySummary", "TimelineEvent", "read_recording", "replay"]


class ReplayError(RecordingError):
    """A recording could not be replayed (bad line, unknown path, ...)."""


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One controller step of the replay that changed a health or a route."""

    at: float  # the recording's clock
    t: float  # seconds since the recording's first event
    transitions: tuple[Transition, ...]
    plan: Plan


@dataclass(slots=True)
class ReplaySummary:
    """Totals of a replay, for the last line of the timeline."""

    samples: int = 0
    ticks: int = 0
    plans: int = 0
    transitions: int = 0
    route_changes: int = 0
    deferred_max: int = 0
    start: float = 0.0
    end: float = 0.0
    exact: bool = False  # replayed step by step as the daemon evaluated
    final_health: dict[PathKey, Health] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    series: SeriesBuilder[PathKey] = field(default_factory=SeriesBuilder)  # per path: RTT, loss, health over time


REORDER_S = 5.0
"""Fixed-tick mode: how far back in ``sent`` a line may be from the latest line read before it (probers
writing into one file interleave their lines a little). Further back is refused: the replay reads
lazily and has decided those times already."""


def quiet_after(policy: Policy) -> float:
    """Fixed-tick mode: seconds after the last probe event by which every timer of the controller has run out.

    Windows empty (``window_s``), probes time out, hold-down, rise and dwell times pass, and the rate limit's
    minute ends: with no input, later steps change nothing. Twice the sum of the largest of each, to be safe
    against chains of them. A gap in the recording longer than this is stepped up to this point and then
    skipped to the next probe, so a recording with a day-long gap does not take a day of ticks.
    """
    hyst = [c.hysteresis for c in policy.sla_classes.values()]
    longest = (
        max(h.window_s for h in hyst)
        + max(h.hold_down_s for h in hyst)
        + max(h.rise_s for h in hyst)
        + max(h.min_dwell_s for h in hyst)
        + max(s.probe.timeout_ms for s in policy.services.values()) / 1000.0
        + RATE_WINDOW_S
    )
    return 2 * longest


def default_tick(policy: Policy) -> float:
    """The smallest probe interval of the policy, in seconds."""
    return min(s.probe.interval_ms for s in policy.services.values()) / 1000.0


def replay(
    policy: Policy,
    recording: Iterable[Event],
    tick_s: float | None = None,
    summary: ReplaySummary | None = None,
    *,
    skip_quiet: bool = True,
) -> Iterator[TimelineEvent]:
    """Run ``recording`` through the controller; yield one event per step that changed something.

    ``summary``, when given, is filled in as the replay goes (complete once the iterator is exhausted).
    ``skip_quiet``: in fixed-tick mode, skip the ticks of a long gap once nothing can change any more
    (:func:`quiet_after`); off, every tick is stepped (the tests compare the two).
    """
    tick = default_tick(policy) if tick_s is None else tick_s
    if not tick > 0 or math.isinf(tick):
        raise ReplayError(f"the tick must be a positive number of seconds, not {tick!r}")
    total = summary if summary is not None else ReplaySummary()
    source = iter(recording)
    first = next(source, None)
    if first is None:
        return
    ctl = Controller(policy, {} if isinstance(first, Header) and first.negotiated else None)
    if isinstance(first, Header):
        total.notes.extend(_schedule_notes(policy, first))
        total.exact = first.steps
    else:
        source = _chain(first, source)
    total.series = SeriesBuilder(initial=dict.fromkeys(path_keys(policy), Health.UNKNOWN.value))
    source = _observed(source, total.series)
    quiet = quiet_after(policy) if skip_quiet else math.inf
    steps = _exact(ctl, source, total) if total.exact else _ticked(ctl, policy, source, tick, total, quiet=quiet)
    for step in steps:
        total.ticks += 1
        total.end = step.at
        if step.plan is None:
            continue
        total.plans += 1
        total.transitions += len(step.transitions)
        for tr in step.transitions:
            total.series.health(tr.key, step.at, tr.new.value)
        total.route_changes += len(step.plan.changes)
        total.deferred_max = max(total.deferred_max, len(step.plan.deferred))
        if step.transitions or step.plan.changes:  # a retry that sent nothing is not news
            yield TimelineEvent(step.at, step.at - total.start, step.transitions, step.plan)
    total.final_health = {key: ctl.health[key].health for key in path_keys(policy)}


def _chain(first: Event, rest: Iterator[Event]) -> Iterator[Event]:
    yield first
    yield from rest


def _observed(source: Iterator[Event], series: SeriesBuilder[PathKey]) -> Iterator[Event]:
    """``source`` unchanged; each settled probe also goes into ``series``."""
    for ev in source:
        if isinstance(ev, Settled):
            series.add(ev.key, ev.sample)
        yield ev


def _schedule_notes(policy: Policy, header: Header) -> list[str]:
    notes = []
    for key, sched in header.paths.items():
        service = policy.services.get(key.service)
        if service is None:
            continue
        interval, timeout = service.probe.interval_ms / 1000.0, service.probe.timeout_ms / 1000.0
        if not (math.isclose(interval, sched.interval_s) and math.isclose(timeout, sched.timeout_s)):
            notes.append(
                f"{key} was recorded with interval {sched.interval_s * 1000:g} ms / timeout "
                f"{sched.timeout_s * 1000:g} ms; the policy says {interval * 1000:g} / {timeout * 1000:g} ms: "
                "the replay judges the recorded probes"
            )
    return notes


def _known(ctl: Controller, key: PathKey) -> None:
    if key not in ctl.windows:
        raise ReplayError(
            f"the recording has samples of {key}, which the policy does not measure; "
            f"its paths are {', '.join(str(k) for k in sorted(ctl.windows))}"
        )


def _exact(ctl: Controller, source: Iterator[Event], total: ReplaySummary) -> Iterator[Step]:
    """Feed every line in order, as the daemon did; step where it stepped."""
    started = False
    for ev in source:
        if isinstance(ev, Stepped):
            if not started:
                total.start, started = ev.at, True
            yield ctl.step(ev.at)
        elif isinstance(ev, Settled):
            _known(ctl, ev.key)
            ctl.add(ev.key, ev.sample)
            total.samples += 1
        elif isinstance(ev, Sent):
            _known(ctl, ev.key)
            ctl.sent(ev.key, ev.seq, ev.at)
        elif isinstance(ev, Negotiated):
            ctl.negotiated(ev.add_path)
        elif isinstance(ev, OverridesSet):
            ctl.set_overrides(ev.runtime)
        elif isinstance(ev, Session):
            ctl.session(ev.peer, ev.up)
        elif isinstance(ev, Signalled):
            ctl.signal(ev.signal, ev.marks)
        else:
            raise ReplayError(
                "a second header in the recording: replay one daemon run at a time (split the file at the header lines)"
            )


class _Ticker:
    """Fixed-tick mode: reads samples lazily (up to :data:`REORDER_S` out of ``sent`` order) and hands the
    controller, up to a time, every probe sent and every sample settled by then."""

    def __init__(self, ctl: Controller, policy: Policy, source: Iterator[Event], total: ReplaySummary) -> None:
        self.ctl, self.source, self.total = ctl, source, total
        self.timeouts = {name: s.probe.timeout_ms / 1000.0 for name, s in policy.services.items()}
        self.settles: list[tuple[float, int, Settled]] = []
        self.sends: list[tuple[float, int, PathKey, int]] = []
        self.pending: Settled | None = None
        self.max_sent = -math.inf
        self.last_fed = -math.inf
        self.n = 0

    @property
    def done(self) -> bool:
        return self.pending is None and not self.settles and not self.sends

    def _next(self) -> Settled | None:
        r = _next_sample(self.source)
        if r is not None:
            _known(self.ctl, r.key)
            s = r.sample
            if s.sent < self.max_sent - REORDER_S:
                raise ReplayError(
                    f"probe {r.key} seq {s.seq} was sent at {s.sent}, more than "
                    f"{REORDER_S:g} s before a probe on an earlier line ({self.max_sent}): sort the "
                    "recording by 'sent' first (for example: jq -c -s 'sort_by(.sent)[]')"
                )
            self.max_sent = max(self.max_sent, s.sent)
            self.total.samples += 1
        return r

    def read_until(self, t: float) -> None:
        """Queue every sample sent up to ``t`` plus the reorder margin (the first line at least)."""
        while True:
            if self.pending is None:
                self.pending = self._next()
                if self.pending is None:
                    return
            if self.pending.sample.sent > t + REORDER_S:
                return
            r, self.pending = self.pending, None
            s, timeout = r.sample, self.timeouts[r.key.service]
            self.n += 1
            heapq.heappush(self.sends, (s.sent, self.n, r.key, s.seq))
            if s.received is None or s.received - s.sent > timeout:  # late = lost, known at the timeout
                heapq.heappush(self.settles, (s.sent + timeout, self.n, Settled(r.key, Sample(s.seq, s.sent, None))))
            else:
                heapq.heappush(self.settles, (s.received, self.n, r))

    def feed(self, now: float) -> None:
        self.read_until(now)
        while self.sends and self.sends[0][0] <= now:
            sent, _, key, seq = heapq.heappop(self.sends)
            self.ctl.sent(key, seq, sent)
            self.last_fed = max(self.last_fed, sent)
        while self.settles and self.settles[0][0] <= now:
            at, _, ev = heapq.heappop(self.settles)
            self.ctl.add(ev.key, ev.sample)
            self.last_fed = max(self.last_fed, at)

    def next_time(self) -> float | None:
        """When the next probe is sent or settles (None when the recording is done)."""
        times = [q[0][0] for q in (self.sends, self.settles) if q]
        if self.pending is not None:
            times.append(self.pending.sample.sent)
        return min(times) if times else None


def _ticked(
    ctl: Controller, policy: Policy, source: Iterator[Event], tick: float, total: ReplaySummary, *, quiet: float
) -> Iterator[Step]:
    """Step on a fixed tick; before each step, every probe sent and every sample settled by then.

    In a gap of the recording, once ``quiet`` seconds have passed since the last probe event, the ticks up
    to the next one are skipped (nothing can change: see :func:`quiet_after`)."""
    feed = _Ticker(ctl, policy, source, total)
    feed.read_until(-math.inf)  # the first line only
    if feed.pending is None:
        return
    feed.read_until(feed.pending.sample.sent)  # and what a reordered file sent before it
    total.start = feed.sends[0][0]
    k = 0
    while True:
        now = total.start + k * tick
        feed.feed(now)
        yield ctl.step(now)
        if feed.done:
            break
        k += 1
        nxt = feed.next_time()
        if nxt is not None and total.start + k * tick >= feed.last_fed + quiet:
            k = max(k, math.floor((nxt - total.start) / tick))


def _next_sample(source: Iterator[Event]) -> Settled | None:
    for ev in source:
        if isinstance(ev, Settled):
            return ev
        if isinstance(ev, Header):
            raise ReplayError("a second header in the recording: replay one run at a time")
    return None


# --------------------------------------------------------------------------------------------
# output


def event_to_dict(event: TimelineEvent) -> dict[str, object]:
    return {
        "at": event.at,
        "t": round(event.t, 6),
        "transitions": [transition_to_dict(tr) for tr in event.transitions],
        "changes": [change_to_dict(c) for c in event.plan.changes],
        "deferred": [change_to_dict(c) for c in event.plan.deferred],
        "notes": list(event.plan.notes),
    }


def summary_to_dict(s: ReplaySummary) -> dict[str, object]:
    return {
        "summary": {
            "samples": s.samples,
            "ticks": s.ticks,
            "plans": s.plans,
            "transitions": s.transitions,
            "route_changes": s.route_changes,
            "deferred_max": s.deferred_max,
            "duration_s": round(s.end - s.start, 6),
            "exact": s.exact,
            "notes": list(s.notes),
            "final_health": {str(k): h.value for k, h in s.final_health.items()},
        }
    }


def series_to_dicts(s: ReplaySummary) -> list[dict[str, object]]:
    """One ``{"series": ...}`` object per path (:mod:`bgpctl.core.series`), times since the replay's start."""
    return [{"series": d} for d in s.series.to_dicts(s.start, s.start, s.end)]


def render_event(event: TimelineEvent, shown_notes: Iterable[str] = ()) -> list[str]:
    """An event as lines of text for an engineer: health changes first, then the route changes.

    Notes already in ``shown_notes`` (the previous event's) are left out: the text says what is new.
    """
    lines: list[str] = []
    stamp = f"{event.t:10.3f}s"
    for tr in event.transitions:
        why = "; ".join(r.text for r in tr.reasons)
        lines.append(f"{stamp}  {tr.key}  {tr.old.value} -> {tr.new.value}" + (f"  ({why})" if why else ""))
        stamp = " " * len(stamp)
    if not event.transitions:
        lines.append(f"{stamp}  (retrying deferred changes)")
    pad = " " * (len(stamp) + 2)
    for c in event.plan.changes:
        lines.append(f"{pad}{change_text(c)}  [{c.why}]")
    for c in event.plan.deferred:
        lines.append(f"{pad}deferred: {change_text(c)}")
    seen = set(shown_notes)
    lines.extend(f"{pad}note: {n}" for n in event.plan.notes if n not in seen)
    return lines


def render_summary(s: ReplaySummary) -> list[str]:
    lines = [
        f"replayed {s.samples} samples over {s.end - s.start:.1f} s in {s.ticks} ticks: "
        f"{s.transitions} health change(s), {s.plans} plan(s), {s.route_changes} route change(s)"
        + (f", up to {s.deferred_max} deferred by the rate limit" if s.deferred_max else "")
    ]
    lines.extend(f"  final: {k}  {h.value}" for k, h in s.final_health.items())
    return lines
