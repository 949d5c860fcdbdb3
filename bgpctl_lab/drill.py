"""Run a failover drill (:mod:`bgpctl_lab.drill_model`) against a running lab and report it.

Timeline: steady-state checks -> call meter (and the route watch, if any) starts -> fault at
``fault.at_s`` -> expectations polled in order (each against its own budget for the lab's mode, timed
from the fault: "within 2 s of the fault") -> restore at ``restore.at_s`` -> recovery checks (timed from
the restore) -> the meter finishes -> report. Without a fault, the expectations are timed from the
meter's start. A step that does not hold is recorded as failed, not raised: a
drill in "no controller" mode is *expected* to miss some expectations, and the report says which.
The restore always runs, also when a check failed or the drill was interrupted.

Operations drills (controller mode): the daemon is first put under its ``supervisor`` if the drill has
one, the ``setup`` actions run before the steady-state checks, control actions go to the daemon's socket
(:func:`bgpctl.control.client.call`, its answer kept in the report), daemon actions through the runner
(:func:`bgpctl_lab.runner.restart_service`, SIGKILL of :func:`bgpctl_lab.runner.service_pid`), and the
``cleanup`` actions and the plain daemon's return run last, whatever happened.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from bgpctl import events
from bgpctl.control import client
from bgpctl.core.recording import RecordingError, read_recording
from bgpctl.errors import BgpctlError
from bgpctl_lab import faults, runner
from bgpctl_lab.drill_model import Action, Bounds, Check, Drill, DrillError, Op, PolicyOp, Sessions
from bgpctl_lab.drill_series import FlowGap, flow_gaps, path_series
from bgpctl_lab.impair import Impairment
from bgpctl_lab.meter import run_meter
from bgpctl_lab.meter_report import MeterReport
from bgpctl_lab.poll import BudgetExceeded, eventually
from bgpctl_lab.route_watch import RouteChange, RouteWatcher

if TYPE_CHECKING:
    from bgpctl_lab.runner import Lab


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    node: str
    held: bool
    after_s: float | None  # since the step it follows (fault, restore, meter start) or its own start (steady)
    budget_s: float  # the budget for the lab's mode
    not_before_s: float | None = None  # holding sooner than this (rise/dwell) is a violation
    problems: str = ""


class ActionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    at_s: float  # planned, since the meter started
    applied_s: float  # actual, since the meter started
    what: str
    took_s: float | None = None  # how long carrying it out took (a daemon restart waits for the stop)
    # impairments: when the first one was in force, since the meter started (starting a delayer takes a
    # moment, over a second on a loaded host: the network shows the fault from then, not from applied_s)
    in_force_s: float | None = None
    answer: dict[str, Any] | None = None  # a control request's result
    error: str | None = None  # a control request the daemon refused (or could not be asked)
    error_code: str | None = None  # the daemon's code of the refusal (None: it could not be asked)
    refusal_expected: bool = False  # the drill expects a refusal (``control.refused``)


class OpResult(BaseModel):
    """A setup or cleanup action: what was done and what came of it."""

    model_config = ConfigDict(frozen=True)

    what: str
    ok: bool
    answer: dict[str, Any] | None = None
    error: str | None = None


class DrillReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    drill: str
    lab: str
    mode: str
    started_unix: float
    edge: str = "frr"  # the lab's edge variant (`bgpctl lab up --edge`)
    setup: list[OpResult] = []
    steady: list[CheckResult]
    before: list[ActionResult] = []  # the actions before the fault (the primary's host cut off first)
    fault: ActionResult | None
    expect: list[CheckResult]
    restore: ActionResult | None
    recover: list[CheckResult]
    cleanup: list[OpResult] = []
    meter: MeterReport | None
    interruption_ms: float | None  # the worst flow's longest gap: what one call heard
    regions_answered: list[str]  # regions whose responders answered the meter
    watch: dict[str, Any] | None  # node, prefixes, interval_ms, polls, baseline, errors
    route_changes: int | None  # next-hop changes the watch saw (None: no watch)
    route_timeline: list[RouteChange]  # each change, at_s since the meter started
    route_moved_after_s: float | None  # first change after the fault, seconds after the fault
    sessions: dict[str, dict[str, list[int]]] | None = None  # node -> counter -> [at the meter's start, at its end]
    session_resets: int | None = None  # resets the `sessions` counters show (None: no `sessions`)
    updates: int | None = None  # UPDATEs the `sessions` nodes received from the peer during the drill
    decisions: list[dict[str, Any]] = []  # the daemon's health changes during the drill (controller mode)
    # for a picture (bgpctl_lab.plot), all on the drill's timeline (seconds since the meter started):
    t0_unix: float | None = None  # realtime of the timeline's zero (None: the drill stopped at its steady checks)
    end_s: float | None = None  # when the drill ended (the meter finished)
    flow_gaps: list[FlowGap] = []  # the meter's per-flow silences (meter.flows[].gaps, moved onto the timeline)
    paths: list[dict[str, Any]] = []  # per path RTT, loss and health (bgpctl.core.series; controller mode)
    paths_note: str | None = None  # why ``paths`` is empty or incomplete (the daemon's recording unreadable)
    bounds: dict[str, Any]  # the mode's bounds that are set (route_changes_max_by_prefix: prefix -> bound)
    violations: list[str]
    passed: bool


def _check(lab: Lab, check: Check, mode: str, since: float | None = None, *, daemon: str = "cr") -> CheckResult:
    """Poll one check until it holds or its budget (for ``mode``), counted from ``since``, runs out."""
    budget = check.budget(mode)
    start = time.monotonic() if since is None else since
    left = max(0.0, start + budget - time.monotonic())
    try:
        eventually(
            check.name,
            budget=left,
            probe=lambda: _query(lab, check, daemon),
            expect=check.expected(lab.edge_variant()),
            interval_s=0.02 if check.control is None else 0.1,
        )
    except BudgetExceeded as e:
        return CheckResult(
            name=check.name, node=check.where, held=False, after_s=None, budget_s=budget, problems=str(e)
        )
    return CheckResult(
        name=check.name,
        node=check.where,
        held=True,
        after_s=round(time.monotonic() - start, 3),
        budget_s=budget,
        not_before_s=check.not_before(mode),
    )


def _query(lab: Lab, check: Check, daemon: str = "cr") -> Any:
    """What a check compares: a node's vtysh JSON, or the daemon's answer (an error is its message:
    a daemon that is restarting does not match, and the budget's report says why)."""
    if check.control is None:
        assert check.node is not None and check.vtysh is not None
        return lab.query_json(check.node, check.vtysh)
    try:
        return dict(
            client.call(
                runner.service_run_dir(lab, check.control.node or daemon, SERVICE),
                check.control.verb,
                check.control.args,
                timeout_s=5,
            )
        )
    except client.ControlError as e:
        return {"error": str(e)}


def describe(action: Op) -> str:
    if action.control:
        args = " ".join(f"{k}={v}" for k, v in action.control.args.items() if k != "reason")
        return f"control {action.control.verb} {args}".rstrip()
    if action.daemon:
        d = action.daemon
        return f"daemon {d.action}" + (f" SIG{d.signal}" if d.signal else "")
    if action.policy:
        return "policy: the installed original" if action.policy.original else f"policy: {action.policy.file}"
    if action.link:
        return f"link {action.link.node}/{action.link.iface} {action.link.state}"
    if action.links:
        return "; ".join(f"link {li.node}/{li.iface} {li.state}" for li in action.links)
    if action.impair:
        return "; ".join(
            f"impair {i.node}/{i.iface} "
            + ("clear" if i.clear else f"delay {i.delay_ms:g} ms jitter {i.jitter_ms:g} ms loss {i.loss_pct:g} %")
            + (f" (UDP to port {i.udp_dport} only)" if i.udp_dport is not None and not i.clear else "")
            for i in action.impair
        )
    if action.blackhole:
        b = action.blackhole
        return f"blackhole {b.node}/{b.iface} {b.state}" + ("" if b.family == "all" else f" ({b.family} only)")
    if action.frr:
        return f"frr {action.frr.node} {action.frr.action}"
    assert action.bgp_clear is not None
    return f"bgp-clear {action.bgp_clear.node} {action.bgp_clear.peer}"


SERVICE = "daemon"  # the service (lab/services.yaml, services-ha.yaml) of the controller-mode daemon
DAEMON = ("cr", SERVICE)  # the single controller's node and service (a drill's `daemon` names another node)


DAEMON_READY_S = 30.0  # a (re)started daemon opens its control socket (its speaker and pins come first)


# FRR's `bgp route-map delay-timer` (default 5 s): bgpd applies its start-up route-maps and prefix-lists that
# long after it starts, then asks each established peer for a ROUTE-REFRESH, which ExaBGP answers with every
# route it holds: UPDATEs the daemon did not decide (the edge 6-7, each TGW 1, 1.4-1.9 s after the daemon's
# End-of-RIB in a fresh reference lab). A count of UPDATEs starts once every session is older than that.
FRR_ROUTE_MAP_DELAY_S = 5.0
REFRESH_ANSWER_S = 2.0  # ExaBGP answers a ROUTE-REFRESH in milliseconds; generous under load
SESSIONS_SETTLED_S = 30.0


def session_age_problems(lab: Lab, sessions: Sessions) -> list[str]:
    """[] when every session of ``sessions`` is established and older than FRR's route-map delay plus
    :data:`REFRESH_ANSWER_S` (its start-up ROUTE-REFRESH and the answer are behind us)."""
    settle_ms = (FRR_ROUTE_MAP_DELAY_S + REFRESH_ANSWER_S) * 1000
    problems = []
    for node in sessions.nodes:
        data = lab.query_json(node, f"show bgp neighbors {sessions.peer} json")
        n = data.get(sessions.peer) if isinstance(data, dict) else None
        if not isinstance(n, dict) or n.get("bgpState") != "Established":
            problems.append(f"{node}: session with {sessions.peer} not established")
        elif (up := int(n.get("bgpTimerUpMsec", 0))) < settle_ms:
            problems.append(f"{node}: session with {sessions.peer} up {up} ms, not yet {settle_ms:.0f} ms")
    return problems


def sessions_settled(lab: Lab, sessions: Sessions, budget: float = SESSIONS_SETTLED_S) -> float:
    """Wait until :func:`session_age_problems` holds; the seconds it took."""
    return eventually(
        f"sessions with {sessions.peer} past FRR's start-up ROUTE-REFRESH",
        budget=budget,
        probe=lambda: lab,
        check=lambda lab: session_age_problems(lab, sessions),
        interval_s=0.5,
    ).elapsed_s


def drill_daemons(drill: Drill) -> list[str]:
    """The nodes whose daemon the drill operates or asks (its `daemon` and every op's or check's `node`)."""
    nodes = [drill.daemon]
    if drill.supervisor is not None and drill.supervisor.node:
        nodes.append(drill.supervisor.node)
    for _where, op in drill.ops():
        for given in (op.control, op.daemon):
            if given is not None and given.node:
                nodes.append(given.node)
    for c in (*drill.steady, *drill.expect, *drill.recover):
        if c.control is not None and c.control.node:
            nodes.append(c.control.node)
    return list(dict.fromkeys(nodes))


def drill_nodes(drill: Drill) -> list[str]:
    """Every node the drill names: its daemons (when it operates them) and the nodes of its checks and faults."""
    nodes = drill_daemons(drill) if drill.operates() else []
    nodes += [c.node for c in (*drill.steady, *drill.expect, *drill.recover) if c.node is not None]
    for _where, op in drill.ops():
        nodes += [li.node for li in ([op.link] if op.link else []) + list(op.links or [])]
        nodes += [i.node for i in op.impair or []]
    if drill.watch is not None:
        nodes.append(drill.watch.node)
    return list(dict.fromkeys(nodes))


def daemon_ready(lab: Lab, budget: float = DAEMON_READY_S, *, daemon: str = "cr") -> float:
    """Wait until the daemon answers ``status`` on its control socket; the seconds it took."""
    run_dir = runner.service_run_dir(lab, daemon, SERVICE)
    return eventually(
        f"the daemon on {daemon} answers on its control socket",
        budget=budget,
        probe=lambda: client.call(run_dir, "status", {"decisions": 0}, timeout_s=5),
        interval_s=0.1,
    ).elapsed_s


def operate(lab: Lab, op: Op, daemon: str = "cr") -> dict[str, Any] | None:
    """A control request (its answer; :class:`bgpctl.control.client.ControlError` if refused) or a daemon
    operation (None)."""
    if op.control is not None:
        node = op.control.node or daemon
        return dict(client.call(runner.service_run_dir(lab, node, SERVICE), op.control.verb, op.control.args))
    if op.policy is not None:
        return replace_policy(lab, op.policy, daemon)
    d = op.daemon
    assert d is not None
    node = d.node or daemon
    if d.action == "restart":
        runner.restart_service(lab, node, SERVICE, grace=d.grace_s)
        return None
    pid = runner.service_pid(lab, node, SERVICE)
    if pid is None:
        raise DrillError(f"daemon {d.action}: the daemon is not running")
    if d.action == "kill-9" and runner.supervisor_of(lab, node, SERVICE) is None:
        raise DrillError("daemon kill-9: no supervisor would start it again (the drill needs `supervisor`)")
    os.kill(pid, signal.SIGKILL if d.action == "kill-9" else getattr(signal, f"SIG{d.signal}"))
    return None


def replace_policy(lab: Lab, op: PolicyOp, daemon: str = "cr") -> dict[str, Any]:
    """Put ``op``'s policy (or the installed original) in place of the daemon's policy file, atomically (the
    daemon reads it at the next reload); what was written: ``{"file": ..., "from": ..., "sha256": ...}``."""
    target, original = runner.service_file(lab, daemon, SERVICE, "--policy")
    source = Path(op.file) if op.file is not None else original
    if source is None:
        raise DrillError(f"policy: the daemon's {target} is not installed by lab/services.yaml: nothing to restore")
    try:
        data = source.read_bytes()
    except OSError as e:
        raise DrillError(f"policy: cannot read {source}: {e.strerror}") from e
    tmp = target.with_name(f".{target.name}.drill")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return {"file": str(target), "from": str(source), "sha256": hashlib.sha256(data).hexdigest()}


def read_sessions(lab: Lab, sessions: Sessions) -> dict[str, dict[str, int]]:
    """Per node: the session with ``sessions.peer`` as FRR counts it (established, dropped, UPDATEs received,
    ROUTE-REFRESHes sent: the peer's own requests, answered with UPDATEs the daemon did not decide)."""
    out = {}
    for node in sessions.nodes:
        data = lab.query_json(node, f"show bgp neighbors {sessions.peer} json")
        n = data.get(sessions.peer) if isinstance(data, dict) else None
        if not isinstance(n, dict) or "connectionsEstablished" not in n:
            raise DrillError(f"sessions: {node} has no BGP session with {sessions.peer} (show bgp neighbors)")
        out[node] = {
            "established": int(n["connectionsEstablished"]),
            "dropped": int(n["connectionsDropped"]),
            "updates": int(n["messageStats"]["updatesRecv"]),
            "refreshes": int(n["messageStats"]["routeRefreshSent"]),
        }
    return out


def session_changes(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> tuple[dict[str, dict[str, list[int]]], int, int]:
    """The readings side by side, the resets (per node the larger move of established and dropped) and the
    UPDATEs received, all nodes together."""
    both = {node: {k: [v, after[node][k]] for k, v in counts.items()} for node, counts in before.items()}
    resets = sum(
        max(c["established"][1] - c["established"][0], c["dropped"][1] - c["dropped"][0]) for c in both.values()
    )
    updates = sum(c["updates"][1] - c["updates"][0] for c in both.values())
    return both, resets, updates


def apply(
    lab: Lab, action: Op, *, lifetime_s: float, in_force: list[float] | None = None, daemon: str = "cr"
) -> dict[str, Any] | None:
    """Carry out one drill action on the lab; a control request's answer. ``in_force`` gets the monotonic
    time at which each impairment was in force."""
    if action.operates:
        return operate(lab, action, daemon)
    if action.link:
        lab.link_set(action.link.node, action.link.iface, action.link.state == "up")
    elif action.links:
        for li in action.links:
            lab.link_set(li.node, li.iface, li.state == "up")
    elif action.impair:
        for i in action.impair:
            if i.clear:
                faults.clear_node(lab, i.node, i.iface)
            else:
                imp = Impairment(
                    delay_ms=i.delay_ms,
                    jitter_ms=i.jitter_ms,
                    loss_pct=i.loss_pct,
                    duplicate_pct=i.duplicate_pct,
                    reorder_pct=i.reorder_pct,
                    burst_ms=i.burst_ms,
                    burst_every_s=i.burst_every_s,
                    udp_dport=i.udp_dport,
                )
                faults.impair_node(lab, i.node, i.iface, imp, seconds=lifetime_s)
                if in_force is not None:
                    in_force.append(time.monotonic())
    elif action.blackhole:
        b = action.blackhole
        faults.blackhole_node(lab, b.node, b.iface, b.state == "on", b.family)
    elif action.frr:
        (lab.stop_frr if action.frr.action == "stop" else lab.start_frr)(action.frr.node)
    elif action.bgp_clear:
        lab.clear_bgp(action.bgp_clear.node, action.bgp_clear.peer)
    return None


def _act(lab: Lab, action: Action, t0: float, lifetime_s: float, daemon: str = "cr") -> tuple[ActionResult, float]:
    """Carry out ``action`` at its time on the drill's timeline; returns what was done and when it took effect
    (monotonic): for impairments when the first was in force, else when it was applied. The checks that follow
    count their budgets from then, as ``route_moved_after_s`` does."""
    _at(t0, action.at_s)
    when = time.monotonic()
    answer, error, code, in_force = None, None, None, list[float]()
    try:
        answer = apply(lab, action, lifetime_s=lifetime_s, in_force=in_force, daemon=daemon)
    except client.ControlError as e:  # a refusal is the drill's finding, not a crash of the drill
        error, code = str(e), e.code
    took = round(time.monotonic() - when, 3)
    result = ActionResult(
        at_s=action.at_s,
        applied_s=round(when - t0, 3),
        what=describe(action),
        took_s=took,
        in_force_s=round(in_force[0] - t0, 3) if in_force else None,
        answer=answer,
        error=error,
        error_code=code,
        refusal_expected=action.control is not None and action.control.refused is not None,
    )
    return result, (in_force[0] if in_force else when)


def _do(lab: Lab, op: Op, *, lifetime_s: float, daemon: str = "cr") -> OpResult:
    """A setup or cleanup action; a control refusal is ok where the drill says so (``refused_ok``)."""
    try:
        answer = apply(lab, op, lifetime_s=lifetime_s, daemon=daemon)
    except client.ControlError as e:
        ok = op.control is not None and op.control.refused_ok and e.code is not None
        return OpResult(what=describe(op), ok=ok, error=str(e))
    except BgpctlError as e:  # the policy file could not be replaced: the drill's finding, the cleanup goes on
        if op.policy is None:
            raise
        return OpResult(what=describe(op), ok=False, error=str(e))
    return OpResult(what=describe(op), ok=True, answer=answer)


def _at(t0: float, at_s: float) -> None:
    delay = t0 + at_s - time.monotonic()
    if delay > 0:
        time.sleep(delay)  # scheduling the fault on the drill's timeline, not waiting for a state


def run_drill(
    lab: Lab, drill: Drill, *, out_dir: Path | None = None, progress: Callable[[str], None] = lambda _m: None
) -> DrillReport:
    mode = lab.mode
    if drill.modes is not None and mode not in drill.modes:
        raise DrillError(
            f"drill {drill.name} runs in mode {', '.join(drill.modes)}, and lab {lab.name} is in mode {mode}: "
            f"`bgpctl lab up --lab {lab.name} --mode {drill.modes[0]}` first"
        )
    missing = sorted(set(drill_nodes(drill)) - set(lab.nodes()))
    if missing:
        raise DrillError(
            f"drill {drill.name} names node(s) {', '.join(missing)} that lab {lab.name} does not have "
            f"(its topology is {lab.topology_file.name}; the HA drills need `--topology containerlab-ha.yml`)"
        )
    cleanup: list[OpResult] = []
    supervised = (drill.supervisor.node or drill.daemon) if drill.supervisor is not None else None
    try:
        if drill.supervisor is not None and supervised is not None:
            runner.supervise_service(lab, supervised, SERVICE, restart_sec=drill.supervisor.restart_sec)
            progress(
                f"daemon on {supervised} under a supervisor (Restart=always, RestartSec "
                f"{drill.supervisor.restart_sec:g} s)"
            )
        if drill.operates():
            for node in dict.fromkeys([drill.daemon, *drill_daemons(drill)]):
                waited = daemon_ready(lab, daemon=node)
                progress(f"the daemon on {node} answers on its control socket ({waited:.2f} s)")
        report = _run(lab, drill, mode, progress)
    finally:
        for op in drill.cleanup:
            cleanup.append(r := _do(lab, op, lifetime_s=60, daemon=drill.daemon))
            progress(f"cleanup: {r.what}: {'ok' if r.ok else r.error}")
        if supervised is not None:
            runner.unsupervise_service(lab, supervised, SERVICE)
            progress("daemon back without the supervisor")
    report = report.model_copy(update={"cleanup": cleanup})
    if [r for r in cleanup if not r.ok]:
        bad = [f"cleanup {r.what} failed: {r.error}" for r in cleanup if not r.ok]
        report = report.model_copy(update={"violations": [*report.violations, *bad], "passed": False})
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"drill-{drill.name}-{mode}-{int(report.started_unix)}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(report.model_dump_json(indent=2))
        tmp.replace(path)
    return report


def _before(
    lab: Lab, drill: Drill, mode: str, progress: Callable[[str], None]
) -> tuple[list[OpResult], list[CheckResult]]:
    """The setup actions, then (if they all went through) the steady-state checks."""
    setup = [_do(lab, op, lifetime_s=drill.meter.seconds + 120, daemon=drill.daemon) for op in drill.setup]
    for o in setup:
        progress(f"setup: {o.what}: {'ok' if o.ok else o.error}")
    if not all(o.ok for o in setup):
        return setup, []
    steady = [_check(lab, c, mode, daemon=drill.daemon) for c in drill.steady]
    for r in steady:
        progress(f"steady: {r.name}: {'ok' if r.held else 'FAILED'}")
    return setup, steady


def _meter_thread(lab: Lab, drill: Drill) -> tuple[threading.Thread, dict[str, Any]]:
    """The drill's call meter as a thread (not started yet) and the dict it leaves its report (or error) in."""
    meter_result: dict[str, Any] = {}
    src = lab.netns(drill.meter.source)

    def meter() -> None:
        try:
            meter_result["report"] = run_meter(
                src,
                drill.meter.to,
                drill.meter.port,
                rate_pps=drill.meter.rate,
                fine=drill.meter.fine,
                flows=drill.meter.flows,
                seconds=drill.meter.seconds,
            )
        except Exception as e:  # reported in the drill's report, not lost in a thread
            meter_result["error"] = e

    thread = threading.Thread(target=meter, name=f"meter-{drill.name}", daemon=True)
    return thread, meter_result


def _run(lab: Lab, drill: Drill, mode: str, progress: Callable[[str], None]) -> DrillReport:
    started = time.time()
    setup, steady = _before(lab, drill, mode, progress)
    if not all(o.ok for o in setup) or not all(r.held for r in steady) or len(steady) != len(drill.steady):
        return _report(drill, lab, mode=mode, started=started, setup=setup, steady=steady)

    thread, meter_result = _meter_thread(lab, drill)
    if drill.sessions:
        sessions_settled(lab, drill.sessions)
    sessions_before = read_sessions(lab, drill.sessions) if drill.sessions else None
    t0, t0_unix = time.monotonic(), time.time()
    watcher = (
        RouteWatcher(
            lab.netns(drill.watch.node), drill.watch.prefixes, interval_ms=drill.watch.interval_ms, t0=t0
        ).start()
        if drill.watch
        else None
    )
    thread.start()
    fault_r = restore_r = None
    before_r: list[ActionResult] = []
    expect: list[CheckResult] = []
    recover: list[CheckResult] = []
    timeline: list[RouteChange] = []
    restored: float | None = None
    sessions: tuple[dict[str, dict[str, list[int]]], int, int] | None = None
    try:
        try:
            since = t0
            for b in drill.before:
                before_r.append(_act(lab, b, t0, drill.meter.seconds + 120, drill.daemon)[0])
                progress(f"before the fault, at {before_r[-1].applied_s:.2f} s: {before_r[-1].what}")
            if drill.fault is not None:
                fault_r, since = _act(lab, drill.fault, t0, drill.meter.seconds + 120, drill.daemon)
                progress(f"fault at {fault_r.applied_s:.2f} s: {fault_r.what}")
            for c in drill.expect:
                expect.append(r := _check(lab, c, mode, since, daemon=drill.daemon))
                progress(f"expect: {r.name}: {f'held after {r.after_s:.2f} s' if r.held else 'FAILED'}")
        finally:
            if drill.restore is not None:
                restore_r, restored = _act(lab, drill.restore, t0, drill.meter.seconds + 120, drill.daemon)
                progress(f"restore at {restore_r.applied_s:.2f} s: {restore_r.what}")
        for c in drill.recover:
            recover.append(r := _check(lab, c, mode, restored, daemon=drill.daemon))
            progress(f"recover: {r.name}: {f'held after {r.after_s:.2f} s' if r.held else 'FAILED'}")
        thread.join(timeout=drill.meter.seconds + 60)
        if drill.sessions is not None and sessions_before is not None:
            sessions = session_changes(sessions_before, read_sessions(lab, drill.sessions))
    finally:
        if watcher is not None:
            timeline = watcher.stop()
        end_s = round(time.monotonic() - t0, 3)
    if "error" in meter_result:
        raise meter_result["error"]
    report = _report(
        drill,
        lab,
        mode=mode,
        started=started,
        setup=setup,
        steady=steady,
        fault=fault_r,
        expect=expect,
        restore=restore_r,
        recover=recover,
        meter=meter_result.get("report"),
        watch=_watch_info(drill, watcher),
        timeline=timeline,
        decisions=daemon_decisions(lab, started, t0_unix, drill.daemon),
        before=before_r,
        sessions=sessions,
    )
    paths, note = daemon_series(lab, t0_unix, t0_unix + end_s, drill.daemon)
    return report.model_copy(
        update={
            "t0_unix": t0_unix,
            "end_s": end_s,
            "flow_gaps": flow_gaps(report.meter, t0_unix),
            "paths": paths,
            "paths_note": note,
        }
    )


def _watch_info(drill: Drill, watcher: RouteWatcher | None) -> dict[str, Any] | None:
    """What the route watcher saw, for the report (None when the drill watches no routes)."""
    if watcher is None or drill.watch is None:
        return None
    return {
        "node": drill.watch.node,
        "prefixes": drill.watch.prefixes,
        "interval_ms": drill.watch.interval_ms,
        "polls": watcher.polls,
        "errors": watcher.errors,
        "baseline": {p: list(h) for p, h in (watcher.baseline or {}).items()},
    }


def _report(
    drill: Drill,
    lab: Lab,
    *,
    mode: str,
    started: float,
    steady: list[CheckResult],
    setup: list[OpResult] | None = None,
    fault: ActionResult | None = None,
    expect: list[CheckResult] | None = None,
    restore: ActionResult | None = None,
    recover: list[CheckResult] | None = None,
    meter: MeterReport | None = None,
    watch: dict[str, Any] | None = None,
    timeline: list[RouteChange] | None = None,
    decisions: list[dict[str, Any]] | None = None,
    sessions: tuple[dict[str, dict[str, list[int]]], int, int] | None = None,
    before: list[ActionResult] | None = None,
) -> DrillReport:
    expect, recover, timeline, decisions = expect or [], recover or [], timeline or [], decisions or []
    bounds = drill.bounds.get(mode)  # type: ignore[call-overload]
    violations = [
        f"{phase} check '{r.name}' did not hold within {r.budget_s:g} s"
        for phase, rs in (("steady", steady), ("expect", expect), ("recover", recover))
        for r in rs
        if not r.held
    ]
    violations += [f"setup {o.what} failed: {o.error}" for o in setup or [] if not o.ok]
    violations += [
        f"{phase} {a.what} was refused: {a.error}"
        for phase, a in (*(("before", b) for b in before or []), ("fault", fault), ("restore", restore))
        if a and a.error and not a.refusal_expected
    ]
    violations += refusal_problems(drill, fault, restore)
    violations += [
        f"{phase} check '{r.name}' held after {r.after_s:.2f} s, sooner than its not-before of "
        f"{r.not_before_s:g} s in mode {mode} (rise/dwell)"
        for phase, rs in (("expect", expect), ("recover", recover))
        for r in rs
        if r.held and r.after_s is not None and r.not_before_s is not None and r.after_s < r.not_before_s
    ]
    interruption = meter.longest_flow_gap_ms if meter else None
    if meter is None and steady and all(r.held for r in steady) and all(o.ok for o in setup or []):
        violations.append("the call meter produced no report")
    regions = regions_answered(meter)
    violations += _meter_violations(bounds, meter, regions)
    changes = len(timeline) if watch is not None else None
    violations += _route_violations(bounds, watch, timeline, fault, restore)
    violations += prefix_change_problems(bounds, timeline, watch)
    violations += session_problems(bounds, sessions)
    for health, bound in (
        ("down", bounds.down_max if bounds else None),
        ("suspect", bounds.suspect_max if bounds else None),
    ):
        judged = [d for d in decisions if d["new"] == health]
        if bound is not None and len(judged) > bound:
            violations.append(
                f"{len(judged)} '{health}' judgement(s) by the daemon > bound {bound} (first: "
                f"{judged[0]['path']}: {'; '.join(judged[0]['reasons'])})"
            )
    return DrillReport(
        drill=drill.name,
        lab=lab.name,
        mode=mode,
        edge=lab.edge_variant(),
        started_unix=started,
        setup=setup or [],
        steady=steady,
        before=before or [],
        fault=fault,
        expect=expect,
        restore=restore,
        recover=recover,
        meter=meter,
        interruption_ms=interruption,
        regions_answered=regions,
        watch=watch,
        route_changes=changes,
        route_timeline=timeline,
        route_moved_after_s=moved_after(fault, timeline),
        sessions=sessions[0] if sessions else None,
        session_resets=sessions[1] if sessions else None,
        updates=sessions[2] if sessions else None,
        decisions=decisions,
        bounds=bounds.model_dump(exclude_defaults=True) if bounds else {},
        violations=violations,
        passed=not violations,
    )


def _meter_violations(bounds: Bounds | None, meter: MeterReport | None, regions: list[str]) -> list[str]:
    """The meter's figures against the mode's bounds (interruption, losses, regions answered)."""
    out: list[str] = []
    if bounds is not None and meter is not None:
        if bounds.interruption_max_ms is not None and meter.longest_flow_gap_ms > bounds.interruption_max_ms:
            out.append(f"interruption {meter.longest_flow_gap_ms:.0f} ms > bound {bounds.interruption_max_ms:g} ms")
        if bounds.lost_max is not None and meter.lost > bounds.lost_max:
            out.append(f"lost {meter.lost} packets > bound {bounds.lost_max}")
        worst = max(meter.flows, key=lambda f: f.lost, default=None)
        if bounds.lost_per_flow_max is not None and worst is not None and worst.lost > bounds.lost_per_flow_max:
            out.append(f"flow {worst.flow} lost {worst.lost} packets > bound {bounds.lost_per_flow_max} per flow")
    if (
        bounds is not None
        and meter is not None
        and bounds.min_regions is not None
        and len(regions) < bounds.min_regions
    ):
        out.append(
            f"the meter's flows were answered by {len(regions)} region(s) "
            f"({', '.join(regions) or 'none'}) < bound {bounds.min_regions}"
        )
    return out


def _route_violations(
    bounds: Bounds | None,
    watch: dict[str, Any] | None,
    timeline: list[RouteChange],
    fault: ActionResult | None,
    restore: ActionResult | None,
) -> list[str]:
    """The watched node's route timeline against the mode's bounds (changes, withdrawals, flaps)."""
    out: list[str] = []
    changes = len(timeline) if watch is not None else None
    if (
        bounds is not None
        and bounds.route_changes_max is not None
        and changes is not None
        and changes > bounds.route_changes_max
    ):
        first = timeline[0]
        out.append(
            f"{changes} route change(s) at {watch['node'] if watch else '?'} > bound "
            f"{bounds.route_changes_max} (first: {first.prefix} -> {first.nexthops or 'no route'} "
            f"at {first.at_s:.2f} s)"
        )
    withdrawn = [c for c in timeline if not c.nexthops]
    if (
        bounds is not None
        and bounds.route_withdrawals_max is not None
        and watch is not None
        and len(withdrawn) > bounds.route_withdrawals_max
    ):
        out.append(
            f"{len(withdrawn)} route withdrawal(s) at {watch['node']} > bound "
            f"{bounds.route_withdrawals_max} (first: {withdrawn[0].prefix} at {withdrawn[0].at_s:.2f} s)"
        )
    if bounds is not None and bounds.flaps_max is not None and watch is not None:
        flapped = flaps(timeline, watch.get("baseline") or {}, fault, restore)
        if len(flapped) > bounds.flaps_max:
            out.append(
                f"{len(flapped)} flap(s) at {watch['node']} between the fault and the restore > bound "
                f"{bounds.flaps_max} (first: {flapped[0].prefix} back to {flapped[0].nexthops or 'no route'} at "
                f"{flapped[0].at_s:.2f} s)"
            )
    return out


def flaps(
    timeline: list[RouteChange],
    baseline: dict[str, list[str]],
    fault: ActionResult | None,
    restore: ActionResult | None,
) -> list[RouteChange]:
    """The changes between the fault and the restore that took a prefix back to next hops it already had since
    the fault (its next hops at the fault count as had): A -> B -> A is one flap, A -> B -> C none."""
    if fault is None:
        return []
    start = fault.in_force_s if fault.in_force_s is not None else fault.applied_s
    end = restore.applied_s if restore is not None else float("inf")
    now = {p: tuple(sorted(h)) for p, h in baseline.items()}
    for c in timeline:
        if c.at_s < start:
            now[c.prefix] = tuple(sorted(c.nexthops))
    had = {p: {h} for p, h in now.items()}
    out = []
    for c in timeline:
        if not start <= c.at_s < end:
            continue
        hops = tuple(sorted(c.nexthops))
        if hops in had.setdefault(c.prefix, set()):
            out.append(c)
        had[c.prefix].add(hops)
    return out


def prefix_change_problems(
    bounds: Bounds | None, timeline: list[RouteChange], watch: dict[str, Any] | None
) -> list[str]:
    """The watched prefixes whose next-hop changes exceed their own bound (``route_changes_max_by_prefix``)."""
    if bounds is None or watch is None:
        return []
    violations = []
    for prefix, bound in bounds.route_changes_max_by_prefix.items():
        net = ipaddress.ip_network(prefix)
        moved = [c for c in timeline if ipaddress.ip_network(c.prefix) == net]
        if len(moved) > bound:
            violations.append(
                f"{len(moved)} route change(s) of {prefix} at {watch['node']} > bound {bound} (first: "
                f"-> {moved[0].nexthops or 'no route'} at {moved[0].at_s:.2f} s)"
            )
    return violations


def session_problems(
    bounds: Bounds | None, sessions: tuple[dict[str, dict[str, list[int]]], int, int] | None
) -> list[str]:
    """The ``sessions`` readings over their bounds (session resets, UPDATEs received)."""
    if sessions is None or bounds is None:
        return []
    violations: list[str] = []
    readings, resets, updates = sessions
    if bounds.session_resets_max is not None and resets > bounds.session_resets_max:
        moved = [
            n
            for n, c in readings.items()
            if c["established"][0] != c["established"][1] or c["dropped"][0] != c["dropped"][1]
        ]
        violations.append(f"{resets} BGP session reset(s) > bound {bounds.session_resets_max} (at {', '.join(moved)})")
    if bounds.updates_max is not None and updates > bounds.updates_max:
        per = ", ".join(
            f"{n}: {c['updates'][1] - c['updates'][0]}"
            + (f" after {r} ROUTE-REFRESH(es) it sent" if (r := c["refreshes"][1] - c["refreshes"][0]) else "")
            for n, c in readings.items()
        )
        violations.append(f"{updates} UPDATE(s) received from the peer > bound {bounds.updates_max} ({per})")
    return violations


def refusal_problems(drill: Drill, fault: ActionResult | None, restore: ActionResult | None) -> list[str]:
    """The fault's or restore's expected refusal (``control.refused``) that did not come as expected."""
    out = []
    for phase, action, done in (("fault", drill.fault, fault), ("restore", drill.restore, restore)):
        if action is None or done is None or action.control is None or action.control.refused is None:
            continue
        refused = action.control.refused
        if done.error is None:
            out.append(f"{phase} {done.what} was applied; the drill expects a refusal matching {refused.match!r}")
        elif done.error_code is None:
            out.append(f"{phase} {done.what}: the daemon could not be asked: {done.error}")
        elif (problem := refused.problem(done.error)) is not None:
            out.append(f"{phase} {done.what}: {problem}")
    return out


DAEMON_LOG = "daemon.log"
"""The controller-mode daemon's log in cr's node directory (JSON lines, see lab/services.yaml)."""
RECORDING = "samples.jsonl"
"""The controller-mode daemon's recording in cr's node directory (lab/services.yaml: ``--record``)."""


def daemon_series(
    lab: Lab, t0_unix: float, end_unix: float, daemon: str = "cr"
) -> tuple[list[dict[str, Any]], str | None]:
    """Per-path series of the drill from the daemon's recording and log (controller mode; else none), and
    a note when the recording could not be read (the drill's result does not depend on it)."""
    if lab.mode != "controller":
        return [], None
    recording = lab.node_dir(daemon) / RECORDING
    try:
        with recording.open(encoding="utf-8") as f:
            samples = read_recording(f, str(recording))
            return path_series(samples, daemon_events(lab, 0.0, daemon), t0_unix, end_unix), None
    except (OSError, RecordingError) as e:
        return [], f"no per-path series: the daemon's recording {recording}: {e}"


def daemon_events(lab: Lab, since_unix: float = 0.0, daemon: str = "cr") -> list[dict[str, Any]]:
    """The controller-mode daemon's JSON log events since ``since_unix``, each with ``at_unix`` added: the
    decision's time for decision events (``decided_unix``), else the line's ``timestamp``."""
    if lab.mode != "controller" or daemon not in lab.nodes():
        return []
    log = lab.node_dir(daemon) / DAEMON_LOG
    if not log.is_file():
        return []
    out: list[dict[str, Any]] = []
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
            at = datetime.fromisoformat(str(ev["timestamp"]).replace("Z", "+00:00")).timestamp()
            at = float(ev.get("decided_unix", at))
        except (ValueError, KeyError, TypeError):
            continue
        if at >= since_unix:
            ev["at_unix"] = at
            out.append(ev)
    return out


def daemon_decisions(lab: Lab, since_unix: float, t0_unix: float, daemon: str = "cr") -> list[dict[str, Any]]:
    """The daemon's ``path.health`` events since ``since_unix``: which rule fired, for the report;
    ``at_s`` on the drill's timeline (seconds since the meter started, as the fault's ``applied_s``)."""
    return [
        {
            "at_unix": ev["at_unix"],
            "at_s": round(ev["at_unix"] - t0_unix, 3),
            "path": ev.get("path"),
            "old": ev.get("old"),
            "new": ev.get("new"),
            "reasons": list(ev.get("reasons") or []),
        }
        for ev in daemon_events(lab, since_unix, daemon)
        if ev.get("event") == events.PATH_HEALTH
    ]


def regions_answered(meter: MeterReport | None) -> list[str]:
    return sorted(k for k, v in meter.regions.items() if v.answered > 0) if meter else []


def moved_after(fault: ActionResult | None, timeline: list[RouteChange]) -> float | None:
    """Seconds from the fault to the first route change the watch saw after it: from the first impairment
    in force for an impairment, else from when the fault was applied."""
    if fault is None:
        return None
    start = fault.in_force_s if fault.in_force_s is not None else fault.applied_s
    after = [c.at_s for c in timeline if c.at_s >= start]
    return round(min(after) - start, 3) if after else None


def _outcome_lines(report: DrillReport) -> list[str]:
    """The summary's call, routes and sessions lines."""
    lines: list[str] = []
    m = report.meter
    if m:
        regions = ", ".join(f"{k}: {v.answered}" for k, v in sorted(m.regions.items()))
        lines.append(
            f"  call     {m.sent} sent, {m.lost} lost ({m.loss_pct:.2f} %), worst flow interrupted "
            f"{m.longest_flow_gap_ms:.0f} ms, all flows {m.longest_gap_ms:.0f} ms; answered by {regions}"
        )
    if report.route_changes is not None and report.watch is not None:
        moved = (
            f"; first {report.route_moved_after_s:.2f} s after the fault"
            if report.route_moved_after_s is not None
            else ""
        )
        lines.append(
            f"  routes   {report.route_changes} next-hop change(s) at {report.watch['node']} "
            f"(polled every {report.watch['interval_ms']:g} ms){moved}"
        )
    if report.session_resets is not None and report.sessions is not None:
        lines.append(
            f"  sessions {report.session_resets} reset(s), {report.updates} UPDATE(s) received from the peer "
            f"at {', '.join(report.sessions)}"
        )
    return lines


def summary(report: DrillReport) -> str:
    """A few lines an engineer reads after a drill."""
    lines = [f"drill {report.drill} (lab {report.lab}, mode {report.mode}): {'PASSED' if report.passed else 'FAILED'}"]
    for o in report.setup:
        lines.append(f"  setup    {o.what}: {'ok' if o.ok else o.error}")
    if report.fault:
        lines.append(f"  fault    {_action_text(report.fault)}")
    since = "the fault" if report.fault else "the meter's start"
    for r in report.expect:
        lines.append(
            f"  expect   {r.name}: "
            + (f"held {r.after_s:.2f} s after {since}" if r.held else f"did NOT hold within {r.budget_s:g} s")
        )
    if report.restore:
        lines.append(f"  restore  {_action_text(report.restore)}")
    for r in report.recover:
        lines.append(
            f"  recover  {r.name}: "
            + (f"held {r.after_s:.2f} s after the restore" if r.held else f"did NOT hold within {r.budget_s:g} s")
        )
    lines += _outcome_lines(report)
    for d in report.decisions[:8]:  # which rule fired
        lines.append(f"  daemon   {d['at_s']:7.2f} s  {d['path']} {d['old']} -> {d['new']}: {'; '.join(d['reasons'])}")
    if len(report.decisions) > 8:
        lines.append(f"  daemon   ... {len(report.decisions) - 8} more health change(s) in the JSON report")
    for o in report.cleanup:
        lines.append(f"  cleanup  {o.what}: {'ok' if o.ok and not o.error else o.error}")
    for v in report.violations:
        lines.append(f"  VIOLATION {v}")
    return "\n".join(lines)


def _action_text(a: ActionResult) -> str:
    took = f" (took {a.took_s:.2f} s)" if a.took_s is not None and a.took_s >= 0.05 else ""
    if a.in_force_s is not None and a.in_force_s - a.applied_s >= 0.05:
        took += f" (first in force at {a.in_force_s:.2f} s)"
    refused = "refused as expected" if a.refusal_expected else "REFUSED"
    return f"{a.what} at {a.applied_s:.2f} s{took}" + (f": {refused} {a.error}" if a.error else "")


def to_json(report: DrillReport) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2)
