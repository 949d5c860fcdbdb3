"""The daemon's evaluation step (pure): samples in, health and plans out."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpctl.core.controller import Controller
from bgpctl.core.types import ChangeKind, Health, PathKey, RouteKey, Sample
from bgpctl.policy.load import load_policy

LAB = Path(__file__).resolve().parents[2] / "policies" / "lab.yaml"
MEDIA_USE1 = PathKey("media", "use1", "interconnect")
T0 = 1_800_000_000.0


def feed(
    ctl: Controller,
    start: float,
    seconds: float,
    *,
    lost: set[PathKey] = frozenset(),  # type: ignore[assignment]
    seq0: int = 0,
) -> float:
    """Every path's probes at its own interval for ``seconds``; RTT 1 ms; ``lost`` paths lose all."""
    t = start
    for key in ctl.keys:
        interval = ctl.policy.services[key.service].probe.interval_ms / 1000
        n = int(seconds / interval)
        for i in range(n):
            sent = start + i * interval
            ctl.add(key, Sample(seq0 + i, sent, None if key in lost else sent + 0.001))
            t = max(t, sent)
    return start + seconds


@pytest.fixture
def ctl() -> Controller:
    return Controller(load_policy(LAB))


def test_nothing_is_planned_before_any_path_is_judged(ctl: Controller) -> None:
    step = ctl.step(T0)
    assert step.plan is None
    assert all(h.health is Health.UNKNOWN for h in ctl.health.values())


def test_first_judgement_plans_every_service(ctl: Controller) -> None:
    now = feed(ctl, T0, 12)
    step = ctl.step(now)
    assert step.plan is not None
    edge = step.plan.desired["edge"]
    # media and signalling active-active: both regions alike; api active-standby: usw2 de-preferred
    assert {(k.prefix, a.next_hop, a.med, len(a.as_path)) for k, a in edge.items()} == {
        ("203.0.113.0/26", "198.18.1.11", 0, 1),
        ("203.0.113.0/26", "198.18.1.12", 0, 1),
        ("203.0.113.64/26", "198.18.1.11", 0, 1),
        ("203.0.113.64/26", "198.18.1.12", 0, 1),
        ("203.0.113.128/26", "198.18.1.11", 0, 1),
        ("203.0.113.128/26", "198.18.1.12", 100, 2),
    }
    # a second step with nothing new plans nothing
    assert ctl.step(now).plan is None


def test_hard_failure_withdraws_in_the_step_that_sees_it(ctl: Controller) -> None:
    now = feed(ctl, T0, 12)
    ctl.step(now)
    down_after = ctl.policy.sla_classes["voice"].hysteresis.down_after_lost
    for i in range(down_after - 1):
        ctl.add(MEDIA_USE1, Sample(10_000 + i, now + i * 0.02, None))
        step = ctl.step(now + i * 0.02 + 0.06)
        # not down yet (one short of the count); the window's loss may already de-prefer it
        assert all(t.new is Health.DEGRADED for t in step.transitions)
    ctl.add(MEDIA_USE1, Sample(10_000 + down_after, now + down_after * 0.02, None))
    step = ctl.step(now + down_after * 0.02 + 0.06)
    assert [str(t.key) for t in step.transitions] == ["media/use1/interconnect"]  # the fast path
    assert step.transitions[0].new is Health.DOWN
    assert step.plan is not None
    withdrawn = {(c.peer, c.key.prefix) for c in step.plan.changes if c.kind is ChangeKind.WITHDRAW}
    assert withdrawn == {("edge", "203.0.113.0/26"), ("tgw-use1", "192.0.2.0/24")}
    # make-before-break: nothing is announced after a withdrawal in the change list
    kinds = [c.kind for c in step.plan.changes]
    assert kinds == sorted(kinds, key=lambda k: k is ChangeKind.WITHDRAW)


def test_both_regions_down_keeps_the_last_routes(ctl: Controller) -> None:
    now = feed(ctl, T0, 12)
    before = ctl.step(now).plan
    assert before is not None
    media = {k for k in ctl.keys if k.service == "media"}
    now = feed(ctl, now, 1, lost=media, seq0=100_000)
    step = ctl.step(now)
    assert {t.key for t in step.transitions if t.new is Health.DOWN} >= media
    assert step.plan is not None
    media_routes = {k: a for k, a in step.plan.desired["edge"].items() if k.prefix == "203.0.113.0/26"}
    assert media_routes == {k: a for k, a in before.desired["edge"].items() if k.prefix == "203.0.113.0/26"}
    assert any("fail-static" in n for n in step.plan.notes)


def test_samples_for_unknown_paths_are_ignored(ctl: Controller) -> None:
    ctl.add(PathKey("nope", "use1", "interconnect"), Sample(1, T0, T0 + 0.001))
    assert PathKey("nope", "use1", "interconnect") not in ctl.windows


def test_unanswered_probes_make_a_path_suspect_before_their_timeout(ctl: Controller) -> None:
    """The fast path: 4 probes without an answer past the adaptive RTO, long before the 300 ms timeout,
    de-prefer the path (make-before-break) without withdrawing it; their timeouts confirm it down."""
    now = feed(ctl, T0, 12)
    ctl.step(now)
    timeout = ctl.policy.services["media"].probe.timeout_ms / 1000
    down_after = ctl.policy.sla_classes["voice"].hysteresis.down_after_lost
    for i in range(down_after):
        ctl.sent(MEDIA_USE1, 20_000 + i, now + i * 0.02)
    judged_at = now + (down_after - 1) * 0.02 + 0.031  # the last probe is just past the 30 ms RTO floor
    assert judged_at - now < timeout
    step = ctl.step(judged_at)
    suspect = [t for t in step.transitions if t.new is Health.SUSPECT]
    assert [t.key for t in suspect] == [MEDIA_USE1]
    assert "past RTO 30 ms" in suspect[0].reasons[0].text
    assert step.plan is not None
    edge = {c.key.path_id: c for c in step.plan.changes if c.peer == "edge" and c.key.prefix == "203.0.113.0/26"}
    assert edge[1].kind is ChangeKind.ANNOUNCE and edge[1].attrs is not None and edge[1].attrs.med == 500
    assert not [c for c in step.plan.changes if c.kind is ChangeKind.WITHDRAW]
    # the timeouts confirm it: down and withdrawn
    for i in range(down_after):
        ctl.add(MEDIA_USE1, Sample(20_000 + i, now + i * 0.02, None))
    step = ctl.step(now + (down_after - 1) * 0.02 + timeout)
    assert [(t.key, t.old, t.new) for t in step.transitions] == [(MEDIA_USE1, Health.SUSPECT, Health.DOWN)]
    assert step.plan is not None
    assert (ChangeKind.WITHDRAW, 1) in {(c.kind, c.key.path_id) for c in step.plan.changes if c.peer == "edge"}


def test_answers_clear_suspicion_at_once(ctl: Controller) -> None:
    """A burst of delay: the suspect probes are answered, late (95 ms) but within the timeout."""
    now = feed(ctl, T0, 12)
    ctl.step(now)
    for i in range(4):
        ctl.sent(MEDIA_USE1, 20_000 + i, now + i * 0.02)
    assert ctl.step(now + 0.091).transitions[0].new is Health.SUSPECT
    ctl.add(MEDIA_USE1, Sample(20_000, now, now + 0.095))
    ctl.add(MEDIA_USE1, Sample(20_001, now + 0.02, now + 0.1))
    # 20_002 and 20_003 are still out, but not past the RTO, which the 95 ms answer has raised
    step = ctl.step(now + 0.1)
    assert step.stats[MEDIA_USE1].rto_ms == pytest.approx(95.0)
    assert [(t.old, t.new) for t in step.transitions] == [(Health.SUSPECT, Health.UP)]
    assert "suspicion cleared" in step.transitions[0].reasons[0].text
    assert step.plan is not None  # preferred again: the route is back to MED 0
    back = [c for c in step.plan.changes if c.peer == "edge" and c.key == RouteKey("203.0.113.0/26", 1)]
    assert len(back) == 1 and back[0].attrs is not None and back[0].attrs.med == 0
