"""Bad policy files given to a running daemon's ``reload``: each is refused whole with the very lines
``bgpctl policy check`` prints for it (FILE:LINE FIELD: what (hint)), and nothing changes: the controller
runs the same policy object with the same plan and overrides, the apply step never runs, ``status`` shows
the refusal, the metrics count it.

The whole golden corpus of tests/policy/bad/ goes through (one source of truth: its .expected files), plus
what only a reload meets: a file that went missing or became unreadable, a change only a restart applies,
a runtime override the new file leaves without a target. The server is the daemon's (ControlServer,
Dispatcher, the daemon's handlers and PolicyDesk over a real Controller judged from samples) on a real
Unix socket; the CLI cases run the real ``bgpctl reload``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner

from bgpctl.cli.main import cli
from bgpctl.control.reload import PolicyDesk, read_source
from bgpctl.core.overrides import RuntimeOverride
from bgpctl.core.reload import PolicyDiff
from bgpctl.daemon.sinks import Metrics
from bgpctl.errors import EXIT_REFUSED
from bgpctl.policy.load import load_policy
from bgpctl.policy.model import Policy
from tests.badinput.support import BASE_POLICY, REPO
from tests.control.support import Judged, Running, judge, live_snapshot, schema_errors, serving

CORPUS = sorted((REPO / "tests" / "policy" / "bad").glob("*.yaml"))
BASE_TEXT = BASE_POLICY.read_text()


def _req(**args: Any) -> bytes:
    return json.dumps({"v": 1, "id": 9, "verb": "reload", "args": {"reason": "CHG-7 test", **args}}).encode() + b"\n"


@dataclass
class Daemonish:
    """What the tests look at: the controller, the desk, the metrics and every apply that ran."""

    judged: Judged
    desk: PolicyDesk
    metrics: Metrics
    path: Path
    srv: Running | None = None
    applied: list[PolicyDiff] = field(default_factory=list)

    def refused_count(self) -> float:
        return self.metrics.registry.get_sample_value("bgpctl_policy_reloads_total", {"result": "refused"}) or 0.0

    def ok_gauge(self) -> float | None:
        return self.metrics.registry.get_sample_value("bgpctl_policy_last_reload_successful")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemonish]:
    run_dir = tmp_path_factory.mktemp("run")
    path = run_dir / "policy.yaml"
    path.write_text(BASE_TEXT)
    judged = judge(load_policy(path))
    metrics = Metrics()
    holder: list[Daemonish] = []

    async def apply(new: Policy, change: PolicyDiff) -> None:
        holder[0].applied.append(change)
        judged.controller.reload(new)

    log = structlog.wrap_logger(structlog.ReturnLogger())
    desk = PolicyDesk(judged.controller, path, read_source(path)[1], log, apply=apply, on_result=metrics.reloaded)
    d = Daemonish(judged, desk, metrics, path)
    holder.append(d)

    def state() -> Any:
        return replace(live_snapshot(judged), policy=judged.controller.policy, policy_source=desk.state())

    with serving(run_dir, state, policy_desk=desk, request_timeout_s=2.0) as running:
        d.srv = running
        yield d


@pytest.fixture
def fresh(daemon: Daemonish) -> Iterator[Daemonish]:
    """Each case starts from the base file in place and leaves it so (a refused case changes nothing)."""
    daemon.path.unlink(missing_ok=True)
    if daemon.path.is_dir():
        daemon.path.rmdir()
    daemon.path.write_text(BASE_TEXT)
    yield daemon
    if daemon.path.is_dir():
        daemon.path.rmdir()
    daemon.path.unlink(missing_ok=True)
    daemon.path.write_text(BASE_TEXT)


def refused(d: Daemonish, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Reload through the socket; assert it was refused whole and nothing changed; the error object."""
    assert d.srv is not None
    c = d.judged.controller
    before = (c.policy, c.last_plan, c.runtime, dict(c.health), d.desk.source, len(d.applied), d.refused_count())
    (answer,) = d.srv.raw(_req(**(args or {})))
    assert answer["ok"] is False and answer["id"] == 9, answer
    err: dict[str, Any] = answer["error"]
    assert err["code"] == "refused" and err["hint"], err
    assert err["message"].startswith("reload refused, the daemon keeps running the old policy"), err
    assert "Traceback" not in err["message"]
    after = (c.policy, c.last_plan, c.runtime, dict(c.health), d.desk.source, len(d.applied))
    assert after == before[:-1], "a refused reload changed the running state"
    (status,) = d.srv.raw(json.dumps({"v": 1, "verb": "status"}).encode() + b"\n")
    assert schema_errors("status", status["result"]) == []
    last = status["result"]["daemon"]["policy_source"]["last_reload"]
    assert last["result"] == "refused" and last["error"] and last["by"]["uid"] == os.geteuid()
    assert d.refused_count() == before[-1] + 1 and d.ok_gauge() == 0
    return err


def _expected(bad: Path, path: Path) -> list[str]:
    """The golden lines of ``policy check`` for ``bad``, naming ``path`` instead (where reload reads it)."""
    rel = str(bad.relative_to(REPO))
    return [line.replace(rel, str(path)) for line in bad.with_suffix(".expected").read_text().splitlines()]


@pytest.mark.parametrize("bad", CORPUS, ids=[p.stem for p in CORPUS])
def test_every_bad_policy_of_the_corpus_is_refused_with_the_lines_of_policy_check(fresh: Daemonish, bad: Path) -> None:
    fresh.path.write_text(bad.read_text())
    err = refused(fresh)
    lines = err["message"].splitlines()
    expected = _expected(bad, fresh.path)
    assert lines[1:] == expected[:20] + (
        [f"... and {len(expected) - 20} more (see the daemon's log)"] * (len(expected) > 20)
    )
    assert re.fullmatch(r"reload refused, .*: \d+ problems? in " + re.escape(str(fresh.path)) + ":", lines[0]), lines[0]


def test_a_policy_file_that_went_missing_is_refused(fresh: Daemonish) -> None:
    fresh.path.unlink()
    err = refused(fresh)
    assert err["message"].splitlines()[1] == f"{fresh.path}: no such file (check the path)"


def test_a_directory_where_the_policy_was_is_refused(fresh: Daemonish) -> None:
    fresh.path.unlink()
    fresh.path.mkdir()
    err = refused(fresh)
    assert err["message"].splitlines()[1].startswith(f"{fresh.path}: is a directory (name the policy file itself")


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("too large", b"# " + b"x" * (300 * 1024) + b"\n", "more than the 256 KiB a policy may have"),
        ("not utf-8", BASE_TEXT.encode() + b"\n# caf\xe9\n", "UTF-8"),
        ("a NUL byte", BASE_TEXT.encode() + b"\x00\n", "control character"),
        ("empty", b"", "empty"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_policy_file_that_is_no_policy_text_is_refused(fresh: Daemonish, name: str, data: bytes, says: str) -> None:
    fresh.path.write_bytes(data)
    err = refused(fresh)
    assert says.lower() in err["message"].lower(), err
    assert err["message"].splitlines()[1].startswith(str(fresh.path)), err


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("    peer_as: 65010\n", "    peer_as: 65011\n", "peers.edge.peer_as: 65010 -> 65011"),
        ("  local_as: 65000\n", "  local_as: 65001\n", "speaker.local_as: 65000 -> 65001"),
        (
            "    role: edge\n",
            "    role: edge\n    md5_password: { env: EDGE_MD5 }\n",
            "peers.edge.md5_password: unset -> {'file': None, 'env': 'EDGE_MD5'}",
        ),
        ("    address: 198.18.1.1\n", "    address: 198.18.1.5\n", "peers.edge.address: 198.18.1.1 -> 198.18.1.5"),
    ],
    ids=["peer-as", "local-as", "md5", "address"],
)
def test_a_change_only_a_restart_applies_is_refused_naming_it(fresh: Daemonish, old: str, new: str, named: str) -> None:
    assert BASE_TEXT.count(old) == 1
    os.environ.setdefault("EDGE_MD5", "not-a-real-secret")  # the check warns about a missing variable only
    fresh.path.write_text(BASE_TEXT.replace(old, new))
    err = refused(fresh)
    assert named in err["message"].splitlines()[1:], err
    assert "restart the daemon" in err["hint"]


def test_a_runtime_override_the_new_policy_leaves_without_target_is_refused(fresh: Daemonish) -> None:
    c = fresh.judged.controller
    pin = RuntimeOverride("pin", region="usw2", service="api", since=1.0, reason="CHG-3")
    c.set_overrides((pin,))
    try:
        api = BASE_TEXT[BASE_TEXT.index("  api:\n") : BASE_TEXT.index("sla_classes:")]
        fresh.path.write_text(BASE_TEXT.replace(api, ""))
        err = refused(fresh)
        assert err["message"].splitlines()[1:] == ["pin api:usw2: service 'api' is not in the policy"]
        assert "undrain / unpin" in err["hint"]
    finally:
        c.set_overrides(())


def test_the_cli_exits_3_with_every_problem_as_file_line_and_the_hint_last(fresh: Daemonish) -> None:
    bad = REPO / "tests" / "policy" / "bad" / "multiple-mixed.yaml"
    fresh.path.write_text(bad.read_text())
    result = CliRunner().invoke(cli, ["reload", "--run-dir", str(fresh.path.parent)])
    assert result.exit_code == EXIT_REFUSED, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("bgpctl: the daemon refused: reload refused, the daemon keeps running the old policy")
    assert lines[1:-1] == _expected(bad, fresh.path)
    assert lines[-1] == "(fix the file (bgpctl policy check FILE prints the same), then reload again)"
    dry = CliRunner().invoke(cli, ["reload", "--dry-run", "--run-dir", str(fresh.path.parent)])
    assert dry.exit_code == EXIT_REFUSED and lines[1:-1] == dry.stderr.splitlines()[1:-1]


def test_after_the_refusals_a_good_file_is_applied_and_the_gauge_is_back_to_1(fresh: Daemonish) -> None:
    assert fresh.srv is not None
    assert BASE_TEXT.count("    edge: { med: 0 }\n") == 1
    fresh.path.write_text(BASE_TEXT.replace("    edge: { med: 0 }\n", "    edge: { med: 5 }\n"))
    (answer,) = fresh.srv.raw(_req())
    assert answer["ok"] is True, answer
    assert answer["result"]["result"] == "applied" and answer["result"]["diff"]["sections"] == ["actions"]
    # the edge takes one path per prefix here (no ADD-PATH in base.yaml): each preferred route gets the MED
    assert sorted((c["peer"], c["kind"], c["prefix"], c["med"]) for c in answer["result"]["changes"]) == [
        ("edge", "announce", "203.0.113.0/26", 5),
        ("edge", "announce", "203.0.113.128/26", 5),
    ]
    assert fresh.ok_gauge() == 1 and len(fresh.applied) == 1
    fresh.path.write_text(BASE_TEXT)  # and back, for the cases after this one
    (back,) = fresh.srv.raw(_req())
    assert back["ok"] is True and back["result"]["result"] == "applied"


def test_the_cli_finds_the_daemon_through_a_policy_file_that_does_not_check(fresh: Daemonish) -> None:
    """``bgpctl reload --policy FILE`` (as an operator runs it after editing FILE): the CLI takes the socket's
    directory from the broken file and lets the daemon refuse it (counted, logged), not refuse it itself."""
    from bgpctl.cli.control import FALLBACK_RUN_DIR, run_dir_of_text  # noqa: PLC0415

    run_dir = str(fresh.path.parent)
    text = BASE_TEXT.replace("speaker:\n", f"speaker:\n  exabgp: {{ run_dir: {run_dir} }}\n", 1)
    fresh.path.write_text(text.replace("    order: [use1, usw2]\n", "    order: [use1, usw3]\n"))
    refused_before = fresh.refused_count()
    result = CliRunner().invoke(cli, ["reload", "--policy", str(fresh.path)])
    assert result.exit_code == EXIT_REFUSED, result.output
    assert result.stderr.startswith("bgpctl: the daemon refused: reload refused"), result.stderr
    assert fresh.refused_count() == refused_before + 1  # the daemon judged it
    assert run_dir_of_text("speaker: [", "x.yaml") == FALLBACK_RUN_DIR
    assert run_dir_of_text("speaker: {exabgp: {run_dir: relative/dir}}", "x.yaml") == FALLBACK_RUN_DIR
