"""PolicyDesk (bgpctl reload) over a real Controller judged from samples: what each outcome logs, counts and
leaves behind; the file is real, the apply step is the controller's own reload (or one that fails)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from bgpctl import events
from bgpctl.control.protocol import Code, ProtocolError
from bgpctl.control.reload import PolicyDesk, read_source
from bgpctl.core.reload import PolicyDiff
from bgpctl.daemon.sinks import Metrics
from bgpctl.errors import ProbeError
from bgpctl.policy.model import Policy
from tests.control.support import LAB_POLICY, Judged, judge, lab_policy

LAB_TEXT = LAB_POLICY.read_text()
STANDBY = "    edge: { med: 100, prepend: 1 }\n"


class Desk:
    def __init__(self, tmp: Path, *, fail: bool = False) -> None:
        self.path = tmp / "policy.yaml"
        self.path.write_text(LAB_TEXT)
        self.judged: Judged = judge(lab_policy())
        self.metrics = Metrics()
        self.applied: list[PolicyDiff] = []
        self.fail = fail
        self.desk = PolicyDesk(
            self.judged.controller,
            self.path,
            read_source(self.path)[1],
            structlog.get_logger(),
            apply=self.apply,
            on_result=self.metrics.reloaded,
        )

    async def apply(self, new: Policy, change: PolicyDiff) -> None:
        if self.fail:
            raise ProbeError("paths use1/interconnect and euc1/interconnect share a table but pin it differently")
        self.applied.append(change)
        self.judged.controller.reload(new)

    def reload(self, *, dry_run: bool = False) -> dict[str, Any]:
        return asyncio.run(self.desk.reload(dry_run=dry_run, by={"pid": 1, "uid": 0, "gid": 0}, reason="CHG-9"))

    def count(self, result: str) -> float:
        return self.metrics.registry.get_sample_value("bgpctl_policy_reloads_total", {"result": result}) or 0.0


def test_a_good_file_is_applied_logged_counted_and_shown(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    d.path.write_text(LAB_TEXT.replace(STANDBY, "    edge: { med: 150, prepend: 1 }\n"))
    with capture_logs() as logs:
        answer = d.reload()
    assert answer["result"] == "applied" and answer["diff"]["sections"] == ["actions"]
    assert [(c["peer"], c["prefix"], c["path_id"], c["med"]) for c in answer["changes"]] == [
        ("edge", "203.0.113.128/26", 2, 150)
    ]
    assert d.judged.controller.policy.actions.standby.edge.med == 150  # type: ignore[union-attr]
    (event,) = [e for e in logs if e["event"] == events.POLICY_RELOAD]
    assert (event["result"], event["why"], event["route_changes"], event["sections"]) == (
        "applied",
        "CHG-9",
        1,
        ["actions"],
    )
    state = d.desk.state()
    assert state["sha256"] == answer["policy"]["sha256"] != answer["previous"]["sha256"]
    assert state["last_reload"]["result"] == "applied" and state["last_reload"]["by"]["uid"] == 0
    assert d.count("applied") == 1


def test_the_same_policy_in_another_layout_is_unchanged_and_nothing_is_applied(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    before = d.judged.controller.policy
    d.path.write_text("# reviewed in CHG-9: comments only\n" + LAB_TEXT)
    answer = d.reload()
    assert answer["result"] == "unchanged" and answer["changes"] == [] and d.applied == []
    assert d.judged.controller.policy is before
    assert d.desk.state()["sha256"] == answer["policy"]["sha256"]  # the file as it is now
    assert d.count("unchanged") == 1


def test_a_dry_run_changes_nothing_logs_no_reload_and_counts_nothing(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    c = d.judged.controller
    before = (c.policy, c.last_plan, d.desk.source)
    d.path.write_text(LAB_TEXT.replace(STANDBY, "    edge: { med: 150, prepend: 1 }\n"))
    with capture_logs() as logs:
        answer = d.reload(dry_run=True)
    assert answer["dry_run"] is True and answer["result"] == "applied" and len(answer["changes"]) == 1
    assert (c.policy, c.last_plan, d.desk.source) == before and d.applied == []
    assert [e for e in logs if e["event"] == events.POLICY_RELOAD] == []
    assert d.desk.last is None and sum(d.count(r) for r in ("applied", "unchanged", "refused")) == 0
    d.path.write_text("speaker: [\n")
    with pytest.raises(ProtocolError) as refused:
        d.reload(dry_run=True)
    assert refused.value.code is Code.REFUSED and d.desk.last is None and d.count("refused") == 0


def test_an_apply_that_fails_is_a_refusal_and_the_old_policy_runs_on(tmp_path: Path) -> None:
    d = Desk(tmp_path, fail=True)
    before = d.judged.controller.policy
    d.path.write_text(LAB_TEXT.replace(STANDBY, "    edge: { med: 150, prepend: 1 }\n"))
    with capture_logs() as logs, pytest.raises(ProtocolError) as refused:
        d.reload()
    assert refused.value.code is Code.REFUSED
    assert refused.value.message.splitlines() == [
        "reload refused, the daemon keeps running the old policy: it could not be applied:",
        "paths use1/interconnect and euc1/interconnect share a table but pin it differently",
    ]
    assert d.judged.controller.policy is before
    (event,) = [e for e in logs if e["event"] == events.POLICY_RELOAD]
    assert event["result"] == "refused" and event["log_level"] == "error"
    assert d.count("refused") == 1
    assert d.metrics.registry.get_sample_value("bgpctl_policy_last_reload_successful") == 0


def test_reloads_one_at_a_time(tmp_path: Path) -> None:
    d = Desk(tmp_path)
    d.path.write_text(LAB_TEXT.replace(STANDBY, "    edge: { med: 150, prepend: 1 }\n"))
    gate = asyncio.Event()
    inside: list[int] = []

    async def slow_apply(new: Policy, change: PolicyDiff) -> None:
        inside.append(len(inside))
        assert len(inside) == 1, "a second reload ran while the first applied"
        await gate.wait()
        d.judged.controller.reload(new)

    d.desk.apply = slow_apply

    async def both() -> list[str]:
        first = asyncio.create_task(d.desk.reload(dry_run=False, by=None, reason="a"))
        second = asyncio.create_task(d.desk.reload(dry_run=False, by=None, reason="b"))
        while not inside:  # the first is applying; the second has reached the lock by then
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not second.done() and len(inside) == 1
        gate.set()
        return [r["result"] for r in await asyncio.gather(first, second)]

    assert asyncio.run(both()) == ["applied", "unchanged"]  # the second found the first's policy running


def test_the_reload_answer_for_people_lists_each_route_change_with_its_attributes(tmp_path: Path) -> None:
    from bgpctl.control.render import policy_source_text, reload_text  # noqa: PLC0415

    d = Desk(tmp_path)
    d.path.write_text(LAB_TEXT.replace(STANDBY, "    edge: { med: 150, prepend: 1 }\n"))
    dry = reload_text(d.reload(dry_run=True))
    assert dry[0].startswith(f"dry run, nothing changed: it would apply ({d.path}, sha256 ")
    assert dry[1:] == [
        "  sections changed: actions",
        "Route changes (1):",
        "  edge         announce 203.0.113.128/26 id 2 nh 198.18.1.12 as-path 65000 65000 med 150  "
        "(api/usw2/interconnect standby (de-preferred))",
    ]
    assert reload_text(d.reload())[0].startswith("applied: the new policy runs")
    assert d.desk.last is not None
    d.desk.last = replace(d.desk.last, by={"signal": "SIGHUP"})
    assert policy_source_text(d.desk.state())[1].endswith("by signal SIGHUP: applied")
