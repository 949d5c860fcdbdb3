"""Hooks against the real daemon in the reference lab (controller mode): a webhook receiver in the edge's
namespace (stdlib http.server, bgpctl_lab.hook_receiver) and a second webhook whose receiver is blackholed.

During a region blackhole (use1's Connect side, as lab/drills/region-blackhole.yaml: probes die, every BGP
session stays up) the receiver gets a correctly signed ``region.lost`` within 1 s of the daemon's decision,
while the dead hook's failures and drops rise and the edge still moves within the drill's controller bound.

One lab of its own (``hk<pid>``, the plugin's ``controller_lab``), always torn down; run under the lab lock.
The lab's daemon service is replaced by one started with lab.yaml plus a ``hooks:`` section (same run
directory, log and metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bgpctl import events
from bgpctl_lab.poll import eventually
from bgpctl_lab.reference import (
    daemon_proc,
    log_events,
    metric_value,
    wait_converged,
)
from bgpctl_lab.runner import Lab
from tests.daemon import hooks_support
from tests.daemon.hooks_support import (
    BUDGETS,
    blackhole_run,
    hooks_policy,
    start_daemon,
    start_receiver,
)

pytestmark = pytest.mark.lab
LAB_PREFIX = hooks_support.LAB_PREFIX  # the lab plugin reads it from the test module

EDGE_MOVE_LIMIT_S = 1.0  # lab/drills/region-blackhole.yaml, "edge routes media via usw2 only", controller mode
DELIVERY_LIMIT_S = 1.0  # issue 8: within 1 s of the decision


@dataclass
class HookLab:
    lab: Lab
    received: Path  # the receiver's JSON lines


@pytest.fixture(scope="module")
def hlab(controller_lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> HookLab:
    tmp = tmp_path_factory.mktemp("hooks")
    received = tmp / "received.jsonl"
    start_receiver(controller_lab, received)
    start_daemon(controller_lab, hooks_policy(tmp))
    wait_converged(controller_lab, "daemon with hooks converged", budget=BUDGETS["daemon_converged"])
    return HookLab(controller_lab, received)


def test_region_blackhole_sends_a_signed_region_lost_within_1s_and_a_dead_hook_slows_nothing(
    hlab: HookLab, record_property: Any
) -> None:
    lab = hlab.lab

    def dead() -> tuple[float, float]:
        return (
            metric_value(lab, "bgpctl_hook_deliveries_total", hook="dead", result="failed"),
            metric_value(lab, "bgpctl_hook_dropped_total", hook="dead"),
        )

    before = dead()  # the start's route.change events already overflowed its queue of 2
    run = blackhole_run(lab, hlab.received)
    record_property("blackhole_apply_s", round(run.apply_s, 3))
    record_property("edge_move_s", round(run.edge_s, 3))
    record_property("decision_after_fault_s", round(run.decided_s, 3))
    record_property("region_lost_delivery_s", run.delivery_s)
    print(f"{run}: the edge on usw2, region.lost decided and received, in s after the blackhole was in place")
    assert run.delivery_s is not None and 0 <= run.delivery_s <= DELIVERY_LIMIT_S
    assert run.edge_s <= EDGE_MOVE_LIMIT_S, f"edge on usw2 {run.edge_s:.3f} s after the blackhole, with a dead hook"
    eventually(
        "dead hook: more failures and drops counted",
        budget=BUDGETS["dead_hook_counted"],
        probe=dead,
        check=lambda v: [] if v[0] > before[0] and v[1] > before[1] else [f"failed, dropped {v}, before {before}"],
        interval_s=0.5,
    )
    assert metric_value(lab, "bgpctl_hook_deliveries_total", hook="receiver", result="ok") >= 1
    lines = log_events(lab)
    assert any(e["event"] == events.HOOK_DROPPED and e["hook"] == "dead" for e in lines)
    assert any(e["event"] == events.HOOK_FAILED and e["hook"] == "dead" for e in lines)
    assert lab.spawned_alive(daemon_proc(lab))
