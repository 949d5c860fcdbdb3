"""Replay recorded probe samples through stats, decide() and plan(): what would this policy have done?

Input: JSON lines, one probe each: ``{"service", "region", "path", "seq", "sent", "received"}`` with
``sent``/``received`` in seconds on one monotonic clock and ``received: null`` for a probe that
was never answered.

How the replay runs (a controller's evaluation loop, on the recording's clock, without waiting):

* **Settling.** A probe is known at its settle time: ``received`` when it was answered within the
  service's ``probe.timeout_ms``; ``sent + timeout`` when it was lost, or answered later than the
  timeout (then it counts as lost, as ProbeSettings says).
* **Fixed tick.** decide() runs on a fixed tick (``tick_s``; default: the policy's smallest probe
  interval, 20 ms in the lab policy), starting at the first settle time and ending at the first
  tick at or after the last one. At each tick every sample settled by then goes into its path's
  :class:`~bgpctl.core.stats.PathWindow` (window = the SLA class's ``hysteresis.window_s``), then
  ``decide(policy, stats(now), previous health, now)`` runs. A tick, not every sample: a sample
  changes nothing until the next evaluation anyway, a tick as fine as the fastest probe loses
  nothing, and it keeps a 10-minute recording at 50 samples/s on 4 paths at ~30 000 evaluations
  instead of 120 000. ``--tick`` makes it coarser (faster) for week-long recordings.
* **Only recorded services are judged.** decide() judges the paths of the services the recording
  has samples of (so far); the others have no data and would only stay UNKNOWN, so plan() sees
  them UNKNOWN without decide() spending every tick on them.
* **Plan.** plan() runs when a health changed, and again on later ticks while changes are still
  deferred by the rate limit (so the timeline shows when they finally go out). The overrides
  are the policy's own.

Each plan() call that follows a health change, or that sends a deferred change, yields one
:class:`TimelineEvent`: the time, the health transitions (with decide's reasons) and the route
changes, deferrals and notes.
"""

from __future__ import annotations

import heapq
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from bgpctl.core.decide import decide, path_keys
from bgpctl.core.plan import plan
from bgpctl.core.stats import PathWindow
from bgpctl.core.types import Health, PathHealth, PathKey, PathStats, Plan, RouteAttrs, Sample, Transition
from bgpctl.errors import RefusedInput
from bgpctl.policy.model import Policy
from bgpctl.render import change_to_dict


class ReplayError(RefusedInput):
    """A recording could not be replayed (bad line, unknown path, ...)."""


@dataclass(frozen=True, slots=True)
class RecordedSample:
    """One line of a recording: which path, and the probe."""

    key: PathKey
    sample: Sample


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One plan() call of the replay: why it ran and what it changed."""

    at: float  # the recording's clock
    t: float  # seconds since the recording's first settled sample
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
    final_health: dict[PathKey, Health] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# reading recordings


_FIELDS = ("service", "region", "path", "seq", "sent", "received")


def _number(value: object, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReplayError(f"{where}: '{name}' must be a finite number of seconds, got {value!r}")
    return float(value)


def parse_line(line: str, where: str) -> RecordedSample:
    """One JSONL line -> a sample; ReplayError naming ``where`` (file:line) when it is malformed."""
    return _Parser().parse(line, where, None)


class _Parser:
    """Parses lines; the common, well-formed line takes a fast path, anything else the checks below."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, str], PathKey] = {}

    def parse(self, line: str, name: str, lineno: int | None) -> RecordedSample:
        """``name`` and ``lineno`` say where the line is, for messages (``name`` alone when None)."""
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ReplayError(f"{_where(name, lineno)}: not JSON ({e.msg}); each line must be one object like "
                              '{"service": "media", "region": "use1", "path": "interconnect", "seq": 1, '
                              '"sent": 0.0, "received": 0.012}') from None
        if type(obj) is dict:
            service, region, path = obj.get("service"), obj.get("region"), obj.get("path")
            seq, sent, received = obj.get("seq"), obj.get("sent"), obj.get("received")
            if (isinstance(service, str) and isinstance(region, str) and isinstance(path, str)
                    and type(seq) is int and (type(sent) is float or type(sent) is int) and math.isfinite(sent)
                    and (received is None or ((type(received) is float or type(received) is int)
                                              and math.isfinite(received) and received >= sent))):
                names = (service, region, path)
                key = self._keys.get(names)
                if key is None:
                    key = self._keys[names] = PathKey(service, region, path)
                return RecordedSample(key, Sample(seq, float(sent), None if received is None else float(received)))
        return _checked(obj, _where(name, lineno))


def _where(name: str, lineno: int | None) -> str:
    return name if lineno is None else f"{name}:{lineno}"


_NUMBERS = (int, float)


def _checked(obj: object, where: str) -> RecordedSample:
    """The slow path: find what is wrong with a line and say so (or parse an unusual but valid one)."""
    if not isinstance(obj, dict):
        raise ReplayError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [f for f in _FIELDS if f not in obj]
    if missing:
        raise ReplayError(f"{where}: missing {', '.join(missing)} (a line needs {', '.join(_FIELDS)}; "
                          "received is null for a lost probe)")
    names = [obj["service"], obj["region"], obj["path"]]
    if not all(isinstance(n, str) for n in names):
        raise ReplayError(f"{where}: service, region and path must be strings")
    seq = obj["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise ReplayError(f"{where}: 'seq' must be an integer, got {seq!r}")
    sent = _number(obj["sent"], "sent", where)
    received = None if obj["received"] is None else _number(obj["received"], "received", where)
    if received is not None and received < sent:
        raise ReplayError(f"{where}: received {received} is before sent {sent}: both must come from one "
                          "monotonic clock")
    return RecordedSample(PathKey(*names), Sample(seq, sent, received))


def read_recording(lines: Iterable[str], name: str = "<recording>") -> Iterator[RecordedSample]:
    """The non-blank lines of a JSONL recording, parsed lazily (a week of probes need not fit in memory)."""
    parser = _Parser()
    for n, line in enumerate(lines, 1):
        if line.strip():
            yield parser.parse(line, name, n)


# --------------------------------------------------------------------------------------------
# the replay loop


REORDER_S = 5.0
"""How far back in ``sent`` a line may be from the latest line read before it (probers writing into one
file interleave their lines a little). Further back is refused: the replay reads lazily and has
decided those times already."""


def default_tick(policy: Policy) -> float:
    """The smallest probe interval of the policy, in seconds."""
    return min(s.probe.interval_ms for s in policy.services.values()) / 1000.0


class _Settler:
    """Reads the recording lazily and hands out samples in settle-time order, up to a given time."""

    def __init__(self, policy: Policy, recording: Iterable[RecordedSample]) -> None:
        self._known = set(path_keys(policy))
        self._timeouts = {name: s.probe.timeout_ms / 1000.0 for name, s in policy.services.items()}
        self._source = iter(recording)
        self._next: RecordedSample | None = None
        self._heap: list[tuple[float, int, RecordedSample]] = []
        self._max_sent = -math.inf
        self.read = 0
        self._fill_one()

    @property
    def empty(self) -> bool:
        return self._next is None and not self._heap

    def _fill_one(self) -> None:
        r = next(self._source, None)
        if r is not None:
            if r.key not in self._known:
                raise ReplayError(f"the recording has samples of {r.key}, which the policy does not measure; "
                                  f"its paths are {', '.join(str(k) for k in sorted(self._known))}")
            if r.sample.sent < self._max_sent - REORDER_S:
                raise ReplayError(f"probe {r.key} seq {r.sample.seq} was sent at {r.sample.sent}, more than "
                                  f"{REORDER_S:g} s before a probe on an earlier line ({self._max_sent}): sort the "
                                  "recording by 'sent' first (for example: jq -c -s 'sort_by(.sent)[]')")
            self._max_sent = max(self._max_sent, r.sample.sent)
            self.read += 1
        self._next = r

    def _read_until(self, sent: float) -> None:
        """Read every line sent up to ``sent`` (plus the reorder margin) into the heap."""
        while self._next is not None and self._next.sample.sent <= sent + REORDER_S:
            r = self._next
            timeout = self._timeouts[r.key.service]
            s = r.sample
            if s.received is None or s.received - s.sent > timeout:  # late = lost, known at the timeout
                lost = RecordedSample(r.key, Sample(s.seq, s.sent, None))
                heapq.heappush(self._heap, (s.sent + timeout, self.read, lost))
            else:
                heapq.heappush(self._heap, (s.received, self.read, r))
            self._fill_one()

    def first_settle(self) -> float | None:
        """The earliest settle time of the recording (None when it is empty)."""
        if self._next is None and not self._heap:
            return None
        if self._next is not None:  # nothing sent later than this can settle earlier
            self._read_until(self._next.sample.sent + max(self._timeouts.values()))
        return self._heap[0][0]

    def settled_by(self, now: float) -> Iterator[RecordedSample]:
        """Every sample settled at or before ``now``, in settle order. Samples sent after ``now``
        cannot have settled by then, so reading stops there (plus the reorder margin)."""
        self._read_until(now)
        while self._heap and self._heap[0][0] <= now:
            yield heapq.heappop(self._heap)[2]


def replay(policy: Policy, recording: Iterable[RecordedSample], tick_s: float | None = None,
           summary: ReplaySummary | None = None) -> Iterator[TimelineEvent]:
    """Run ``recording`` through windows, decide() and plan(); yield one event per plan() that matters.

    The recording is read lazily, in ``sent`` order (lines may be out of order by up to
    :data:`REORDER_S`). ``summary``, when given, is filled in as the replay goes (complete once the
    iterator is exhausted).
    """
    tick = default_tick(policy) if tick_s is None else tick_s
    if not tick > 0 or math.isinf(tick):
        raise ReplayError(f"the tick must be a positive number of seconds, not {tick!r}")
    total = summary if summary is not None else ReplaySummary()
    settler = _Settler(policy, recording)
    start = settler.first_settle()
    if start is None:
        return
    windows = {key: PathWindow(policy.sla_classes[policy.services[key.service].sla].hysteresis.window_s)
               for key in path_keys(policy)}
    total.start = total.end = start
    health: Mapping[PathKey, PathHealth] = {}
    previous: Plan | None = None
    # decide() judges only the services the recording has reached so far: the others have no data
    # and would stay UNKNOWN, at the cost of judging them on every tick (plan() sees them UNKNOWN)
    seen: set[str] = set()
    judged = policy.model_copy(update={"services": {}})
    k = 0
    while True:
        now = start + k * tick
        for r in settler.settled_by(now):
            if r.key.service not in seen:
                seen.add(r.key.service)
                judged = policy.model_copy(
                    update={"services": {n: s for n, s in policy.services.items() if n in seen}})
            windows[r.key].add(r.sample)
        stats: dict[PathKey, PathStats] = {key: w.stats(now) for key, w in windows.items() if len(w)}
        decision = decide(judged, stats, health, now)
        health = decision.health
        total.ticks += 1
        total.samples = settler.read
        if decision.transitions or (previous is not None and previous.deferred):
            previous = plan(policy, health, previous, now)
            total.plans += 1
            total.transitions += len(decision.transitions)
            total.route_changes += len(previous.changes)
            total.deferred_max = max(total.deferred_max, len(previous.deferred))
            if decision.transitions or previous.changes:  # a retry that sent nothing is not news
                yield TimelineEvent(now, now - start, decision.transitions, previous)
        total.end = now
        if settler.empty:
            break
        k += 1
    total.final_health = {key: health[key].health if key in health else Health.UNKNOWN
                          for key in path_keys(policy)}


# --------------------------------------------------------------------------------------------
# output


def event_to_dict(event: TimelineEvent) -> dict[str, object]:
    return {
        "at": event.at,
        "t": round(event.t, 6),
        "transitions": [{"path": str(tr.key), "old": tr.old.value, "new": tr.new.value,
                         "reasons": [r.text for r in tr.reasons]} for tr in event.transitions],
        "changes": [change_to_dict(c) for c in event.plan.changes],
        "deferred": [change_to_dict(c) for c in event.plan.deferred],
        "notes": list(event.plan.notes),
    }


def summary_to_dict(s: ReplaySummary) -> dict[str, object]:
    return {"summary": {"samples": s.samples, "ticks": s.ticks, "plans": s.plans, "transitions": s.transitions,
                        "route_changes": s.route_changes, "deferred_max": s.deferred_max,
                        "duration_s": round(s.end - s.start, 6),
                        "final_health": {str(k): h.value for k, h in s.final_health.items()}}}


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
        lines.append(f"{pad}{_change_text(c.kind.value, c.peer, c.key.prefix, c.key.path_id, c.attrs)}  [{c.why}]")
    for c in event.plan.deferred:
        lines.append(f"{pad}deferred: {_change_text(c.kind.value, c.peer, c.key.prefix, c.key.path_id, c.attrs)}")
    seen = set(shown_notes)
    lines.extend(f"{pad}note: {n}" for n in event.plan.notes if n not in seen)
    return lines


def _change_text(kind: str, peer: str, prefix: str, path_id: int, attrs: RouteAttrs | None) -> str:
    text = f"{peer:<10} {kind:<8} {prefix}" + (f" id {path_id}" if path_id else "")
    if attrs is not None:
        text += f" nh {attrs.next_hop} as-path {' '.join(map(str, attrs.as_path))}"
        if attrs.med is not None:
            text += f" med {attrs.med}"
        if attrs.communities:
            text += f" comm {','.join(attrs.communities)}"
        if attrs.large_communities:
            text += f" lcomm {','.join(attrs.large_communities)}"
    return text


def render_summary(s: ReplaySummary) -> list[str]:
    lines = [f"replayed {s.samples} samples over {s.end - s.start:.1f} s in {s.ticks} ticks: "
             f"{s.transitions} health change(s), {s.plans} plan(s), {s.route_changes} route change(s)"
             + (f", up to {s.deferred_max} deferred by the rate limit" if s.deferred_max else "")]
    lines.extend(f"  final: {k}  {h.value}" for k, h in s.final_health.items())
    return lines
