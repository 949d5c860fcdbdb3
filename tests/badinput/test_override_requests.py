"""Bad override requests (drain, undrain, pin, unpin, freeze, thaw, weight, unweight) on the daemon's control
socket: each gets one clear error answer (code, message naming the argument, a hint), and nothing changes: the
controller's runtime overrides stay empty and no overrides.json appears in the run directory.

The server is the daemon's (ControlServer, Dispatcher, the daemon's handlers and its OverrideDesk over a
real Controller judged from samples) on a real Unix socket.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from bgpctl.control import overrides_store
from bgpctl.control.service import OverrideDesk
from tests.control.support import Judged, Running, judge, lab_policy, live_snapshot, serving


def _req(verb: str, **args: Any) -> bytes:
    return json.dumps({"v": 1, "id": 1, "verb": verb, "args": args}).encode() + b"\n"


WHY = "CHG-1 test"

# (name, raw bytes, expected code, a word the message must hold)
CASES: list[tuple[str, bytes, str, str]] = [
    ("drain without reason", _req("drain", target="use1"), "bad_args", "'reason' is required"),
    ("drain without target", _req("drain", reason=WHY), "bad_args", "'target' is required"),
    ("drain target a number", _req("drain", target=42, reason=WHY), "bad_args", "target"),
    ("drain target climbs out", _req("drain", target="../etc", reason=WHY), "bad_args", "REGION"),
    ("drain target empty path", _req("drain", target="use1/", reason=WHY), "bad_args", "REGION/PATH"),
    ("drain target two slashes", _req("drain", target="use1/a/b", reason=WHY), "bad_args", "REGION/PATH"),
    ("drain target upper case", _req("drain", target="USE1", reason=WHY), "bad_args", "target"),
    ("drain unknown region", _req("drain", target="euc1", reason=WHY), "bad_args", "'euc1' is not in the policy"),
    ("drain unknown path", _req("drain", target="use1/dx", reason=WHY), "bad_args", "no path 'dx'"),
    ("drain unknown service", _req("drain", target="use1", service="chat", reason=WHY), "bad_args", "'chat'"),
    ("drain service not a name", _req("drain", target="use1", service="a b", reason=WHY), "bad_args", "service"),
    ("drain for negative", _req("drain", target="use1", reason=WHY, **{"for": -5}), "bad_args", "'for'"),
    ("drain for zero text", _req("drain", target="use1", reason=WHY, **{"for": "0s"}), "bad_args", "'for'"),
    ("drain for words", _req("drain", target="use1", reason=WHY, **{"for": "forever"}), "bad_args", "'for'"),
    ("drain for a year", _req("drain", target="use1", reason=WHY, **{"for": "365d"}), "bad_args", "30 days"),
    ("drain for huge number", _req("drain", target="use1", reason=WHY, **{"for": 1e300}), "bad_args", "'for'"),
    ("drain for a boolean", _req("drain", target="use1", reason=WHY, **{"for": True}), "bad_args", "'for'"),
    ("drain force a string", _req("drain", target="use1", reason=WHY, force="yes"), "bad_args", "'force'"),
    ("drain reason blank", _req("drain", target="use1", reason="   "), "bad_args", "'reason'"),
    ("drain reason escape codes", _req("drain", target="use1", reason="\x1b[31mred"), "bad_args", "'reason'"),
    ("drain reason too long", _req("drain", target="use1", reason="x" * 501), "bad_args", "'reason'"),
    ("drain forged by", _req("drain", target="use1", reason=WHY, by={"uid": 0}), "bad_args", "'by'"),
    ("pin without region", _req("pin", service="media", reason=WHY), "bad_args", "'region' is required"),
    ("pin unknown service", _req("pin", service="chat", region="use1", reason=WHY), "bad_args", "'chat'"),
    ("pin unknown region", _req("pin", service="media", region="euc1", reason=WHY), "bad_args", "'euc1'"),
    ("unpin nothing pinned", _req("unpin", service="media", reason=WHY), "refused", "no runtime pin"),
    ("undrain nothing drained", _req("undrain", target="use1", reason=WHY), "refused", "no runtime drain"),
    ("undrain now a string", _req("undrain", target="use1", reason=WHY, now="yes"), "bad_args", "'now'"),
    (
        "undrain now nothing drained",
        _req("undrain", target="use1", reason=WHY, now=True),
        "refused",
        "no runtime drain",
    ),
    ("thaw nothing frozen", _req("thaw", reason=WHY), "refused", "no runtime freeze"),
    ("freeze with a region", _req("freeze", reason=WHY, region="use1"), "bad_args", "'region'"),
    ("thaw without reason", _req("thaw"), "bad_args", "'reason' is required"),
    ("weight without weights", _req("weight", service="media", reason=WHY), "bad_args", "'weights' is required"),
    ("weight without service", _req("weight", weights={"use1": 1, "usw2": 1}, reason=WHY), "bad_args", "'service'"),
    ("weight without reason", _req("weight", service="media", weights={"use1": 1, "usw2": 1}), "bad_args", "reason"),
    ("weight weights a list", _req("weight", service="media", weights=[80, 20], reason=WHY), "bad_args", "weights"),
    ("weight weights empty", _req("weight", service="media", weights={}, reason=WHY), "bad_args", "'weights'"),
    (
        "weight negative",
        _req("weight", service="media", weights={"use1": -80, "usw2": 20}, reason=WHY),
        "bad_args",
        "weight of use1 must be a whole number 0-1000",
    ),
    (
        "weight past 1000",
        _req("weight", service="media", weights={"use1": 8000, "usw2": 20}, reason=WHY),
        "bad_args",
        "0-1000",
    ),
    (
        "weight fractional",
        _req("weight", service="media", weights={"use1": 80.5, "usw2": 19.5}, reason=WHY),
        "bad_args",
        "whole number",
    ),
    (
        "weight as text",
        _req("weight", service="media", weights={"use1": "80", "usw2": "20"}, reason=WHY),
        "bad_args",
        "whole number",
    ),
    (
        "weight a boolean",
        _req("weight", service="media", weights={"use1": True, "usw2": 20}, reason=WHY),
        "bad_args",
        "whole number",
    ),
    (
        "weight all zero",
        _req("weight", service="media", weights={"use1": 0, "usw2": 0}, reason=WHY),
        "bad_args",
        "every region weight 0",
    ),
    (
        "weight region not a name",
        _req("weight", service="media", weights={"USE1 ]": 80, "usw2": 20}, reason=WHY),
        "bad_args",
        "region name",
    ),
    (
        "weight unknown region",
        _req("weight", service="media", weights={"euc1": 80, "usw2": 20}, reason=WHY),
        "bad_args",
        "'euc1' is not in the policy",
    ),
    (
        "weight leaves a region out",
        _req("weight", service="media", weights={"use1": 100}, reason=WHY),
        "bad_args",
        "leave out usw2",
    ),
    (
        "weight unknown service",
        _req("weight", service="chat", weights={"use1": 80, "usw2": 20}, reason=WHY),
        "bad_args",
        "'chat'",
    ),
    (
        "weight active-standby service",
        _req("weight", service="api", weights={"use1": 80, "usw2": 20}, reason=WHY),
        "refused",
        "only for active-active",
    ),
    (
        "weight for a year",
        _req("weight", service="media", weights={"use1": 80, "usw2": 20}, reason=WHY, **{"for": "365d"}),
        "bad_args",
        "30 days",
    ),
    ("unweight nothing weighted", _req("unweight", service="media", reason=WHY), "refused", "no runtime weight"),
    (
        "unweight with weights",
        _req("unweight", service="media", weights={"use1": 1}, reason=WHY),
        "bad_args",
        "'weights'",
    ),
]


@pytest.fixture(scope="module")
def judged() -> Judged:
    return judge(lab_policy())


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="module")
def srv(judged: Judged, run_dir: Path) -> Iterator[Running]:
    desk = OverrideDesk(judged.controller, run_dir, structlog.wrap_logger(structlog.ReturnLogger()))
    with serving(run_dir, lambda: live_snapshot(judged), desk=desk, request_timeout_s=1.0) as running:
        yield running


@pytest.mark.parametrize(("name", "data", "code", "word"), CASES, ids=[c[0] for c in CASES])
def test_a_bad_override_request_gets_one_error_and_changes_nothing(
    srv: Running, judged: Judged, run_dir: Path, name: str, data: bytes, code: str, word: str
) -> None:
    before = judged.controller.last_plan
    answers = srv.raw(data)
    assert len(answers) == 1, answers
    (a,) = answers
    assert a["ok"] is False, a
    assert a["error"]["code"] == code, a
    assert word in a["error"]["message"], a
    assert a["error"]["hint"], a
    assert judged.controller.runtime == ()
    assert judged.controller.last_plan is before
    assert not (run_dir / overrides_store.FILE_NAME).exists()
    (status,) = srv.raw(_req("status"))
    assert [o for o in status["result"]["overrides"] if o["source"] == "runtime"] == []
