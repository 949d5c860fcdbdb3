"""Property tests for decide() (and decide fed by PathWindow). Examples per property: the hypothesis
profile of tests/conftest.py (500 with CI set).

The oracles here are written from the rules, independently of bgpctl.core.decide's helpers:
levels by direct comparison with the SLA thresholds, "clean" by direct comparison with the
recovery bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from hypothesis import event, given
from hypothesis import strategies as st

from bgpctl.core.decide import decide, path_keys
from bgpctl.core.stats import PathWindow
from bgpctl.core.types import Decision, Health, PathHealth, PathKey, PathStats, Reason, Sample
from bgpctl.policy.model import Hysteresis, Policy, SlaClass, Thresholds
from tests.core.plans.support import lab_policy
from tests.core.windows import PINNED

UNK, UP, DEG, DOWN = Health.UNKNOWN, Health.UP, Health.DEGRADED, Health.DOWN
RANK = {UP: 0, DEG: 1, DOWN: 2}
KEY = PathKey("media", "use1", "interconnect")
LAB = lab_policy(PINNED)
VOICE = LAB.sla_classes["voice"]


def with_hysteresis(h: Hysteresis) -> Policy:
    sla = VOICE.model_copy(update={"hysteresis": h})
    return LAB.model_copy(update={"sla_classes": {**LAB.sla_classes, "voice": sla}})


hysteresis = st.builds(
    Hysteresis,
    down_after_lost=st.integers(1, 10),
    window_s=st.just(5.0),
    min_samples=st.integers(1, 50),
    rise_s=st.floats(0, 20),
    recovery_margin_pct=st.floats(0, 50),
    hold_down_s=st.floats(0, 30),
    min_dwell_s=st.floats(0, 10),
)

health_any = st.sampled_from([UNK, UP, DEG, DOWN])
health_judged = st.sampled_from([UP, DEG, DOWN])


@st.composite
def previous(draw: st.DrawFn, health: st.SearchStrategy[Health] = health_any, now: float = 1000.0) -> PathHealth:
    h = draw(health)
    since = draw(st.floats(0, now))
    clean = draw(st.one_of(st.none(), st.floats(since, now)))
    level = (
        None
        if clean is None or h in (UP, UNK)
        else draw(st.sampled_from([lv for lv in (UP, DEG) if RANK[lv] < RANK[h]]))
    )
    return PathHealth(
        health=h,
        since=since,
        clean_since=clean if level else None,
        down_until=draw(st.floats(0, now + 100)),
        clean_level=level,
    )


# ------------------------------------------------------------------------------------------
# oracles


def crosses(value: float | None, thr: float | None, higher_is_worse: bool) -> bool:
    if thr is None or value is None:
        return False
    return value > thr if higher_is_worse else value < thr


def level_crossed(s: PathStats, t: Thresholds) -> bool:
    return (
        crosses(s.rtt_p95_ms, t.rtt_ms, True)
        or crosses(s.jitter_ms, t.jitter_ms, True)
        or crosses(s.loss_pct, t.loss_pct, True)
        or crosses(s.mos, t.mos_below, False)
        or (t.rtt_ms is not None and s.samples > 0 and s.lost == s.samples)
    )


def oracle_level(s: PathStats, sla: SlaClass) -> Health:
    if level_crossed(s, sla.down):
        return DOWN
    return DEG if level_crossed(s, sla.degraded) else UP


def clears(s: PathStats, t: Thresholds, margin: float) -> bool:
    pairs = [(s.rtt_p95_ms, t.rtt_ms), (s.jitter_ms, t.jitter_ms), (s.loss_pct, t.loss_pct)]
    for v, thr in pairs:
        if thr is not None and (v is None or v > thr * (1 - margin / 100)):
            return False
    return t.mos_below is None or (s.mos is not None and s.mos >= t.mos_below + (4.5 - t.mos_below) * margin / 100)


def clean_for(s: PathStats | None, sla: SlaClass, h: Hysteresis, level: Health) -> bool:
    if s is None or s.samples < h.min_samples or s.consecutive_lost >= h.down_after_lost:
        return False
    m = h.recovery_margin_pct
    return clears(s, sla.down, m) and (level is DEG or clears(s, sla.degraded, m))


# ------------------------------------------------------------------------------------------
# stats strategies


@st.composite
def stats_within(draw: st.DrawFn, t: Thresholds, h: Hysteresis, judged: bool = False, margin: float = 0.0) -> PathStats:
    """Any window whose every measurement is on or inside ``t`` (less ``margin`` %: inside the
    recovery bounds) and no hard failure."""
    keep = 1 - margin / 100
    samples = draw(st.integers(h.min_samples if judged else 0, 3000))
    max_lost = int(samples * (t.loss_pct * keep if t.loss_pct is not None else 100) / 100)
    lost = draw(st.integers(0, max(0, min(max_lost, samples - 1))))
    consecutive = draw(st.integers(0, min(lost, h.down_after_lost - 1)))
    rtt = t.rtt_ms * keep if t.rtt_ms is not None else 5000
    p95 = draw(st.floats(0, rtt))
    jit_max = t.jitter_ms * keep if t.jitter_ms is not None else 5000
    jit = draw(st.floats(0, jit_max) if margin else st.one_of(st.none(), st.floats(0, jit_max)))
    mos_min = t.mos_below + (4.5 - t.mos_below) * margin / 100 if t.mos_below is not None else 1.0
    mos = draw(st.floats(mos_min, 4.5))
    if margin and samples - lost < 2:  # a clean window has a jitter value
        samples, lost, consecutive = max(samples, 2), 0, 0
    answered = samples - lost
    return PathStats(
        samples=samples,
        lost=lost,
        consecutive_lost=consecutive,
        rtt_p50_ms=draw(st.floats(0, p95)) if answered else None,
        rtt_p95_ms=p95 if answered else None,
        jitter_ms=jit if answered >= 2 else None,
        mos=mos if samples else None,
    )


@st.composite
def stats_any(draw: st.DrawFn, h: Hysteresis) -> PathStats | None:
    if draw(st.integers(0, 9)) == 0:
        return None
    samples = draw(st.integers(0, 400))
    lost = draw(st.integers(0, samples))
    answered = samples - lost
    p95 = draw(st.floats(0, 600))
    return PathStats(
        samples=samples,
        lost=lost,
        consecutive_lost=draw(st.integers(0, lost)),
        rtt_p50_ms=draw(st.floats(0, p95)) if answered else None,
        rtt_p95_ms=p95 if answered else None,
        jitter_ms=draw(st.floats(0, 120)) if answered >= 2 else None,
        mos=draw(st.floats(1.0, 4.5)) if samples else None,
    )


@st.composite
def stats_mixed(draw: st.DrawFn, h: Hysteresis) -> PathStats | None:
    """Mostly realistic windows: clean, in the band, degraded, down, blackholed, too few, none."""
    kind = draw(st.sampled_from(["clean", "clean", "half", "up", "band", "deg", "down", "hard", "few", "none", "any"]))
    return draw(stats_of_kind(kind, h))


@st.composite
def stats_of_kind(draw: st.DrawFn, kind: str, h: Hysteresis) -> PathStats | None:
    sla = VOICE
    if kind == "clean":  # clean for UP: inside every recovery bound
        return draw(stats_within(sla.degraded, h, judged=True, margin=h.recovery_margin_pct))
    if kind == "half":  # clean for DEGRADED
        return draw(stats_within(sla.down, h, judged=True, margin=h.recovery_margin_pct))
    if kind == "up":
        return draw(stats_within(sla.degraded, h, judged=True))
    if kind in ("band", "deg"):
        return draw(stats_within(sla.down, h, judged=True))
    if kind == "few":  # fewer than min_samples (at least one answered when not empty)
        w = draw(stats_within(sla.degraded, h))
        n = min(w.samples, h.min_samples - 1)
        lost = min(w.lost, max(0, n - 1))
        return PathStats(
            n,
            lost,
            min(w.consecutive_lost, lost),
            w.rtt_p50_ms if n else None,
            w.rtt_p95_ms if n else None,
            w.jitter_ms if n - lost >= 2 else None,
            w.mos if n else None,
        )
    if kind == "none":
        return None
    s = draw(stats_any(h))
    if kind == "hard" and s is not None:
        n = max(s.samples, h.down_after_lost)
        return PathStats(
            samples=n, lost=n, consecutive_lost=n, rtt_p50_ms=None, rtt_p95_ms=None, jitter_ms=None, mos=1.0
        )
    return s


times = st.lists(st.floats(0.01, 4.0), min_size=1, max_size=60)


# ------------------------------------------------------------------------------------------
# properties


@given(data=st.data(), h=hysteresis, deltas=times)
def test_in_threshold_noise_never_changes_an_up_state(data: st.DataObject, h: Hysteresis, deltas: list[float]) -> None:
    policy = with_hysteresis(h)
    prev: dict[PathKey, PathHealth] = {KEY: data.draw(previous(st.just(UP)))}
    now = 1000.0
    for dt in deltas:
        now += dt
        s = data.draw(stats_within(VOICE.degraded, h))
        d = decide(policy, {KEY: s}, prev, now)
        assert d.health[KEY].health is UP, d.health[KEY].reasons
        assert d.transitions == ()
        prev = d.health


@st.composite
def stats_at_level(draw: st.DrawFn, level: Health, h: Hysteresis) -> PathStats:
    """A judged window that keeps a path in ``level``: for DEGRADED/DOWN one measurement is worse than
    the recovery bound of the level above (crossing it, or inside the hysteresis band), none crosses
    a worse level."""
    if level is UP:
        return draw(stats_within(VOICE.degraded, h, judged=True))
    base = draw(stats_within(VOICE.down, h, judged=True)) if level is DEG else draw(stats_any(h))
    if base is None or base.samples < max(2, h.min_samples):
        base = draw(stats_within(VOICE.down, h, judged=True))
    if base.samples < 2:  # room for two answers (a jitter value) and one loss
        base = PathStats(3, 0, 0, 1.0, 1.0, None, base.mos if base.mos is not None else 4.4)
    t = VOICE.degraded if level is DEG else VOICE.down
    ceiling = VOICE.down
    m = h.recovery_margin_pct
    metric = draw(st.sampled_from(["rtt", "jitter", "mos"]))
    if metric == "rtt":
        assert t.rtt_ms is not None and ceiling.rtt_ms is not None
        hi = ceiling.rtt_ms if level is DEG else 60000.0
        v = draw(st.floats(t.rtt_ms * (1 - m / 100), hi, exclude_min=True))
        return PathStats(
            base.samples,
            min(base.lost, base.samples - 1),
            min(base.consecutive_lost, h.down_after_lost - 1),
            base.rtt_p50_ms if base.rtt_p50_ms is not None else 1.0,
            v,
            base.jitter_ms,
            base.mos,
        )
    if metric == "jitter":
        assert t.jitter_ms is not None and ceiling.jitter_ms is not None
        hi = ceiling.jitter_ms if level is DEG else 60000.0
        v = draw(st.floats(t.jitter_ms * (1 - m / 100), hi, exclude_min=True))
        return PathStats(
            base.samples,
            min(base.lost, base.samples - 2),
            min(base.consecutive_lost, h.down_after_lost - 1),
            base.rtt_p50_ms if base.rtt_p50_ms is not None else 1.0,
            base.rtt_p95_ms if base.rtt_p95_ms is not None else 1.0,
            v,
            base.mos,
        )
    assert t.mos_below is not None and ceiling.mos_below is not None
    lo = ceiling.mos_below if level is DEG else 1.0
    v = draw(st.floats(lo, t.mos_below + (4.5 - t.mos_below) * m / 100, exclude_max=True))
    return PathStats(
        base.samples,
        base.lost,
        min(base.consecutive_lost, h.down_after_lost - 1),
        base.rtt_p50_ms,
        base.rtt_p95_ms,
        base.jitter_ms,
        v,
    )


@given(data=st.data(), h=hysteresis, level=health_judged, deltas=times)
def test_noise_at_a_level_or_in_its_band_never_changes_the_state(
    data: st.DataObject, h: Hysteresis, level: Health, deltas: list[float]
) -> None:
    policy = with_hysteresis(h)
    prev: dict[PathKey, PathHealth] = {KEY: data.draw(previous(st.just(level)))}
    now = 1000.0
    for dt in deltas:
        now += dt
        s = data.draw(stats_at_level(level, h))
        d = decide(policy, {KEY: s}, prev, now)
        assert d.health[KEY].health is level, (s, d.health[KEY].reasons)
        assert d.transitions == ()
        prev = d.health


@given(prev=previous(), h=hysteresis, data=st.data(), now=st.floats(1000, 2000))
def test_hard_failure_is_down_in_the_same_call(
    prev: PathHealth, h: Hysteresis, data: st.DataObject, now: float
) -> None:
    s = data.draw(stats_any(h).filter(lambda x: x is not None))
    assert s is not None
    n = data.draw(st.integers(h.down_after_lost, h.down_after_lost + 50))
    s = PathStats(max(s.samples, n), max(s.lost, n), n, s.rtt_p50_ms, s.rtt_p95_ms, s.jitter_ms, s.mos)
    d = decide(with_hysteresis(h), {KEY: s}, {KEY: prev}, now)
    got = d.health[KEY]
    assert got.health is DOWN
    assert got.down_until >= now + h.hold_down_s
    assert any(
        r.metric == "consecutive_lost" and r.value is not None and r.threshold is not None and r.value >= r.threshold
        for r in got.reasons
    )
    assert [t.key for t in d.transitions] == ([] if prev.health is DOWN else [KEY])


@given(prev=previous(health_judged), h=hysteresis, data=st.data(), now=st.floats(1000, 2000))
def test_worsening_applies_at_once(prev: PathHealth, h: Hysteresis, data: st.DataObject, now: float) -> None:
    s = data.draw(stats_any(h))
    if s is None or s.samples < h.min_samples or s.consecutive_lost >= h.down_after_lost:
        return
    want = oracle_level(s, VOICE)
    got = decide(with_hysteresis(h), {KEY: s}, {KEY: prev}, now).health[KEY]
    if RANK[want] > RANK[prev.health]:
        assert got.health is want
    else:
        assert RANK[got.health] <= RANK[prev.health], "a window no worse than the state never worsens it"


def crossing_reason(r: Reason) -> bool:
    if r.metric == "consecutive_lost":
        return r.value is not None and r.threshold is not None and r.value >= r.threshold
    if r.metric == "rtt_ms" and r.value is None:
        return "no probe answered" in r.text
    if r.value is None or r.threshold is None:
        return False
    return r.value < r.threshold if r.metric == "mos" else r.value > r.threshold


@dataclass
class Step:
    now: float
    stats: PathStats | None
    before: PathHealth
    after: PathHealth


def replay(policy: Policy, seq: list[tuple[float, PathStats | None]]) -> list[Step]:
    prev: dict[PathKey, PathHealth] = {}
    out = []
    for now, s in seq:
        d = decide(policy, {KEY: s} if s is not None else {}, prev, now)
        out.append(Step(now, s, prev.get(KEY, PathHealth(since=now)), d.health[KEY]))
        assert all(t.reasons for t in d.transitions)
        prev = d.health
    return out


kinds = st.sampled_from(["clean", "clean", "clean", "half", "up", "band", "deg", "down", "hard", "few", "none", "any"])
phases = st.lists(st.tuples(kinds, st.integers(1, 25), st.floats(0.05, 3.0)), min_size=1, max_size=8)


quick_hysteresis = st.builds(  # dwell as often longer than rise as not; hold-downs short enough to end
    Hysteresis,
    down_after_lost=st.integers(1, 10),
    window_s=st.just(5.0),
    min_samples=st.integers(1, 50),
    rise_s=st.floats(0, 10),
    recovery_margin_pct=st.floats(0, 50),
    hold_down_s=st.floats(0, 20),
    min_dwell_s=st.floats(0, 10),
)


@given(data=st.data(), h=quick_hysteresis, plan=phases)
def test_no_improvement_before_rise_dwell_and_hold_down(
    data: st.DataObject, h: Hysteresis, plan: list[tuple[str, int, float]]
) -> None:
    """Phases of windows of one kind (clean, in the band, blackholed, no data, ...), each call
    ``dt`` apart: every improvement comes after min_dwell_s in the state, after the hold-down,
    at the end of a run of windows clean for the new level lasting rise_s; every worsening names a
    measurement that crossed its threshold."""
    now = 0.0
    seq: list[tuple[float, PathStats | None]] = []
    for kind, n, dt in plan:
        # one strategy per phase (not per window): building strategies is most of this test's time
        for s in data.draw(st.lists(stats_of_kind(kind, h), min_size=n, max_size=n)):
            now += dt
            seq.append((now, s))
    steps = replay(with_hysteresis(h), seq)
    improvements = sum(
        1
        for s in steps
        if s.before.health is not UNK and s.after.health is not UNK and RANK[s.after.health] < RANK[s.before.health]
    )
    event(f"improvements: {min(improvements, 3)}{'+' if improvements >= 3 else ''}")
    for i, step in enumerate(steps):
        old, new = step.before.health, step.after.health
        if old is UNK or new is UNK or RANK[new] >= RANK[old]:
            if old is not UNK and new is not UNK and RANK[new] > RANK[old]:  # worsening: says what crossed
                assert any(crossing_reason(r) for r in step.after.reasons), step.after.reasons
            continue
        # an improvement: dwell, hold-down, and a clean run of rise_s ending here
        assert step.now - step.before.since >= h.min_dwell_s
        if old is DOWN:
            assert step.now >= step.before.down_until
        j = i
        while j > 0 and clean_for(steps[j - 1].stats, VOICE, h, new):
            j -= 1
        assert clean_for(step.stats, VOICE, h, new)
        assert step.now - steps[j].now >= h.rise_s - 1e-9, (step.now, steps[j].now, h.rise_s)
        assert any(
            r.metric == "rise" and r.value is not None and r.value >= h.rise_s - 1e-9 for r in step.after.reasons
        )


@given(data=st.data(), h=hysteresis, n=st.integers(1, 30))
def test_decide_is_deterministic_and_does_not_touch_its_inputs(data: st.DataObject, h: Hysteresis, n: int) -> None:
    policy = with_hysteresis(h)
    keys = path_keys(policy)
    stats = {k: s for k in keys if (s := data.draw(stats_mixed(h))) is not None}
    prev = {k: data.draw(previous()) for k in keys if data.draw(st.booleans())}
    stats_copy, prev_copy = dict(stats), dict(prev)
    now = data.draw(st.floats(1000, 2000))
    first: Decision = decide(policy, stats, prev, now)
    again = decide(policy, stats, prev, now)
    shuffled = decide(policy, dict(reversed(list(stats.items()))), dict(reversed(list(prev.items()))), now)
    assert first == again == shuffled
    assert stats == stats_copy and prev == prev_copy
    assert list(first.health) == keys


# ------------------------------------------------------------------------------------------
# end to end on samples: a path whose probes stay inside the thresholds never changes state


@given(
    rnd=st.randoms(use_true_random=False),
    base=st.floats(0, 30),
    spread=st.floats(0, 30),
    n=st.integers(0, 600),
    settle_every=st.integers(1, 12),
    dup_pct=st.integers(0, 30),
)
def test_samples_inside_the_thresholds_never_change_a_state(
    rnd: Random, base: float, spread: float, n: int, settle_every: int, dup_pct: int
) -> None:
    """RTTs within [base, base + spread] ms (p95 <= 60 < 150, jitter <= spread <= 30, MOS >= 4.3),
    no loss, 20 ms apart, replies reordered and duplicated: the path is UP from its first judgement on."""
    window = PathWindow(VOICE.hysteresis.window_s)
    prev: dict[PathKey, PathHealth] = {}
    pending: list[Sample] = []
    judged = False
    for seq in range(n):
        sent = seq * 0.02
        rtt = base + rnd.uniform(0, spread)
        pending.append(Sample(seq, sent, sent + rtt / 1000))
        if rnd.randrange(settle_every) == 0:  # settle what is pending, in any order, some twice
            rnd.shuffle(pending)
            for s in pending:
                window.add(s)
                if rnd.randrange(100) < dup_pct:
                    window.add(s)
            pending.clear()
        d = decide(LAB, {KEY: window.stats(sent)}, prev, sent)
        health = d.health[KEY].health
        if judged:
            assert health is UP and d.transitions == (), d.health[KEY].reasons
        else:
            assert health in (UNK, UP), d.health[KEY].reasons
            judged = health is UP
        prev = d.health
