"""decide(): the health of every measured path, with hysteresis. Pure: no I/O, no clock, no randomness.

``decide(policy, stats, previous, now)`` judges every key of :func:`path_keys` from its window's
:class:`~bgpctl.core.types.PathStats` (a missing entry means "no data") and the
:class:`~bgpctl.core.types.PathHealth` it had after the previous call. Same inputs, same output.

Rules, in the order they are applied to one path (``h`` = the SLA class's ``hysteresis``):

0. **TGW session down**: the path's peer (``regions.X.paths.Y.peer``; for an IPv6 measurement its ``peer_v6`` if
   set) is in ``sessions_down`` -> DOWN
   in this very call, from any state, whatever the probes say (they return over the interconnect, but
   the region's return traffic follows the prefixes announced to that TGW, and a down session
   announces none). Reason metric ``session``. Like rule 1 it (re)arms the hold-down at every call
   while the session is down, and the window is not judged meanwhile (no clean run starts). Once the
   session is back (the peer leaves ``sessions_down``) the path is judged by rules 1-7 from DOWN: it
   comes back only after ``rise_s`` of clean measurements, ``min_dwell_s`` in DOWN and the hold-down
   counted from the last call that saw the session down. Which sessions count as down is the caller's
   business: the controller counts a session only once it has been up (start-up: see
   :meth:`~bgpctl.core.controller.Controller.session`).
0b. **Outside signal** (``signals``: per (region, path), the worst :class:`~bgpctl.core.types.SignalMark`
   the caller was told of, see :func:`signal_marks`): the probes judge the path first (rules 1-7), then
   the signal makes it worse, never better. A DOWN mark -> DOWN in this very call (hold-down (re)armed at
   every call while the mark stands, like rule 0); a DEGRADED mark -> DEGRADED when the probes say UP or
   DEGRADED (a probe DOWN or SUSPECT stays as it is: already worse, or de-preferred the same way). While
   a mark stands no clean run starts, so once it is cleared the path returns only through rules 6-7
   (``rise_s`` of clean measurements, ``min_dwell_s``, and from DOWN the hold-down counted from the last
   call that saw the mark). A path the probes have not judged (UNKNOWN) stays UNKNOWN: a signal never
   judges a path without measurements. Reason metric ``signal`` (no value, no threshold; the text names
   the signal, its target and its own reason). A signal never withdraws the last region: a DOWN mark on
   the only announceable region leaves every path DOWN, and plan()'s fail-static keeps the routes (the
   one rule for "nothing left", see :mod:`bgpctl.core.plan`). Which signals count (fresh, not stale
   or broken) is the caller's business (:mod:`bgpctl.signals`).
1. **Hard failure, confirmed**: ``consecutive_lost >= h.down_after_lost`` (that many probes in a row
   *timed out*, in sequence order after the last answer) -> DOWN in this very call, from any state
   and however few samples the window holds. Reason metric ``consecutive_lost``. It (re)arms the
   hold-down: ``down_until = max(down_until, now + h.hold_down_s)``, i.e. the hold-down counts from
   the last time the path was *seen* dead.
1b. **Suspicion** (fast path): ``consecutive_lost + overdue >= h.down_after_lost``, where ``overdue``
   counts the probes after the last answer still unanswered past the window's adaptive RTO (see
   :meth:`~bgpctl.core.stats.PathWindow.sent`), and the judgement of rules 2-7 is neither DOWN nor
   UNKNOWN -> SUSPECT. plan() de-prefers a suspect path at once (like DEGRADED: make-before-break,
   so a real outage moves traffic as fast as a withdrawal would), but nothing is withdrawn and no
   hold-down starts. Rules 2-7 keep judging underneath (``PathHealth.beneath``). Reason metric
   ``unanswered``. The suspicion holds while any probe it counted is still unanswered past the RTO
   (``PathStats.holes``: answers to later probes do not vouch for the missing ones) and clears as
   soon as none is: the path returns to the judgement underneath (by then, the missing probes count
   as lost in the window), made worse at once if the RTT of the newest answer crosses an ``rtt_ms``
   threshold (a latency step is judged by the RTT thresholds, not as loss). So a burst of delay that
   is answered clears at once, a short outage goes from SUSPECT to whatever its losses say, and a
   run of ``down_after_lost`` timeouts confirms DOWN (rule 1). Before a first judgement (UNKNOWN)
   nothing is suspected: nothing was announced yet.
2. **Not enough data**: fewer than ``h.min_samples`` settled samples (or no stats) -> nothing is
   judged. UNKNOWN stays UNKNOWN; a judged state stays as it is (bgpctl never acts on missing
   evidence: fail-static), and the improvement clock (``clean_since``) stops.
3. **Soft level** of the window: DOWN if any ``down`` threshold is crossed, DEGRADED if any
   ``degraded`` one is, else UP. "Crossed" is strict: ``rtt_ms`` (compared with the window's RTT
   p95), ``jitter_ms`` and ``loss_pct`` when the value is *above* the threshold, ``mos_below``
   when the MOS is *below* it. Loss is judged with statistical confidence: it crosses when the
   window's lower confidence bound (``PathStats.loss_pct_low``, Wilson, 99.999 %) is above the
   threshold, and the MOS when the MOS at that bound (``mos_high``) is below it, so that a window
   that counts a few more losses than usual by chance crosses nothing (docs/false-alarms.md).
   Recovery (rule 6) uses the point estimates. A metric without a value (no answer yet: no jitter) crosses
   nothing, except RTT when every probe in the window was lost (no answer *is* too slow).
4. **First judgement**: from UNKNOWN the soft level applies at once.
5. **Worsening** (UP -> DEGRADED/DOWN, DEGRADED -> DOWN) applies at once. Entering DOWN arms
   the hold-down (``down_until = now + h.hold_down_s``).
6. **Improvement** needs all of:
   - the measurements clear the thresholds of the better level *with the recovery margin*
     (``m = h.recovery_margin_pct``): for "above" metrics ``value <= threshold * (1 - m/100)``;
     for the MOS (higher is better, bounded by 4.5) ``mos >= threshold + (4.5 - threshold) *
     m/100``, i.e. m% of the headroom to the top of the scale (a plain +m% would put 4.0 * 1.2 =
     4.8 out of reach). To be UP a path clears the ``degraded`` *and* the ``down`` thresholds,
     to be DEGRADED the ``down`` ones. The best level so cleared is the *recovery level*;
   - that recovery level has been better than the current state continuously for ``h.rise_s``
     (``clean_since``; ``clean_level`` is the worst recovery level seen during that run, and is
     the level the path improves to, so DOWN -> UP in one step only when UP was clean for the
     whole ``rise_s``);
   - at least ``h.min_dwell_s`` in the current state;
   - when leaving DOWN, ``now >= down_until``.
   After an improvement the clean run restarts (a further step needs its own ``rise_s``).
7. **Noise inside the thresholds never changes a state**: a soft level equal to the state, or
   better but inside the hysteresis band, keeps the state (and stops the improvement clock when
   the band is not cleared).

Reasons: every state carries ``Reason(metric, value, threshold, text)`` records: the thresholds
crossed ("loss_pct 12.0% > down 10.0%"), the thresholds cleared on recovery ("loss_pct 0.2% <=
0.8% (degraded 1.0% less 20% margin)"), what holds an improvement back (metrics ``rise``,
``min_dwell``, ``hold_down``), or the measurement still inside the hysteresis band (its own metric,
the recovery bound as threshold, "... inside the hysteresis band"); ``samples`` when the window is
too small to judge or on a first judgement with nothing crossed; ``session`` when the path's TGW session
is down (rule 0: value 0, threshold 1, the text names the peer); ``signal`` when an outside signal marks
the path (rule 0b: no value, no threshold, the text is the mark: signal, target, state, its reason).
Each change of health is one :class:`~bgpctl.core.types.Transition` with the new state's reasons.

Note: the policy model's text says ``min_dwell_s`` applies "before a soft change"; here it holds
back improvements only: a path that gets worse is de-preferred at once (calls first).

Cost: a steady path with nothing new to say (UP and clean, or without data) gets its previous
``PathHealth`` object back (no allocation, no text formatting), and the policy's keys and compiled
thresholds are memoised on the identity of the (immutable) policy object, so deciding every path at
every probe stays cheap (``tests/core/test_stats_bench.py``). :func:`judge` decides one path under
one SLA class.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from bgpctl.core.mos import MOS_MAX
from bgpctl.core.stats import LOSS_CONFIDENCE_PCT
from bgpctl.core.types import (
    MEASURED_V6,
    Decision,
    Health,
    PathHealth,
    PathKey,
    PathStats,
    Reason,
    SignalMark,
    Transition,
)
from bgpctl.errors import PolicyError, Problem
from bgpctl.policy.model import Hysteresis, Policy, SlaClass, Thresholds

_UNKNOWN, _UP, _DEGRADED, _SUSPECT, _DOWN = Health.UNKNOWN, Health.UP, Health.DEGRADED, Health.SUSPECT, Health.DOWN
"""Plain module constants: reading an enum member off its class costs a descriptor call."""

_RANK = {_UP: 0, _DEGRADED: 1, _SUSPECT: 2, _DOWN: 3}
"""Badness of the judged levels; UNKNOWN is not on this scale."""


def _worse(a: Health, b: Health) -> bool:
    return _RANK[a] > _RANK[b]


def _worst(a: Health, b: Health) -> Health:
    return a if _RANK[a] >= _RANK[b] else b


@dataclass(frozen=True, slots=True)
class _Metric:
    """One judged measurement: how to read it from the stats and how to compare it."""

    name: str  # Reason.metric, also the Thresholds field (except mos -> mos_below)
    field: str  # Thresholds field
    label: str  # how texts name it
    unit: str
    higher_is_worse: bool
    value: Callable[[PathStats], float | None]  # the point estimate: reported, and judged on recovery
    judged: Callable[[PathStats], float | None]  # what a crossing is judged on (a confidence bound)


def _or_point(bound: float | None, point: float | None) -> float | None:
    return point if bound is None else bound


_METRICS = (
    _Metric("rtt_ms", "rtt_ms", "rtt_ms p95", " ms", True, lambda s: s.rtt_p95_ms, lambda s: s.rtt_p95_ms),
    _Metric("jitter_ms", "jitter_ms", "jitter_ms", " ms", True, lambda s: s.jitter_ms, lambda s: s.jitter_ms),
    _Metric(
        "loss_pct",
        "loss_pct",
        "loss_pct",
        "%",
        True,
        lambda s: s.loss_pct,
        lambda s: _or_point(s.loss_pct_low, s.loss_pct),
    ),
    _Metric("mos", "mos_below", "mos", "", False, lambda s: s.mos, lambda s: _or_point(s.mos_high, s.mos)),
)


def _fmt(metric: _Metric, v: float) -> str:
    return f"{v:.2f}" if metric.name == "mos" else f"{v:.1f}{metric.unit}"


def recovery_bound(threshold: float, margin_pct: float, higher_is_worse: bool) -> float:
    """The value a measurement must reach (<= for "above" metrics, >= for MOS) to count as clean."""
    if higher_is_worse:
        return threshold * (1.0 - margin_pct / 100.0)
    return threshold + (MOS_MAX - threshold) * margin_pct / 100.0


@dataclass(frozen=True, slots=True)
class _Check:
    """One threshold of one level of an SLA class, with its recovery bound."""

    metric: _Metric
    level: str  # "degraded" / "down"
    threshold: float
    bound: float
    margin: float

    def crossing(self, v: float | None, point: float | None = None) -> Reason:
        """``v`` crossed the threshold; ``point`` is the point estimate when ``v`` is a confidence bound."""
        m = self.metric
        if v is None:
            return Reason(
                m.name,
                None,
                self.threshold,
                f"{m.label}: no probe answered in the window (> {self.level} {_fmt(m, self.threshold)})",
            )
        op = ">" if m.higher_is_worse else "<"
        shown = _fmt(m, v)
        if point is not None and point != v:
            shown = (
                f"{_fmt(m, point)} ({'at least' if m.higher_is_worse else 'at most'} {_fmt(m, v)} "
                f"at {LOSS_CONFIDENCE_PCT:g}% confidence)"
            )
        return Reason(m.name, v, self.threshold, f"{m.label} {shown} {op} {self.level} {_fmt(m, self.threshold)}")

    def _how(self) -> str:
        m = self.metric
        if m.higher_is_worse:
            return f"({self.level} {_fmt(m, self.threshold)} less {self.margin:g}% margin)"
        return f"({self.level} {_fmt(m, self.threshold)} plus {self.margin:g}% of the headroom to {MOS_MAX})"

    def cleared(self, v: float) -> Reason:
        m = self.metric
        op = "<=" if m.higher_is_worse else ">="
        return Reason(m.name, v, self.bound, f"{m.label} {_fmt(m, v)} {op} {_fmt(m, self.bound)} {self._how()}")

    def blocking(self, v: float | None) -> Reason:
        m = self.metric
        if v is None:
            return Reason(m.name, None, self.bound, f"{m.label}: no value to clear {_fmt(m, self.bound)} {self._how()}")
        op = ">" if m.higher_is_worse else "<"
        return Reason(
            m.name,
            v,
            self.bound,
            f"{m.label} {_fmt(m, v)} {op} {_fmt(m, self.bound)} {self._how()}: inside the hysteresis band",
        )


@dataclass(frozen=True, slots=True)
class _Rules:
    """An SLA class compiled for judging: only the thresholds it sets."""

    hysteresis: Hysteresis
    down: tuple[_Check, ...]
    degraded: tuple[_Check, ...]


def _compile(sla: SlaClass) -> _Rules:
    margin = sla.hysteresis.recovery_margin_pct

    def checks(t: Thresholds, level: str) -> tuple[_Check, ...]:
        out = []
        for m in _METRICS:
            thr: float | None = getattr(t, m.field)
            if thr is not None:
                out.append(_Check(m, level, thr, recovery_bound(thr, margin, m.higher_is_worse), margin))
        return tuple(out)

    return _Rules(sla.hysteresis, checks(sla.down, "down"), checks(sla.degraded, "degraded"))


def _crossings(stats: PathStats, checks: tuple[_Check, ...]) -> list[Reason]:
    """Every threshold of ``checks`` the window crosses (RTT also when no probe was answered)."""
    out: list[Reason] = []
    for c in checks:
        v = c.metric.judged(stats)
        if v is None:
            if c.metric.name == "rtt_ms" and stats.samples > 0 and stats.lost == stats.samples:
                out.append(c.crossing(None))
        elif (v > c.threshold) if c.metric.higher_is_worse else (v < c.threshold):  # crossed (inlined: hot path)
            out.append(c.crossing(v, c.metric.value(stats)))
    return out


def _soft_level(stats: PathStats, rules: _Rules) -> tuple[Health, list[Reason]]:
    down = _crossings(stats, rules.down)
    if down:
        return _DOWN, down
    degraded = _crossings(stats, rules.degraded)
    if degraded:
        return _DEGRADED, degraded
    return _UP, []


def _unclean(stats: PathStats, checks: tuple[_Check, ...]) -> list[tuple[_Check, float | None]]:
    """The checks the window does not clear with the margin (a missing value clears nothing)."""
    out: list[tuple[_Check, float | None]] = []
    for c in checks:
        v = c.metric.value(stats)
        if v is None or ((v > c.bound) if c.metric.higher_is_worse else (v < c.bound)):  # not clean
            out.append((c, v))
    return out


def _recovery_level(stats: PathStats, rules: _Rules) -> tuple[Health, list[tuple[_Check, float | None]]]:
    """The best level the window clears with the margin, and what keeps it from the level above."""
    blocked = _unclean(stats, rules.down)
    if blocked:
        return _DOWN, blocked
    blocked = _unclean(stats, rules.degraded)
    if blocked:
        return _DEGRADED, blocked
    return _UP, []


def _cleared(stats: PathStats, rules: _Rules, level: Health) -> list[Reason]:
    """The thresholds cleared to reach ``level`` (the window clears every one of them)."""
    checks = rules.down + (rules.degraded if level is _UP else ())
    out = []
    for c in checks:
        v = c.metric.value(stats)
        assert v is not None, "a cleared threshold has a value"
        out.append(c.cleared(v))
    return out


def path_keys(policy: Policy) -> list[PathKey]:
    """Every (service, region, path) the policy measures, in policy order: services, then regions
    (those the service has a probe target in), then the region's paths; after a dual-stack region's paths
    (its target has ``address_v6``), their IPv6 measurements (``PathKey.family`` ``ipv6``)."""
    return [key for key, _, _ in _compiled(policy)]


_MEMO: dict[str, tuple[Policy, tuple[tuple[PathKey, _Rules, str], ...]]] = {}
"""The last policy's keys and compiled rules, by the policy object's identity (a Policy is
immutable). A cache only: decide() gives the same output with it empty."""


def _compiled(policy: Policy) -> tuple[tuple[PathKey, _Rules, str], ...]:
    """Per path: its key, its SLA class's rules and the name of the TGW peer its routes go to."""
    memo = _MEMO.get("last")
    if memo is not None and memo[0] is policy:
        return memo[1]
    rules: dict[str, _Rules] = {}
    out: list[tuple[PathKey, _Rules, str]] = []
    for service_name, service in policy.services.items():
        for region_name, region in policy.regions.items():
            if region_name not in service.probe.targets:
                continue
            if service_name not in rules:
                rules[service_name] = _compile(_sla_for(policy, service_name))
            out.extend(
                (PathKey(service_name, region_name, name), rules[service_name], path.peer)
                for name, path in region.paths.items()
            )
            if service.probe.targets[region_name].address_v6 is not None:  # dual-stack: IPv6 judged apart
                out.extend(
                    (PathKey(service_name, region_name, name, MEASURED_V6), rules[service_name], path.peer_for(6))
                    for name, path in region.paths.items()
                )
    compiled = tuple(out)
    _MEMO["last"] = (policy, compiled)
    return compiled


def _sla_for(policy: Policy, service_name: str) -> SlaClass:
    name = policy.services[service_name].sla
    try:
        return policy.sla_classes[name]
    except KeyError:
        raise PolicyError(
            [
                Problem(
                    file="<policy>",
                    line=None,
                    path=f"services.{service_name}.sla",
                    message=f"names SLA class '{name}', which sla_classes does not define",
                    hint=f"define it or use one of {sorted(policy.sla_classes)}",
                )
            ]
        ) from None


def decide(
    policy: Policy,
    stats: Mapping[PathKey, PathStats],
    previous: Mapping[PathKey, PathHealth],
    now: float,
    sessions_down: Collection[str] = frozenset(),
    *,
    signals: Mapping[tuple[str, str], SignalMark] | None = None,
) -> Decision:
    """The new health of every path of ``path_keys(policy)`` and the transitions since ``previous``.

    ``sessions_down``: the names of the peers whose BGP session is down (after it was up: the caller
    decides that, see :meth:`~bgpctl.core.controller.Controller.session`); rule 0 of the module docstring.
    ``signals``: (region, path) -> the outside signal's mark on that path (:func:`signal_marks`); rule 0b."""
    health: dict[PathKey, PathHealth] = {}
    transitions: list[Transition] = []
    for key, rules, peer in _compiled(policy):
        prev = previous.get(key)
        if prev is None:
            prev = PathHealth(health=_UNKNOWN, since=now)
        if sessions_down and peer in sessions_down:
            new = _session_down(rules.hysteresis, peer, prev, now)
        else:
            mark = signals.get((key.region, key.path)) if signals else None
            if mark is not None and mark.health is _DOWN and prev.health is not _UNKNOWN:
                new = _signalled(rules.hysteresis, mark, prev, prev, now)  # DOWN whatever the probes say
            else:
                new = _judge(rules, stats.get(key), prev, now)
                if mark is not None and new.health is not _UNKNOWN:
                    new = _signalled(rules.hysteresis, mark, prev, new, now)
        health[key] = new
        if new.health is not prev.health:
            transitions.append(Transition(key=key, at=now, old=prev.health, new=new.health, reasons=new.reasons))
    return Decision(health=health, transitions=tuple(transitions))


def judge(sla: SlaClass, stats: PathStats | None, prev: PathHealth, now: float) -> PathHealth:
    """One path's new health under ``sla`` (the rules of the module docstring)."""
    return _judge(_compile(sla), stats, prev, now)


def _session_down(h: Hysteresis, peer: str, prev: PathHealth, now: float) -> PathHealth:
    """Rule 0: the path's TGW session is down: DOWN at once, the hold-down (re)armed from ``now``."""
    reason = Reason(
        "session",
        0.0,
        1.0,
        f"BGP session to {peer} is down: the prefixes are not announced to it, return traffic through it is lost",
    )
    return PathHealth(
        health=_DOWN,
        since=prev.since if prev.health is _DOWN else now,
        clean_since=None,
        down_until=max(prev.down_until, now + h.hold_down_s),
        reasons=(reason,),
        clean_level=None,
    )


def signal_marks(policy: Policy, marks: Iterable[SignalMark]) -> dict[tuple[str, str], SignalMark]:
    """(region, path) -> the mark that counts for that path: the worst of the marks naming the path or its
    region (DOWN over DEGRADED; between equals, the first given). Marks naming a region or path the policy
    does not have are left out (a replay under another policy)."""
    out: dict[tuple[str, str], SignalMark] = {}
    for mark in marks:
        region = policy.regions.get(mark.region)
        if region is None or (mark.path is not None and mark.path not in region.paths):
            continue
        for name in region.paths if mark.path is None else (mark.path,):
            held = out.get((mark.region, name))
            if held is None or _worse(mark.health, held.health):
                out[(mark.region, name)] = mark
    return out


@functools.lru_cache(maxsize=256)
def _signal_reasons(mark: SignalMark) -> tuple[Reason, ...]:
    """The reasons of a marked path (one object per mark: a standing mark formats nothing)."""
    return (Reason("signal", None, None, str(mark)),)


def _signalled(h: Hysteresis, mark: SignalMark, prev: PathHealth, new: PathHealth, now: float) -> PathHealth:
    """Rule 0b: the probes' judgement ``new`` made as bad as the signal's ``mark`` says (never better)."""
    if mark.health is not _DOWN and new.health in (_DOWN, _SUSPECT):
        return new  # already worse, or de-preferred the same way: the probes' own judgement stands
    level = _DOWN if mark.health is _DOWN else _DEGRADED
    reasons = _signal_reasons(mark)
    down_until = max(new.down_until, now + h.hold_down_s) if level is _DOWN else new.down_until
    if prev.health is level and prev.reasons == reasons and prev.clean_since is None and prev.down_until == down_until:
        return prev  # nothing new to say (a standing DEGRADED mark)
    return PathHealth(
        health=level,
        since=prev.since if prev.health is level else now,
        clean_since=None,
        down_until=down_until,
        reasons=reasons,
        clean_level=None,
    )


def _judge(rules: _Rules, stats: PathStats | None, prev: PathHealth, now: float) -> PathHealth:
    h = rules.hysteresis

    # 1. hard failure, confirmed by timeouts: at once, from any state, with any number of samples
    if stats is not None and stats.consecutive_lost >= h.down_after_lost:
        cur = prev.health
        reason = Reason(
            "consecutive_lost",
            float(stats.consecutive_lost),
            float(h.down_after_lost),
            f"consecutive_lost {stats.consecutive_lost} >= down_after_lost {h.down_after_lost}",
        )
        return PathHealth(
            health=_DOWN,
            since=prev.since if cur is _DOWN else now,
            clean_since=None,
            down_until=max(prev.down_until, now + h.hold_down_s),
            reasons=(reason,),
            clean_level=None,
        )

    # 2.-7. the window's judgement, underneath any suspicion
    base = prev.beneath if prev.health is _SUSPECT and prev.beneath is not None else prev
    suspected = base is not prev
    new = _judge_window(rules, stats, base, now)

    # 1b. suspicion: unanswered past the adaptive RTO, not timed out (yet)
    if (
        stats is not None
        and (stats.unanswered >= h.down_after_lost or (suspected and stats.holes > 0))
        and new.health is not _DOWN
        and new.health is not _UNKNOWN
    ):
        missing = stats.unanswered + stats.holes
        if suspected and prev.reasons and prev.reasons[0].value == missing and prev.beneath is new:
            return prev  # nothing new to say
        if stats.unanswered >= h.down_after_lost:
            text = (
                f"unanswered {stats.unanswered} >= down_after_lost {h.down_after_lost} "
                f"({stats.consecutive_lost} timed out + {stats.overdue} past RTO {stats.rto_ms or 0:.0f} ms): "
                "suspect, de-preferred until answers clear it or the timeouts confirm down"
            )
        else:
            text = (
                f"{stats.holes} probe(s) before the last answer still unanswered past RTO "
                f"{stats.rto_ms or 0:.0f} ms: suspect until they are answered or time out"
            )
        reason = Reason("unanswered", float(missing), float(h.down_after_lost), text)
        return PathHealth(
            health=_SUSPECT,
            since=prev.since if suspected else now,
            clean_since=None,
            down_until=new.down_until,
            reasons=(reason,),
            clean_level=None,
            beneath=new,
        )
    if suspected:
        return _cleared_suspicion(rules, stats, new, now)
    return new


def _cleared_suspicion(rules: _Rules, stats: PathStats | None, new: PathHealth, now: float) -> PathHealth:
    """An answer ended the suspicion: back to the judgement underneath, worse at once if the answer that
    ended it was slow enough to cross an ``rtt_ms`` threshold (a latency step, judged as latency)."""
    rtt = None if stats is None else stats.last_rtt_ms
    cleared = Reason(
        "unanswered",
        0.0,
        float(rules.hysteresis.down_after_lost),
        "unanswered 0: answered again" + ("" if rtt is None else f" (RTT {rtt:.1f} ms)") + ", suspicion cleared",
    )
    for level, checks in ((_DOWN, rules.down), (_DEGRADED, rules.degraded)):
        for c in checks:
            if c.metric.name == "rtt_ms" and rtt is not None and rtt > c.threshold:
                if new.health is not _UNKNOWN and _worse(level, new.health):
                    crossed = Reason(
                        "rtt_ms",
                        rtt,
                        c.threshold,
                        f"rtt_ms {rtt:.1f} of the answer that ended the suspicion > {c.level} {c.threshold:.1f} ms",
                    )
                    return _enter(new, level, now, rules.hysteresis, (cleared, crossed))
                break
    return PathHealth(
        health=new.health,
        since=new.since,
        clean_since=new.clean_since,
        down_until=new.down_until,
        reasons=(cleared, *new.reasons),
        clean_level=new.clean_level,
    )


def _judge_window(rules: _Rules, stats: PathStats | None, prev: PathHealth, now: float) -> PathHealth:
    """Rules 2-7: the judgement of the window's measurements, with hysteresis."""
    h = rules.hysteresis
    cur = prev.health

    # 2. too little data: judge nothing
    if stats is None or stats.samples < h.min_samples:
        n = 0 if stats is None else stats.samples
        if (
            prev.clean_since is None
            and prev.clean_level is None
            and prev.reasons
            and prev.reasons[0].metric == "samples"
            and prev.reasons[0].value == n
            and prev.reasons[0].threshold == h.min_samples
        ):
            return prev  # nothing new to say (the hot path of a path without data)
        reason = Reason(
            "samples",
            float(n),
            float(h.min_samples),
            f"{n} settled samples < min_samples {h.min_samples}: not judged, {cur.value} kept",
        )
        kept = tuple(r for r in prev.reasons if r.metric != "samples")
        return PathHealth(
            health=cur,
            since=prev.since,
            clean_since=None,
            down_until=prev.down_until,
            reasons=(reason, *kept),
            clean_level=None,
        )

    # 3. soft level
    level, crossed = _soft_level(stats, rules)

    # 4./5. first judgement and worsening: at once
    if cur is _UNKNOWN or _worse(level, cur):
        reasons = tuple(crossed)
        if not reasons:  # first judgement, everything within thresholds
            reasons = (
                Reason(
                    "samples",
                    float(stats.samples),
                    float(h.min_samples),
                    f"first judgement on {stats.samples} settled samples (min_samples "
                    f"{h.min_samples}): every measurement within its thresholds",
                ),
            )
        return _enter(prev, level, now, h, reasons)

    # 6./7. same level, or better: improve only through the hysteresis
    if level is cur:  # the recovery level is never better than the level: nothing to improve (hot path)
        return _hold(prev, tuple(crossed))
    recovery, blocked = _recovery_level(stats, rules)
    if not _worse(cur, recovery):  # nothing cleared beyond the band: hold
        return _hold(prev, tuple(c.blocking(v) for c, v in blocked))

    if prev.clean_since is None or prev.clean_level is None:
        clean_since, clean_level = now, recovery
    else:
        clean_since, clean_level = prev.clean_since, _worst(prev.clean_level, recovery)

    held: list[Reason] = []
    clean_for = now - clean_since
    if clean_for < h.rise_s:
        held.append(
            Reason(
                "rise", clean_for, h.rise_s, f"clean for {clean_for:.1f} s < rise_s {h.rise_s:g} s: {cur.value} kept"
            )
        )
    in_state = now - prev.since
    if in_state < h.min_dwell_s:
        held.append(
            Reason(
                "min_dwell",
                in_state,
                h.min_dwell_s,
                f"{in_state:.1f} s in {cur.value} < min_dwell_s {h.min_dwell_s:g} s",
            )
        )
    if cur is _DOWN and now < prev.down_until:
        held.append(
            Reason(
                "hold_down",
                prev.down_until - now,
                h.hold_down_s,
                f"hold-down: {prev.down_until - now:.1f} s left of hold_down_s {h.hold_down_s:g} s",
            )
        )
    if held:
        return PathHealth(
            health=cur,
            since=prev.since,
            clean_since=clean_since,
            down_until=prev.down_until,
            reasons=tuple(held),
            clean_level=clean_level,
        )

    # improve to the level that stayed clean for the whole run
    rise = Reason(
        "rise",
        clean_for,
        h.rise_s,
        f"clean for {clean_for:.1f} s >= rise_s {h.rise_s:g} s: {cur.value} -> {clean_level.value}",
    )
    restart = recovery if _worse(clean_level, recovery) else None
    return PathHealth(
        health=clean_level,
        since=now,
        clean_since=now if restart else None,
        down_until=prev.down_until,
        reasons=(rise, *_cleared(stats, rules, clean_level)),
        clean_level=restart,
    )


def _hold(prev: PathHealth, reasons: tuple[Reason, ...]) -> PathHealth:
    """Keep the state, stop the improvement clock; ``prev`` itself when nothing changes."""
    if prev.clean_since is None and prev.clean_level is None and prev.reasons == reasons:
        return prev
    return PathHealth(
        health=prev.health,
        since=prev.since,
        clean_since=None,
        down_until=prev.down_until,
        reasons=reasons,
        clean_level=None,
    )


def _enter(prev: PathHealth, level: Health, now: float, h: Hysteresis, reasons: tuple[Reason, ...]) -> PathHealth:
    """Move to ``level`` at once (first judgement or worsening)."""
    down_until = prev.down_until
    if level is _DOWN:
        down_until = max(down_until, now + h.hold_down_s)
    return PathHealth(
        health=level,
        since=now if level is not prev.health else prev.since,
        clean_since=None,
        down_until=down_until,
        reasons=reasons,
        clean_level=None,
    )
