"""A pure controller fed synthetic probes on a clock of its own, for the tests of the controller's
outside inputs (TGW sessions: test_session_down.py; outside signals: test_signal_rule.py).

The same inputs are written as a daemon recording (header, sample, session, signal and step lines, in
the order fed), so a test can replay them and compare the decisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from bgpctl.core.controller import Controller
from bgpctl.core.recording import (
    Schedule,
    header_line,
    read_recording,
    sample_line,
    session_line,
    signal_line,
    step_line,
)
from bgpctl.core.replay import ReplaySummary, replay
from bgpctl.core.types import Health, PathHealth, PathKey, Sample, SignalMark
from bgpctl.policy.load import load_policy
from bgpctl.policy.model import Hysteresis, Policy

LAB = load_policy(Path(__file__).resolve().parents[2] / "policies" / "lab.yaml")
T0 = 1_800_000_000.0
STEP_S = 0.5
TIMEOUT_S = 0.3  # the recording's probe timeout (header schedule)

Steps = list[tuple[float, tuple[tuple[str, str], ...]]]


def region_paths(policy: Policy, region: str) -> set[PathKey]:
    """Every service's interconnect path in ``region``."""
    return {PathKey(s, region, "interconnect") for s in policy.services}


def hysteresis(key: PathKey, policy: Policy = LAB) -> Hysteresis:
    return policy.sla_classes[policy.services[key.service].sla].hysteresis


class FedRun:
    """A controller fed probes on every path at each path's interval (answered in 1 ms, or lost for the
    regions in ``losing``), stepped every STEP_S. A probe is fed once ``feed_after_s`` has passed since
    it was sent (1 ms: as soon as its answer is in; TIMEOUT_S: once a lost one is known lost)."""

    def __init__(self, policy: Policy = LAB, *, feed_after_s: float = TIMEOUT_S) -> None:
        self.ctl = Controller(policy, {})
        self.now = T0
        self.seq = 0
        self.feed_after_s = feed_after_s
        self.losing: set[str] = set()
        self.losing_keys: set[PathKey] = set()  # single measurements lost (e.g. only a path's IPv6)
        self.next_probe = dict.fromkeys(self.ctl.keys, T0)
        self.lines = [
            header_line(
                {k: Schedule(policy.services[k.service].probe.interval_ms / 1000, TIMEOUT_S) for k in self.ctl.keys},
                steps=True,
                negotiated=True,
            )
        ]
        self.steps: Steps = []
        self.first: dict[tuple[PathKey, Health], float] = {}  # when each path first went to each state
        self.why: dict[tuple[PathKey, Health], tuple[str, ...]] = {}  # the reasons' metrics of that first change

    def session(self, peer: str, up: bool | None) -> bool:
        changed = self.ctl.session(peer, up)
        if changed:
            self.lines.append(session_line(peer, up, self.now))
        return changed

    def signal(self, name: str, marks: tuple[SignalMark, ...]) -> bool:
        changed = self.ctl.signal(name, marks)
        if changed:
            self.lines.append(signal_line(name, marks, self.now))
        return changed

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now += STEP_S
            for key in self.ctl.keys:
                interval = self.ctl.policy.services[key.service].probe.interval_ms / 1000
                while self.next_probe[key] + self.feed_after_s <= self.now:
                    sent = self.next_probe[key]
                    self.seq += 1
                    sample = Sample(
                        self.seq, sent, None if key.region in self.losing or key in self.losing_keys else sent + 0.001
                    )
                    self.ctl.add(key, sample)
                    self.lines.append(sample_line(key, sample))
                    self.next_probe[key] = sent + interval
            self.lines.append(step_line(self.now))
            step = self.ctl.step(self.now)
            self.steps.append((self.now, tuple((str(t.key), t.new.value) for t in step.transitions)))
            for t in step.transitions:
                self.first.setdefault((t.key, t.new), self.now)
                self.why.setdefault((t.key, t.new), tuple(r.metric for r in t.reasons))

    def forget_firsts(self) -> None:
        self.first.clear()
        self.why.clear()

    def health(self, key: PathKey) -> PathHealth:
        return self.ctl.health[key]

    def edge_hops(self) -> set[str]:
        assert self.ctl.last_plan is not None
        return {a.next_hop for a in self.ctl.last_plan.desired["edge"].values()}


def replayed_steps(lines: Iterable[str], policy: Policy = LAB) -> tuple[Steps, ReplaySummary]:
    """The steps with transitions that a replay of ``lines`` makes, in FedRun.steps' shape, and its summary."""
    summary = ReplaySummary()
    out = [
        (e.at, tuple((str(t.key), t.new.value) for t in e.transitions))
        for e in replay(policy, read_recording(list(lines)), None, summary)
        if e.transitions
    ]
    return out, summary


def replay_takes_down(lines: Iterable[str], policy: Policy = LAB) -> bool:
    """Whether a replay of ``lines`` takes any path down."""
    return any(t.new is Health.DOWN for e in replay(policy, read_recording(list(lines))) for t in e.transitions)
