"""Outside signals end to end in the reference lab (issue 14, point 2), controller mode.

One lab of its own (``controller_lab``, ``sg<pid>``), always torn down; run under the lab lock. The lab
policy's ``relay`` signal (policies/lab.yaml) polls ``http://198.18.1.1:8080/health.json`` every second;
the lab serves it (lab/services.yaml: ``edge/signal-relay``, :mod:`bgpctl_lab.signal_relay`, a real stdlib
HTTP server on the edge node) from a directory in the edge's node directory, saying nothing; the test
changes what it says by writing that directory, and stops the service to make the relay unreachable (the
module's teardown starts it again, saying nothing).

1. The relay says use1 is down: within a named budget the daemon marks use1's three paths DOWN with the
   relay's reason (status JSON and text, the log), the TGWs' and the edge's FRR hold no use1 route any more
   (``show bgp ... json``, ``show ip route ... json``), and ``status`` shows the signal fresh with its mark.
2. The relay's document goes stale (``generated_at`` older than ``max_age_s``): a ``signal.ignored``
   warning and ``bgpctl_signal_state{state="stale"}``; then the relay stops (nobody listens): a warning
   with reason ``connect`` and its count in ``bgpctl_signal_errors_total``. The probes decide: use1 comes
   back through the rise rules (hold-down from the last step that saw the mark, then rise_s) and the edge
   uses both regions again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bgpctl import events as names
from bgpctl.policy.load import load_policy
from bgpctl.policy.model import HttpSignal
from bgpctl_lab import runner
from bgpctl_lab.poll import eventually
from bgpctl_lab.reference import (
    AGENTS,
    EDGE_ADDR,
    USW2,
    converged_problems,
    event_ts,
    log_events,
    metric_value,
    nexthop_problems,
    paths_from_cr,
    wait_converged,
)
from bgpctl_lab.reference import ask_daemon as ask
from bgpctl_lab.reference import bgpctl_cli as bgpctl
from bgpctl_lab.runner import Lab
from bgpctl_lab.signal_relay import NO_SIGNAL, write_document
from tests.control.support import schema_errors
from tests.lab.helpers import LAB_POLICY

pytestmark = pytest.mark.lab

LAB_PREFIX = "sg"
POLICY = load_policy(LAB_POLICY)
RELAY = POLICY.signals["relay"]
assert isinstance(RELAY, HttpSignal) and RELAY.url == f"http://{EDGE_ADDR}:8080/health.json"
RELAY_TAG = "service:signal-relay"  # lab/services.yaml
USE1_PATHS = {f"{s}/use1/interconnect" for s in POLICY.services}
REASON = "lab: AWS Health event, us-east-1 Amazon Connect elevated errors"
HOLD = max(POLICY.sla_classes[s.sla].hysteresis.hold_down_s for s in POLICY.services.values())
RISE = max(POLICY.sla_classes[s.sla].hysteresis.rise_s for s in POLICY.services.values())

# Named budgets (seconds), generous for a loaded machine.
BUDGETS: dict[str, float] = {
    "relay_fresh": 10.0,  # the relay serves, the daemon's next poll (every interval_s 1) reads it
    # from writing the document to the edge without use1: one poll (1 s), one evaluation (<= 1 s), BGP to FRR
    "edge_on_usw2": 10.0,
    "ignored": 10.0,  # stale: max_age_s after generated_at (already past) -> next evaluation; refused: next poll
    # use1 back: the hold-down counts from the last step that saw the mark, then rise_s of clean probes
    "use1_back": HOLD + RISE + 20.0,
}


@pytest.fixture(scope="module")
def relay(controller_lab: Lab) -> Iterator[Path]:
    """The directory the lab's relay (198.18.1.1:8080) serves; afterwards it says nothing again and runs."""
    (proc,) = [p for p in controller_lab.spawned() if p.node == "edge" and p.tag == RELAY_TAG]
    root = Path(proc.argv[proc.argv.index("--directory") + 1])
    serve(root, {"regions": {"use1": {"state": "ok"}, "usw2": {"state": "ok"}}})
    try:
        yield root
    finally:
        serve(root, NO_SIGNAL)
        runner.start_services(controller_lab)


serve = write_document  # replace the relay's document atomically (the server never serves half a file)


def signal_row(status: dict[str, Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [s for s in status["signals"] if s["name"] == "relay"]
    assert len(rows) == 1, status["signals"]
    return rows[0]


def marked_problems(lab: Lab, status: dict[str, Any]) -> list[str]:
    """[] when status has use1's paths DOWN for the relay's reason, the signal fresh with its mark, and
    every FRR hop without use1: the edge via usw2 only, tgw-use1 without the agents' prefix from cr."""
    problems = schema_errors("status", status)
    row = signal_row(status)
    if row["state"] != "fresh" or [m["reason"] for m in row["marks"]] != [REASON]:
        problems.append(f"signal row {row}")
    for p in status["paths"]:
        if p["path"] in USE1_PATHS and (p["health"] != "down" or not any(REASON in r for r in p["reasons"])):
            problems.append(f"{p['path']}: {p['health']} {p['reasons']}")
    if problems:
        return problems
    problems += nexthop_problems(lab, "edge", {USW2})
    if paths_from_cr(lab, "tgw-use1", AGENTS):
        problems.append(f"tgw-use1 still holds {AGENTS} from cr")
    if not paths_from_cr(lab, "tgw-usw2", AGENTS):
        problems.append(f"tgw-usw2 lost {AGENTS}")
    return problems


def test_the_relay_saying_use1_down_moves_every_hop_to_usw2_with_the_relays_reason(
    controller_lab: Lab, relay: Path, record_property: Any
) -> None:
    eventually(
        "the relay read fresh, saying nothing",
        budget=BUDGETS["relay_fresh"],
        probe=lambda: signal_row(ask(controller_lab, "status")),
        check=lambda r: [] if r["state"] == "fresh" and r["marks"] == [] else [f"relay {r}"],
        interval_s=0.2,
    )
    assert converged_problems(controller_lab) == []
    t0 = time.time()
    serve(relay, {"regions": {"use1": {"state": "down", "reason": REASON}}})
    w = eventually(
        "use1 down for the relay's reason, no use1 route on any FRR hop",
        budget=BUDGETS["edge_on_usw2"],
        probe=lambda: ask(controller_lab, "status", "-n", "50"),
        check=lambda s: marked_problems(controller_lab, s),
        interval_s=0.1,
    )
    record_property("relay_to_edge_s", round(time.time() - t0, 2))
    text = bgpctl(controller_lab, "status")
    assert text.returncode == 0, text.stderr
    assert "Signals:" in text.stdout and f"use1 down: {REASON}" in text.stdout
    downs = [d for d in w.value["decisions"] if d["event"] == names.PATH_HEALTH and d["new"] == "down"]
    assert {d["path"] for d in downs} >= USE1_PATHS
    events = log_events(controller_lab)
    told = [e for e in events if e["event"] == names.SIGNAL_STATE and e["signal"] == "relay" and e["marks"]]
    assert told and told[-1]["marks"] == [f"signal relay: region use1 down: {REASON}"]
    health = [e for e in events if e["event"] == names.PATH_HEALTH and e["path"] in USE1_PATHS and e["new"] == "down"]
    assert {e["path"] for e in health} == USE1_PATHS
    assert all(e["reasons"] == [f"signal relay: region use1 down: {REASON}"] for e in health)


def _ignored_since(lab: Lab, t0: float, reason: str) -> list[dict[str, Any]]:
    return [
        e
        for e in log_events(lab)
        if e["event"] == names.SIGNAL_IGNORED
        and e.get("reason") == reason
        and e["level"] == "warning"
        and event_ts(e) >= t0
    ]


def test_a_stale_then_unreachable_relay_is_ignored_and_the_probes_bring_use1_back(
    controller_lab: Lab, relay: Path, record_property: Any
) -> None:
    eventually(
        "use1 marked down (the previous test)",
        budget=BUDGETS["edge_on_usw2"],
        probe=lambda: ask(controller_lab, "status"),
        check=lambda s: marked_problems(controller_lab, s),
    )
    t0 = time.time()
    assert RELAY.max_age_s is not None
    old = t0 - RELAY.max_age_s - 30
    serve(relay, {"generated_at": old, "regions": {"use1": {"state": "down", "reason": REASON}}})
    stale = eventually(
        "the relay's document stale: ignored with a warning and the metric",
        budget=BUDGETS["ignored"],
        probe=lambda: (signal_row(ask(controller_lab, "status")), _ignored_since(controller_lab, t0, "stale")),
        check=lambda v: [] if v[0]["state"] == "stale" and v[0]["marks"] == [] and v[1] else [f"{v}"],
        interval_s=0.2,
    )
    assert metric_value(controller_lab, "bgpctl_signal_state", signal="relay", state="stale") == 1.0
    assert metric_value(controller_lab, "bgpctl_signal_errors_total", signal="relay", reason="stale") >= 1.0

    refused_before = metric_value(controller_lab, "bgpctl_signal_errors_total", signal="relay", reason="connect")
    t1 = time.time()
    assert controller_lab.kill_spawned(tag=RELAY_TAG)  # the lab's relay stopped: nobody listens on 198.18.1.1:8080
    w = eventually(
        "the relay unreachable: ignored with a warning and the metric",
        budget=BUDGETS["ignored"],
        probe=lambda: (signal_row(ask(controller_lab, "status")), _ignored_since(controller_lab, t1, "connect")),
        check=lambda v: [] if v[0]["state"] == "error" and v[1] else [f"{v}"],
        interval_s=0.2,
    )
    assert "cannot connect" in w.value[0]["error"] and "cannot connect" in w.value[1][0]["error"]
    assert metric_value(controller_lab, "bgpctl_signal_state", signal="relay", state="error") == 1.0
    assert metric_value(controller_lab, "bgpctl_signal_errors_total", signal="relay", reason="connect") > refused_before

    back = wait_converged(
        controller_lab, "use1 back on every hop, by the probes' rise rules", budget=BUDGETS["use1_back"], interval_s=0.5
    )
    record_property("use1_back_s", round(back.elapsed_s, 1))
    # the mark was last counted by the step before the stale warning's: from then on the hold-down runs out
    # and rise_s of clean probes (no clean run starts while a mark stands), each path by its SLA class
    unmarked = event_ts(stale.value[1][0])
    status = ask(controller_lab, "status", "-n", "200")
    assert all(p["health"] == "up" for p in status["paths"] if p["path"] in USE1_PATHS), status["paths"]
    ups = {
        d["path"]: d
        for d in status["decisions"]
        if d["event"] == names.PATH_HEALTH and d["path"] in USE1_PATHS and d["new"] == "up"
    }
    assert set(ups) == USE1_PATHS
    for path, d in ups.items():
        h = POLICY.sla_classes[POLICY.services[path.split("/")[0]].sla].hysteresis
        assert d["at"] >= unmarked - 1.0 + max(h.hold_down_s, h.rise_s), (path, d["at"] - unmarked)
        assert d["reasons"][0].startswith("clean for "), d  # the rise rule, on the probes' measurements
