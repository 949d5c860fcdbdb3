"""The daemon end to end in the reference lab (controller mode): every hop, and what survives restarts.

One lab per module (``dm<pid>``, mode controller: the daemon runs on cr as the lab's ``daemon``
service), always torn down. The tests run in file order and share it:

1. after ``up``: the TGWs hold the agents' prefix from cr with the policy's communities, the edge
   holds both regions (ECMP) for the active-active groups and use1 best for the active-standby API
   group, and the call meter is answered by both regions;
2. ExaBGP SIGKILLed under the daemon: the edge's kernel routes never disappear (polled every 20 ms)
   and the sessions come back with End-of-RIB (graceful restart, manual EoR);
3. the daemon itself stopped and started again: the new daemon pins its probes again (AsyncIPRoute)
   and converges; no forwarding hop lost a route meanwhile and a call stream across it lost nothing;
4. the metrics endpoint (inside cr's namespace) serves the route-change counter, path health and state,
   routes per peer, every family of the registry, and no alert rule fires on it (promtool);
5. a region's Connect side blackholed: the daemon marks its paths down, says why (metric >=
   threshold) in the log and in the metrics, the edge stops using that region, and the alert rules on
   the page fire "region lost" for each service via that region and nothing else;
6. every line of the daemon's log is JSON, and every decision names the metric and threshold.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pyroute2 import IPRoute

from bgpctl import events as names
from bgpctl.daemon.sinks import Metrics
from bgpctl_lab import faults, runner
from bgpctl_lab import netns as labns
from bgpctl_lab.meter import run_meter
from bgpctl_lab.meter_report import MeterReport
from bgpctl_lab.poll import eventually
from bgpctl_lab.pytest_plugin import own_reference_lab
from bgpctl_lab.reference import (
    AGENTS,
    API,
    CR,
    DAEMON_TAG,
    FRR_PEERS_OF_CR,
    MEDIA,
    SIGNALLING,
    USE1,
    USW2,
    WATCHED,
    daemon_log,
    daemon_proc,
    event_ts,
    exabgp_children,
    exabgp_in,
    log_events,
    metric_samples,
    metrics_text,
    nexthop_problems,
    tgw_problems,
    wait_converged,
)
from bgpctl_lab.route_watch import NextHops, nexthops_of
from bgpctl_lab.runner import Lab
from tests import promtool
from tests.daemon.support import StaleSeen, connections, pins_problems
from tests.lab.helpers import TOPOLOGY, json_mismatches

pytestmark = pytest.mark.lab

PATHS = [(s, r, "interconnect") for s in ("media", "signalling", "api") for r in ("use1", "usw2")]

# Named budgets (seconds): a slow machine shows which expectation was too tight.
BUDGETS: dict[str, float] = {
    "daemon_converged": 30.0,  # the daemon's routes are on every FRR peer (first start, or after a restart)
    "exabgp_back": 20.0,  # ExaBGP restarted by the speaker, sessions Established, EoR received
    "daemon_stopped": 10.0,  # a SIGTERMed daemon (and its ExaBGP) are gone
    "metrics_up": 10.0,  # the metrics endpoint answers
    "path_down": 5.0,  # a blackholed region's paths are down and withdrawn at the edge
}
ROUTE_POLL_S = 0.02
# The edge hashes flows on their ports (fib_multipath_hash_policy 1): with 8 flows all land on one next hop
# once in 128 labs (seen), with 16 once in 32768 (tests/lab/test_meter_lab.py uses 16 too).
CALL_FLOWS = 16
LAB_PREFIX = "dm"


# ------------------------------------------------------------------------------------------ the lab


@pytest.fixture(scope="module")
def clab() -> Iterator[Lab]:
    with own_reference_lab(LAB_PREFIX, TOPOLOGY, mode="controller") as lab:
        yield lab


# ------------------------------------------------------------------------------------------ route watch


class KernelRouteWatch:
    """Polls the kernel routes of several nodes (netlink, in their namespaces) every ``interval_s`` in a
    thread. ``missing``: the polls where a watched prefix had no route at all on a node; ``changed``: the
    polls where a node's next hops differed from the first poll (e.g. one of two ECMP next hops gone)."""

    def __init__(self, lab: Lab, watched: dict[str, tuple[str, ...]], interval_s: float = ROUTE_POLL_S) -> None:
        self.ns = {node: lab.netns(node) for node in watched}
        self.watched, self.interval_s = watched, interval_s
        self.polls = 0
        self.missing: list[tuple[float, str, dict[str, NextHops]]] = []
        self.changed: list[tuple[float, str, dict[str, NextHops]]] = []
        self.longest_poll_gap_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="route-watch", daemon=True)
        self._error: BaseException | None = None
        self._t0 = 0.0

    def _run(self) -> None:
        iprs = {}
        try:
            for node, ns in self.ns.items():
                iprs[node] = IPRoute(netns=ns, flags=0)
            baseline: dict[str, dict[str, NextHops]] = {}
            last = time.monotonic()
            while not self._stop.is_set():
                for node, ipr in iprs.items():
                    hops = nexthops_of(ipr.get_routes(family=2), self.watched[node])
                    at = round(time.monotonic() - self._t0, 3)
                    if any(not h for h in hops.values()):
                        self.missing.append((at, node, hops))
                    if baseline.setdefault(node, hops) != hops:
                        self.changed.append((at, node, hops))
                now = time.monotonic()
                self.longest_poll_gap_s = max(self.longest_poll_gap_s, now - last)
                last = now
                self.polls += 1
                self._stop.wait(self.interval_s)
        except BaseException as e:  # reported by __exit__
            self._error = e
        finally:
            for ipr in iprs.values():
                ipr.close()

    def summary(self) -> dict[str, Any]:
        return {
            "polls": self.polls,
            "missing": len(self.missing),
            "changed": len(self.changed),
            "longest_poll_gap_ms": round(self.longest_poll_gap_s * 1000, 1),
            "first_missing": self.missing[:1],
            "first_changed": self.changed[:1],
        }

    def __enter__(self) -> KernelRouteWatch:
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._error is not None and et is None:
            raise AssertionError(f"route watch failed: {self._error!r}") from self._error


# every hop that forwards calls: the edge towards Connect, each TGW back towards the agents
FORWARDING = {"edge": WATCHED, "tgw-use1": (AGENTS,), "tgw-usw2": (AGENTS,)}


# ------------------------------------------------------------------------------------------ tests


def test_after_up_every_hop_holds_the_daemons_routes_and_calls_reach_both_regions(
    clab: Lab, record_property: Any
) -> None:
    w = wait_converged(clab, "daemon converged after up", budget=BUDGETS["daemon_converged"])
    record_property("converged_after_up_s", round(w.elapsed_s, 2))
    with IPRoute(netns=clab.netns("edge"), flags=0) as ipr:  # what forwarding uses: the kernel FIB
        kernel = nexthops_of(ipr.get_routes(family=2), WATCHED)
    assert kernel == {MEDIA: (USE1, USW2), SIGNALLING: (USE1, USW2), API: (USE1,)}
    assert pins_problems(clab) == []

    r = run_meter(clab.netns("agents"), "203.0.113.10", 9000, flows=CALL_FLOWS, seconds=2)
    record_property("meter", {"sent": r.sent, "lost": r.lost, "regions": {k: v.answered for k, v in r.regions.items()}})
    assert set(r.regions) == {"use1", "usw2"}, r.regions
    assert all(v.answered > 0 for v in r.regions.values())
    assert r.lost == 0 and r.send_errors == 0, (r.lost, r.send_errors)


def test_exabgp_killed_routes_stay_and_sessions_come_back(clab: Lab, record_property: Any) -> None:
    daemon = daemon_proc(clab)
    (old,) = exabgp_children(daemon.pid)
    before = connections(clab)
    with KernelRouteWatch(clab, FORWARDING) as watch:
        os.kill(old, signal.SIGKILL)
        stale = StaleSeen(before)
        w = eventually(
            "sessions back after ExaBGP was killed",
            budget=BUDGETS["exabgp_back"],
            probe=lambda: clab,
            check=stale,
            interval_s=0.1,
        )
        wait_converged(clab, "routes as before", budget=BUDGETS["daemon_converged"])
    record_property(
        "exabgp_kill",
        {**watch.summary(), "sessions_back_s": round(w.elapsed_s, 2), "stale_seen_on": sorted(stale.nodes)},
    )
    print(
        f"ExaBGP kill: {watch.summary()}; sessions back with EoR in {w.elapsed_s:.2f} s; stale (GR) seen "
        f"on {sorted(stale.nodes)}"
    )
    assert watch.polls >= 20, "the watch must have run through the restart"
    assert watch.missing == [], f"a forwarding hop lost routes during the ExaBGP restart: {watch.missing[:5]}"
    assert watch.changed == [], f"next hops changed during the ExaBGP restart: {watch.changed[:5]}"
    assert daemon_proc(clab).pid == daemon.pid  # the daemon itself never stopped
    (new,) = exabgp_children(daemon.pid)
    assert new != old
    assert exabgp_in(clab) == [new], "exactly one ExaBGP in cr: the daemon's new child"


@dataclass
class Restart:
    """What the daemon-restart test measured, for the test after it."""

    watch: KernelRouteWatch
    meter: MeterReport


RESTARTS: list[Restart] = []


def test_daemon_restart_converges_again(clab: Lab, record_property: Any) -> None:
    old = daemon_proc(clab)
    old_exabgp = exabgp_children(old.pid)
    before = connections(clab)
    with KernelRouteWatch(clab, FORWARDING) as watch, ThreadPoolExecutor(1) as pool:
        # a bounded call stream from the agents across the whole restart
        call = pool.submit(run_meter, clab.netns("agents"), "203.0.113.10", 9000, flows=CALL_FLOWS, seconds=4)
        t0 = time.monotonic()
        assert clab.kill_spawned(tag=DAEMON_TAG) == [old.pid]
        eventually(
            "old daemon and its ExaBGP gone",
            budget=BUDGETS["daemon_stopped"],
            probe=lambda: [p for p in [old.pid, *old_exabgp] if labns.alive(p)],
            expect=[],
        )
        stopped_s = time.monotonic() - t0
        runner.up(TOPOLOGY, name=clab.name, mode="controller")  # restarts the lab's services
        new = daemon_proc(clab)
        stale = StaleSeen(before)
        w = eventually(
            "sessions back after the daemon restart",
            budget=BUDGETS["exabgp_back"],
            probe=lambda: clab,
            check=stale,
            interval_s=0.1,
        )
        wait_converged(clab, "routes as before", budget=BUDGETS["daemon_converged"])
        converged_s = time.monotonic() - t0
        meter = call.result(timeout=30)
    RESTARTS.append(Restart(watch, meter))
    record_property(
        "daemon_restart",
        {
            **watch.summary(),
            "stopped_s": round(stopped_s, 2),
            "sessions_back_s": round(w.elapsed_s, 2),
            "converged_s": round(converged_s, 2),
            "meter_sent": meter.sent,
            "meter_lost": meter.lost,
            "longest_gap_ms": meter.longest_gap_ms,
            "stale_seen_on": sorted(stale.nodes),
        },
    )
    print(
        f"daemon restart: {watch.summary()}; old daemon gone in "
        f"{stopped_s:.2f} s; sessions back with EoR {w.elapsed_s:.2f} s after the new start; converged "
        f"{converged_s:.2f} s after the stop; calls: {meter.lost} of {meter.sent} lost, longest gap "
        f"{meter.longest_gap_ms:.1f} ms; stale (GR) seen on {sorted(stale.nodes)}"
    )
    # the new daemon: one ExaBGP, its probes pinned again (AsyncIPRoute), every path judged again
    assert new.pid != old.pid
    assert exabgp_in(clab) == exabgp_children(new.pid) and len(exabgp_children(new.pid)) == 1
    assert pins_problems(clab) == []
    events = log_events(clab)
    starts = [i for i, e in enumerate(events) if e.get("event") == names.DAEMON_START]
    assert [events[i]["pid"] for i in starts][-2:] == [old.pid, new.pid]
    judged = {e["path"] for e in events[starts[-1] :] if e.get("event") == names.PATH_HEALTH and e["new"] == "up"}
    assert judged == {"/".join(p) for p in PATHS}


def test_daemon_restart_kept_every_forwarding_route_and_every_call() -> None:
    """Graceful restart across the daemon restart above: no forwarding hop (the edge towards Connect, the
    TGWs back towards the agents) lost a route at any 20 ms poll, and the call stream lost nothing."""
    if not RESTARTS:
        pytest.skip("test_daemon_restart_converges_again did not get as far as restarting the daemon")
    watch, meter = RESTARTS[-1].watch, RESTARTS[-1].meter
    assert watch.polls >= 20, "the watch must have run through the restart"
    assert watch.missing == [], (
        f"{len(watch.missing)} of {watch.polls} polls found a forwarding hop without "
        f"a route during the daemon restart, first: {watch.missing[:4]}"
    )
    assert meter.lost == 0 and set(meter.regions) == {"use1", "usw2"}, (meter.lost, meter.regions)


def test_metrics_endpoint_serves_route_changes_and_path_health(clab: Lab, tmp_path: Path) -> None:
    w = eventually(
        "metrics endpoint answers",
        budget=BUDGETS["metrics_up"],
        probe=lambda: metrics_text(clab),
        check=lambda text: [] if "bgpctl_path_health" in text else ["no bgpctl_path_health yet"],
    )
    health = metric_samples(w.value, "bgpctl_path_health")
    assert health == {(("path", p), ("region", r), ("service", s)): 0.0 for s, r, p in PATHS}
    changes = metric_samples(w.value, "bgpctl_route_changes_total")
    # the restarted daemon announced everything once: 3 groups x 2 regions to the edge, the agents to each TGW
    assert changes[(("kind", "announce"), ("peer", "edge"))] >= 6
    assert changes[(("kind", "announce"), ("peer", "tgw-use1"))] >= 1
    assert changes[(("kind", "announce"), ("peer", "tgw-usw2"))] >= 1
    up = metric_samples(w.value, "bgpctl_bgp_session_up")
    assert up == {(("peer", p),): 1.0 for p in FRR_PEERS_OF_CR}
    # the live page has every family of the registry the dashboard and the rules are checked against
    served = {f.name for f in text_string_to_metric_families(w.value) if not f.name.endswith("_created")}
    assert served == {f.name for f in Metrics().registry.collect()}
    # plan()'s state per path: both regions preferred for the active-active groups, usw2 standby for the API
    assert path_states_on(w.value) == {
        (s, r, p): "standby" if (s, r) == ("api", "usw2") else "preferred" for s, r, p in PATHS
    }
    # the edge holds 3 prefixes x 2 regions (ADD-PATH), each TGW the agents' prefix
    assert metric_samples(w.value, "bgpctl_announced_routes") == {
        (("peer", "edge"),): 6.0,
        (("peer", "tgw-use1"),): 1.0,
        (("peer", "tgw-usw2"),): 1.0,
    }
    assert set(metric_samples(w.value, "bgpctl_overrides").values()) == {0.0}
    # steady state: the alert rules, evaluated by promtool on this very page, fire nothing
    assert promtool.alerts_on_scrape(promtool.find(), w.value, [], tmp_path) == ""


def path_states_on(page: str) -> dict[tuple[str, str, str], str]:
    """(service, region, path) -> the state whose bgpctl_path_state series is 1 (one per path, or fail)."""
    on: dict[tuple[str, str, str], list[str]] = {}
    for labels, value in metric_samples(page, "bgpctl_path_state").items():
        d = dict(labels)
        states = on.setdefault((d["service"], d["region"], d["path"]), [])
        if value == 1.0:
            states.append(d["state"])
    assert all(len(v) == 1 for v in on.values()), on
    return {k: v[0] for k, v in on.items()}


def test_blackholed_region_goes_down_with_reasons_and_the_edge_stops_using_it(
    clab: Lab, record_property: Any, tmp_path: Path
) -> None:
    t0 = time.time()
    faults.blackhole_node(clab, "tgw-usw2", "eth2", True)  # usw2's Connect side: probes die, BGP stays up
    try:
        w = eventually(
            "usw2 withdrawn at the edge",
            budget=BUDGETS["path_down"],
            probe=lambda: clab,
            check=edge_media_problems,
            interval_s=0.05,
        )
        record_property("blackhole_to_edge_withdrawn_s", round(w.elapsed_s, 2))
        print(f"usw2 blackholed: withdrawn at the edge after {w.elapsed_s:.2f} s")
        want = {f"{s}/usw2/interconnect" for s in ("media", "signalling", "api")}
        downs = eventually(
            "usw2's three paths logged down",
            budget=BUDGETS["path_down"],
            probe=lambda: downs_since(clab, t0),
            check=lambda es: [] if {e["path"] for e in es} == want else [f"down so far: {es}"],
        )
        for e in downs.value:
            assert e["level"] == "warning"
            assert any(re.fullmatch(r"consecutive_lost \d+ >= down_after_lost \d+.*", r) for r in e["reasons"]), e
            assert e["measurements"]["consecutive_lost"] >= 3, e
        page = metrics_text(clab)
        health = metric_samples(page, "bgpctl_path_health")
        for s, r, p in PATHS:
            assert health[(("path", p), ("region", r), ("service", s))] == (3.0 if r == "usw2" else 0.0)  # 3: down
        assert path_states_on(page) == {(s, r, p): "down" if r == "usw2" else "preferred" for s, r, p in PATHS}
        # the rules on this page: usw2 lost for every service, and nothing else (BGP stays up, use1 carries all)
        lost = [
            {"alertname": "BgpctlRegionLost", "severity": "critical", "service": s, "region": "usw2"}
            for s in ("media", "signalling", "api")
        ]
        assert promtool.alerts_on_scrape(promtool.find(), page, lost, tmp_path) == ""
        # the policy's down action withdraws towards the TGW too: usw2 no longer draws the return traffic
        assert [x for x in tgw_problems(clab) if x.startswith("tgw-use1")] == []
        usw2 = clab.vtysh_json("tgw-usw2", f"show bgp ipv4 unicast {AGENTS} json")
        assert [p for p in usw2.get("paths", []) if p.get("peer", {}).get("peerId") == CR] == []
    finally:
        faults.clear_node(clab, "tgw-usw2", "eth2")


def edge_media_problems(lab: Lab) -> list[str]:
    problems = nexthop_problems(lab, "edge", {USE1})
    api = lab.vtysh_json("edge", f"show bgp ipv4 unicast {API} json")
    problems += [
        f"edge {API}: {p}"
        for p in json_mismatches({"paths": [{"__exact_len__": 1}, {"nexthops": [{"ip": USE1}]}]}, api)
    ]
    return problems


def downs_since(lab: Lab, t0: float) -> list[dict[str, Any]]:
    return [
        e for e in log_events(lab) if e.get("event") == names.PATH_HEALTH and e["new"] == "down" and event_ts(e) >= t0
    ]


KNOWN_METRICS = {
    "consecutive_lost",
    "unanswered",
    "samples",
    "rtt_ms",
    "jitter_ms",
    "loss_pct",
    "mos",
    "rise",
    "min_dwell",
    "hold_down",
    "session",
}


def test_every_log_line_is_json_and_every_decision_names_metric_and_threshold(clab: Lab) -> None:
    lines = daemon_log(clab)
    bad = [line for line in lines if not _is_json_object(line)]
    assert bad == [], f"{len(bad)} non-JSON log lines, e.g. {bad[:3]}"
    decisions = [e for e in map(json.loads, lines) if e.get("event") == names.PATH_HEALTH]
    # two starts x six paths up, then usw2's three paths down
    assert len(decisions) >= 15
    for e in decisions:
        assert set(e) >= {"path", "old", "new", "reasons", "measurements", "level", "timestamp"}, e
        assert e["old"] != e["new"], e
        assert e["reasons"] and all(isinstance(r, str) for r in e["reasons"]), e
        for r in e["reasons"]:  # "<metric> <value> <op> <threshold name> <threshold>"
            assert any(m in r for m in KNOWN_METRICS) and re.search(r"\d", r), r
        assert e["measurements"] and set(e["measurements"]) <= KNOWN_METRICS, e
        for metric in e["measurements"]:
            assert any(metric in r for r in e["reasons"]), (metric, e)


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict) and "event" in json.loads(line)
    except ValueError:
        return False
