"""The hooks lab scenario (the daemon with hooks, a receiver on the edge, a region blackholed) shared by
tests/daemon/test_hooks_lab.py and bench/bench_hooks_lab.py."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bgpctl import events
from bgpctl.hooks.signature import HEADER, verify
from bgpctl_lab import faults
from bgpctl_lab import netns as labns
from bgpctl_lab.hook_receiver import read_requests
from bgpctl_lab.poll import eventually
from bgpctl_lab.reference import (
    DAEMON_TAG,
    MEDIA,
    USE1,
    USW2,
    daemon_proc,
    log_events,
    rfc3339,
    route_nexthops,
)
from bgpctl_lab.runner import Lab
from tests.control.support import schema_errors
from tests.lab.helpers import LAB_POLICY

LAB_PREFIX = "hk"


BUDGETS = {
    "daemon_converged": 45.0,  # the replaced daemon's routes are on every FRR peer again
    "receiver_ready": 10.0,
    "edge_on_usw2": 5.0,  # generous, to measure; the test then asserts the drill's 1 s
    "region_lost_received": 5.0,  # generous, to measure; the test then asserts the 1 s of issue 8
    "dead_hook_counted": 15.0,  # timeout 1 s x 2 attempts per event: the first failure and drops
}


def hooks_policy(tmp: Path) -> Path:
    key = tmp / "hook.key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    policy = tmp / "lab-hooks.yaml"
    policy.write_text(
        LAB_POLICY.read_text()
        + f"""
hooks:
  receiver:
    kind: webhook
    url: http://{RECEIVER}/bgpctl
    secret: {{ file: {key} }}
    events: [region.lost, region.regained, path.state]
    timeout_s: 2
    retries: 2
    backoff_s: 0.2
  dead:
    kind: webhook
    url: http://{DEAD}/bgpctl
    secret: {{ file: {key} }}
    timeout_s: 1
    retries: 1
    backoff_s: 0.1
    queue: 2
"""
    )
    return policy


def start_daemon(lab: Lab, policy: Path) -> int:
    """The lab's daemon service, as lab/services.yaml starts it, but with ``policy``; returns once the new
    daemon's hooks run and its RIB is complete (the peers keep the old one's routes meanwhile: graceful
    restart, so the edge alone cannot tell the new daemon is judging)."""
    old = daemon_proc(lab)
    argv = list(old.argv)
    argv[argv.index("--policy") + 1] = str(policy)
    assert lab.kill_spawned(tag=DAEMON_TAG, grace=10.0) == [old.pid]  # SIGTERM: routes stay (graceful restart)
    eventually(
        "old daemon gone", budget=10.0, probe=lambda: labns.alive(old.pid), check=lambda a: ["alive"] if a else []
    )
    seen = len(log_events(lab))
    pid = lab.spawn("cr", argv, tag=DAEMON_TAG, log_name="daemon.log")

    def not_ready() -> list[str]:
        new = {e["event"] for e in log_events(lab)[seen:]}
        return [f"no {e} yet" for e in (events.HOOK_STARTED, events.DAEMON_RIB_COMPLETE) if e not in new]

    eventually("new daemon judging with hooks", budget=BUDGETS["daemon_converged"], probe=not_ready, check=list)
    return pid


def start_receiver(lab: Lab, received: Path) -> int:
    argv = [sys.executable, "-m", "bgpctl_lab.hook_receiver", "--listen", RECEIVER, "--out", str(received)]
    pid = lab.spawn("edge", [*argv, "--seconds", "3600"], tag="hook-receiver", log_name="hook-receiver.log")
    eventually(
        "receiver listening",
        budget=BUDGETS["receiver_ready"],
        probe=(lab.node_dir("edge") / "hook-receiver.log").read_text,
        check=lambda text: [] if events.RECEIVER_READY in text else ["not ready"],
        interval_s=0.1,
    )
    return pid


@dataclass(frozen=True)
class Run:
    apply_s: float  # how long setting the blackhole took (nft in tgw-use1's namespace; slow under load)
    edge_s: float  # blackhole in place -> the edge routes media via usw2 only
    decided_s: float  # blackhole in place -> the daemon's decision (region.lost's time)
    delivery_s: float | None  # decision -> the receiver had the signed event (None: no receiver)
    edge_polls: int


def blackhole_run(lab: Lab, received: Path | None) -> Run:
    """Blackhole use1's Connect side, measure the edge's move and (with a receiver) the signed region.lost's
    delivery, then clear the fault. Everything but the timings is asserted here."""
    assert route_nexthops(lab, "edge", MEDIA) == {USE1, USW2}
    fault_at = time.time()
    faults.blackhole_node(lab, "tgw-use1", "eth2", True)  # use1's Connect side: probes die, BGP stays up
    # the times are taken from when the blackhole is surely in place: setting it runs nft through `ip netns
    # exec`, whose time varies with the load (it is reported apart: the daemon may see the fault during it)
    applied = time.time()
    try:
        moved = eventually(
            "edge routes media via usw2 only",
            budget=BUDGETS["edge_on_usw2"],
            probe=lambda: route_nexthops(lab, "edge", MEDIA),
            check=lambda hops: [] if hops == {USW2} else [f"via {sorted(hops)}"],
            interval_s=0.02,
        )
        edge_s = time.time() - applied
        decided = decision(lab, fault_at)
        if received is None:
            return Run(applied - fault_at, edge_s, decided - applied, None, moved.polls)
        got = eventually(
            "receiver got region.lost",
            budget=BUDGETS["region_lost_received"],
            probe=lambda: region_lost(received, fault_at),
            check=lambda found: [] if found else ["nothing yet"],
            interval_s=0.02,
        )
        (req,) = got.value
        body = req["body"].encode()
        event = json.loads(body)
        assert verify(KEY.encode(), body, req["headers"][HEADER], now=time.time()) > 0
        assert req["headers"]["X-Bgpctl-Delivery"] == event["id"]
        assert schema_errors("hook-event", event) == []
        assert event["payload"]["region"] == "use1" and event["payload"]["usable_regions"] == ["usw2"]
        assert abs(rfc3339(event["time"]) - decided) < 0.05, (event["time"], decided)
        delivery_s = req["received"] - rfc3339(event["time"])
        return Run(applied - fault_at, edge_s, decided - applied, delivery_s, moved.polls)
    finally:
        faults.clear_node(lab, "tgw-use1", "eth2")


KEY = "lab-hook-key-0123456789"


RECEIVER = "198.18.1.1:8081"  # the edge's address on the interconnect LAN (8080: the lab's signal relay)


DEAD = "198.18.1.250:8080"  # nobody has this address: ARP fails, every attempt runs into its timeout


def region_lost(received: Path, since: float) -> list[dict[str, Any]]:
    return [
        r
        for r in read_requests(received)
        if r["received"] >= since and json.loads(r["body"])["type"] == events.REGION_LOST
    ]


def decision(lab: Lab, fault_at: float) -> float:
    """When the daemon decided use1 lost, from its log: the step where the last of use1's paths left up
    (its path.health line), waited for (the log is flushed line by line)."""

    def left_up() -> dict[str, float]:
        first: dict[str, float] = {}
        for e in log_events(lab):
            at = rfc3339(e["timestamp"]) if "timestamp" in e else 0.0
            use1 = e["event"] == events.PATH_HEALTH and e["path"].split("/")[1] == "use1"
            if use1 and at >= fault_at and e["old"] == "up":
                first.setdefault(e["path"], at)
        return first

    w = eventually(
        "every use1 path left up in the daemon's log",
        budget=BUDGETS["region_lost_received"],
        probe=left_up,
        check=lambda first: [] if len(first) == 3 else [f"only {sorted(first)}"],
        interval_s=0.05,
    )
    return max(w.value.values())
