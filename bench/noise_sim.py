"""A deterministic simulation of one probed path as the daemon runs it (batched mode), on an exact clock.

Each probe slot: read every reply that arrived, declare lost what timed out, pass on what settled
(:class:`~bgpctl.probe.scheduler.SeqBook`, settle order), send the slot's probe, read again, evaluate
(:class:`~bgpctl.core.controller.Controller`). The network is a function: probe ``i``'s round trip in
seconds, or None when it is lost. Used by ``tests/core/test_noise.py`` (one story per case) and by
``bench/bench_false_alarms.py`` (hours of noise, counted).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bgpctl.core.controller import Controller
from bgpctl.core.types import PathKey, PathStats, Transition
from bgpctl.policy.model import Policy
from bgpctl.probe.protocol import ProbeResult
from bgpctl.probe.scheduler import SeqBook

T0 = 1_800_000_000.0


def single_path(policy: Policy, key: PathKey) -> Policy:
    """``policy`` reduced to the one service and region of ``key`` (the simulation feeds no other path)."""
    service = policy.services[key.service].model_copy(
        update={
            "probe": policy.services[key.service].probe.model_copy(
                update={"targets": {key.region: policy.services[key.service].probe.targets[key.region]}}
            )
        }
    )
    return policy.model_copy(
        update={"services": {key.service: service}, "regions": {key.region: policy.regions[key.region]}}
    )


@dataclass
class Sim:
    """``rtt(i)``: the round trip of probe i in seconds, None = never answered. ``stalls``: (from, to)
    slot ranges in which the daemon's loop did not run (replies queue in the socket meanwhile).
    ``watch(stats)`` is called with the window's stats after every evaluation (for counting)."""

    policy: Policy
    key: PathKey
    rtt: Callable[[int], float | None]
    stalls: list[tuple[int, int]] = field(default_factory=list)
    watch: Callable[[PathStats], None] | None = None

    def run(self, probes: int) -> list[Transition]:
        service = self.policy.services[self.key.service]
        interval, timeout = service.probe.interval_ms / 1000, service.probe.timeout_ms / 1000
        ctl = Controller(self.policy)
        book = SeqBook(timeout)
        arrivals: list[tuple[float, int]] = []  # the socket buffer: (received, seq), a heap
        deadlines: list[tuple[float, int]] = []  # in send order
        out: list[Transition] = []
        stalls = sorted(self.stalls)

        def read(now: float) -> None:
            while arrivals and arrivals[0][0] <= now:
                received, seq = heapq.heappop(arrivals)
                book.reply(ProbeResult(seq, received))
            while deadlines and deadlines[0][0] <= now:
                book.expire(deadlines.pop(0)[1])
            for s in book.take_settled():
                ctl.add(self.key, s)

        seq = 0
        for i in range(probes + math.ceil(timeout / interval) + 2):
            j = bisect.bisect_right(stalls, (i, math.inf)) - 1
            if j >= 0 and stalls[j][0] <= i < stalls[j][1]:
                continue  # no slot runs: nothing is sent or read
            now = T0 + i * interval
            read(now)
            if i < probes:
                book.sent(seq, now)
                ctl.sent(self.key, seq, now)
                deadlines.append((now + timeout, seq))
                r = self.rtt(i)
                if r is not None:
                    heapq.heappush(arrivals, (now + r, seq))
                seq += 1
            step_at = now + 0.001
            read(step_at)  # the daemon reads every reply that arrived before it evaluates
            step = ctl.step(step_at)
            out.extend(t for t in step.transitions if t.key == self.key)
            if self.watch is not None:
                self.watch(step.stats[self.key])
        return out
