"""Run a failover drill (:mod:`bgpctl.lab.drill_model`) against a running lab and report it.

Timeline: steady-state checks -> call meter starts -> fault at ``fault.at_s`` -> expectations polled
(each against its own budget, timed from the fault) -> restore at ``restore.at_s`` -> recovery checks
-> the meter finishes -> report. A step that does not hold is recorded as failed, not raised: a
drill in "no controller" mode is *expected* to miss some expectations, and the report says which.
The restore always runs, also when a check failed or the drill was interrupted.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from bgpctl.lab import faults
from bgpctl.lab.drill_model import Action, Check, Drill
from bgpctl.lab.impair import Impairment
from bgpctl.lab.meter import run_meter
from bgpctl.lab.meter_report import MeterReport
from bgpctl.lab.poll import BudgetExceeded, eventually

if TYPE_CHECKING:
    from bgpctl.lab.runner import Lab


class CheckResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    node: str
    held: bool
    after_s: float | None  # since the step it follows (fault, restore) or the drill start (steady)
    budget_s: float
    problems: str = ""


class ActionResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    at_s: float  # planned, since the meter started
    applied_s: float  # actual, since the meter started
    what: str


class DrillReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    drill: str
    lab: str
    mode: str
    started_unix: float
    steady: list[CheckResult]
    fault: ActionResult | None
    expect: list[CheckResult]
    restore: ActionResult | None
    recover: list[CheckResult]
    meter: MeterReport | None
    interruption_ms: float | None  # the worst flow's longest gap: what one call heard
    bounds: dict[str, float | int | None]
    violations: list[str]
    passed: bool


def _check(lab: Lab, check: Check) -> CheckResult:
    start = time.monotonic()
    try:
        eventually(check.name, budget_s=check.budget_s, probe=lambda: lab.vtysh_json(check.node, check.vtysh),
                   expect=check.expect)
    except BudgetExceeded as e:
        return CheckResult(name=check.name, node=check.node, held=False, after_s=None, budget_s=check.budget_s,
                           problems=str(e))
    return CheckResult(name=check.name, node=check.node, held=True, after_s=round(time.monotonic() - start, 3),
                       budget_s=check.budget_s)


def describe(action: Action) -> str:
    if action.link:
        return f"link {action.link.node}/{action.link.iface} {action.link.state}"
    if action.impair:
        return "; ".join(f"impair {i.node}/{i.iface} " + ("clear" if i.clear else
                         f"delay {i.delay_ms:g} ms jitter {i.jitter_ms:g} ms loss {i.loss_pct:g} %")
                         for i in action.impair)
    if action.frr:
        return f"frr {action.frr.node} {action.frr.action}"
    assert action.bgp_clear is not None
    return f"bgp-clear {action.bgp_clear.node} {action.bgp_clear.peer}"


def apply(lab: Lab, action: Action, *, lifetime_s: float) -> None:
    """Carry out one drill action on the lab."""
    if action.link:
        lab.link_set(action.link.node, action.link.iface, action.link.state == "up")
    elif action.impair:
        for i in action.impair:
            if i.clear:
                faults.clear_node(lab, i.node, i.iface)
            else:
                imp = Impairment(delay_ms=i.delay_ms, jitter_ms=i.jitter_ms, loss_pct=i.loss_pct,
                                 duplicate_pct=i.duplicate_pct, reorder_pct=i.reorder_pct)
                faults.impair_node(lab, i.node, i.iface, imp, seconds=lifetime_s)
    elif action.frr:
        (lab.stop_frr if action.frr.action == "stop" else lab.start_frr)(action.frr.node)
    elif action.bgp_clear:
        lab.clear_bgp(action.bgp_clear.node, action.bgp_clear.peer)


def _at(t0: float, at_s: float) -> None:
    delay = t0 + at_s - time.monotonic()
    if delay > 0:
        time.sleep(delay)  # scheduling the fault on the drill's timeline, not waiting for a state


def run_drill(lab: Lab, drill: Drill, *, out_dir: Path | None = None,
              progress: Callable[[str], None] = lambda _m: None) -> DrillReport:
    mode = lab.mode
    started = time.time()
    steady = [_check(lab, c) for c in drill.steady]
    for r in steady:
        progress(f"steady: {r.name}: {'ok' if r.held else 'FAILED'}")
    if not all(r.held for r in steady):
        return _report(drill, lab, mode=mode, started=started, steady=steady)

    meter_result: dict[str, Any] = {}
    src = lab.netns(drill.meter.source)

    def meter() -> None:
        try:
            meter_result["report"] = run_meter(src, drill.meter.to, drill.meter.port, rate_pps=drill.meter.rate,
                                               fine=drill.meter.fine, flows=drill.meter.flows,
                                               seconds=drill.meter.seconds)
        except Exception as e:  # reported in the drill's report, not lost in a thread
            meter_result["error"] = e

    thread = threading.Thread(target=meter, name=f"meter-{drill.name}", daemon=True)
    t0 = time.monotonic()
    thread.start()
    fault_r = restore_r = None
    expect: list[CheckResult] = []
    recover: list[CheckResult] = []
    try:
        _at(t0, drill.fault.at_s)
        apply(lab, drill.fault, lifetime_s=drill.meter.seconds + 120)
        fault_r = ActionResult(at_s=drill.fault.at_s, applied_s=round(time.monotonic() - t0, 3),
                               what=describe(drill.fault))
        progress(f"fault at {fault_r.applied_s:.2f} s: {fault_r.what}")
        expect = [_check(lab, c) for c in drill.expect]
        for r in expect:
            progress(f"expect: {r.name}: {f'held after {r.after_s:.2f} s' if r.held else 'FAILED'}")
    finally:
        if drill.restore is not None:
            _at(t0, drill.restore.at_s)
            apply(lab, drill.restore, lifetime_s=drill.meter.seconds + 120)
            restore_r = ActionResult(at_s=drill.restore.at_s, applied_s=round(time.monotonic() - t0, 3),
                                     what=describe(drill.restore))
            progress(f"restore at {restore_r.applied_s:.2f} s: {restore_r.what}")
    recover = [_check(lab, c) for c in drill.recover]
    for r in recover:
        progress(f"recover: {r.name}: {f'held after {r.after_s:.2f} s' if r.held else 'FAILED'}")
    thread.join(timeout=drill.meter.seconds + 60)
    if "error" in meter_result:
        raise meter_result["error"]
    report = _report(drill, lab, mode=mode, started=started, steady=steady, fault=fault_r, expect=expect,
                     restore=restore_r, recover=recover, meter=meter_result.get("report"))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"drill-{drill.name}-{mode}-{int(started)}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(report.model_dump_json(indent=2))
        tmp.replace(path)
    return report


def _report(drill: Drill, lab: Lab, *, mode: str, started: float, steady: list[CheckResult],
            fault: ActionResult | None = None, expect: list[CheckResult] | None = None,
            restore: ActionResult | None = None, recover: list[CheckResult] | None = None,
            meter: MeterReport | None = None) -> DrillReport:
    expect, recover = expect or [], recover or []
    bounds = drill.bounds.get(mode)  # type: ignore[call-overload]
    violations = [f"{phase} check '{r.name}' did not hold within {r.budget_s:g} s"
                  for phase, rs in (("steady", steady), ("expect", expect), ("recover", recover))
                  for r in rs if not r.held]
    interruption = meter.longest_flow_gap_ms if meter else None
    if meter is None and steady and all(r.held for r in steady):
        violations.append("the call meter produced no report")
    if bounds is not None and meter is not None:
        if bounds.interruption_max_ms is not None and meter.longest_flow_gap_ms > bounds.interruption_max_ms:
            violations.append(f"interruption {meter.longest_flow_gap_ms:.0f} ms > bound "
                              f"{bounds.interruption_max_ms:g} ms")
        if bounds.lost_max is not None and meter.lost > bounds.lost_max:
            violations.append(f"lost {meter.lost} packets > bound {bounds.lost_max}")
    return DrillReport(drill=drill.name, lab=lab.name, mode=mode, started_unix=started, steady=steady, fault=fault,
                       expect=expect, restore=restore, recover=recover, meter=meter,
                       interruption_ms=interruption,
                       bounds=bounds.model_dump() if bounds else {}, violations=violations,
                       passed=not violations)


def summary(report: DrillReport) -> str:
    """A few lines an engineer reads after a drill."""
    lines = [f"drill {report.drill} (lab {report.lab}, mode {report.mode}): "
             f"{'PASSED' if report.passed else 'FAILED'}"]
    if report.fault:
        lines.append(f"  fault    {report.fault.what} at {report.fault.applied_s:.2f} s")
    for r in report.expect:
        lines.append(f"  expect   {r.name}: " + (f"held {r.after_s:.2f} s after the fault" if r.held
                                                 else f"did NOT hold within {r.budget_s:g} s"))
    if report.restore:
        lines.append(f"  restore  {report.restore.what} at {report.restore.applied_s:.2f} s")
    for r in report.recover:
        lines.append(f"  recover  {r.name}: " + (f"held {r.after_s:.2f} s after the restore" if r.held
                                                  else f"did NOT hold within {r.budget_s:g} s"))
    m = report.meter
    if m:
        regions = ", ".join(f"{k}: {v.answered}" for k, v in sorted(m.regions.items()))
        lines.append(f"  call     {m.sent} sent, {m.lost} lost ({m.loss_pct:.2f} %), worst flow interrupted "
                     f"{m.longest_flow_gap_ms:.0f} ms, all flows {m.longest_gap_ms:.0f} ms; answered by {regions}")
    for v in report.violations:
        lines.append(f"  VIOLATION {v}")
    return "\n".join(lines)


def to_json(report: DrillReport) -> str:
    return json.dumps(report.model_dump(mode="json"), indent=2)
