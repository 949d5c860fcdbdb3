"""The control server on a real Unix socket: modes, peer credentials, the hook for state-changing verbs,
and the CLI verbs against it."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner
from structlog.testing import capture_logs

from bgpctl import events
from bgpctl.cli import main
from bgpctl.control import client, protocol
from bgpctl.control.server import Dispatcher, PeerCred, may_change_state
from bgpctl.control.service import handlers
from tests.control.support import LAB_POLICY, REPO, judge, lab_policy, schema_errors, serving, snapshot


@pytest.fixture
def snap() -> Any:
    s = snapshot(judge(lab_policy()))
    return lambda: s


def test_the_socket_is_owner_only_and_answers_status_and_routes(tmp_path: Path, snap: Any) -> None:
    with serving(tmp_path, snap) as srv:
        mode = stat.S_IMODE(srv.path.stat().st_mode)
        assert mode == 0o600
        status = client.call(tmp_path, "status", {"decisions": 4})
        assert schema_errors("status", status) == [] and len(status["decisions"]) == 4
        routes = client.call(tmp_path, "routes", {"peer": "edge"})
        assert schema_errors("routes", routes) == [] and [p["peer"] for p in routes["peers"]] == ["edge"]
        assert client.call(tmp_path, "verbs")["version"] == protocol.VERSION
    assert not srv.path.exists()  # removed on stop


def test_with_control_group_the_socket_is_group_rw(tmp_path: Path, snap: Any) -> None:
    gid = os.getgid()
    with serving(tmp_path, snap, group_gid=gid) as srv:
        st_ = srv.path.stat()
        assert stat.S_IMODE(st_.st_mode) == 0o660 and st_.st_gid == gid


def test_a_stale_socket_is_replaced(tmp_path: Path, snap: Any) -> None:
    (tmp_path / protocol.SOCKET_NAME).write_text("stale")
    with serving(tmp_path, snap):
        assert client.call(tmp_path, "verbs")["verbs"]


def _drain_verb() -> dict[str, protocol.Verb]:
    return {**protocol.VERBS, "drain": protocol.Verb("drain", "test", {}, changes_state=True)}


def test_a_state_changing_verb_is_logged_with_who_and_why(tmp_path: Path, snap: Any) -> None:
    done: list[Mapping[str, Any]] = []

    def drain(args: Mapping[str, Any]) -> Mapping[str, Any]:
        done.append(args)
        return {"drained": True}

    with (
        capture_logs() as logs,
        serving(tmp_path, snap, extra={"drain": drain}, verbs=_drain_verb(), log=structlog.get_logger()),
    ):
        assert client.call(tmp_path, "drain", {"reason": "CHG-42 fibre work"}) == {"drained": True}
    (change,) = [e for e in logs if e["event"] == events.CONTROL_CHANGE]
    assert change["verb"] == "drain" and change["reason"] == "CHG-42 fibre work"
    assert (change["pid"], change["uid"], change["gid"]) == (os.getpid(), os.getuid(), os.getgid())
    # the handler learns who asked too (no client can send "by": it is not an argument of any verb)
    assert done == [{"reason": "CHG-42 fibre work", "by": {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid()}}]


def test_a_state_changing_verb_from_someone_else_is_forbidden_and_not_run(snap: Any) -> None:
    done: list[object] = []

    def drain(args: Mapping[str, Any]) -> Mapping[str, Any]:
        done.append(args)
        return {}

    dispatcher = Dispatcher(
        {**handlers(snap), "drain": drain},
        structlog.wrap_logger(structlog.ReturnLogger()),
        verbs=_drain_verb(),
        owner_uid=0,
        group_gid=None,
    )
    line = protocol.request_line("drain", {"reason": "x"}, 9)
    answer = dispatcher.handle(line, PeerCred(pid=1, uid=1000, gid=1000))
    assert answer["ok"] is False and answer["id"] == 9 and answer["error"]["code"] == "forbidden"
    assert done == []
    assert dispatcher.handle(line, PeerCred(pid=1, uid=0, gid=0))["ok"] is True and len(done) == 1


def test_who_may_change_state() -> None:
    def check(uid: int, gid: int, group: int | None, groups: set[int] | None = None) -> bool:
        return may_change_state(PeerCred(1, uid, gid), owner_uid=0, group_gid=group, groups=lambda u: groups or set())

    assert check(0, 0, None)
    assert not check(1000, 1000, None)
    assert check(1000, 999, 999)
    assert check(1000, 1000, 999, {999})
    assert not check(1000, 1000, 999, {5})


def test_a_failing_handler_answers_internal_and_the_server_keeps_answering(tmp_path: Path, snap: Any) -> None:
    def broken(args: Mapping[str, Any]) -> Mapping[str, Any]:
        raise RuntimeError("bug")

    with capture_logs() as logs, serving(tmp_path, snap, extra={"verbs": broken}, log=structlog.get_logger()) as srv:
        (answer,) = srv.raw(protocol.request_line("verbs"))
        assert answer["ok"] is False and answer["error"]["code"] == "internal"
        assert client.call(tmp_path, "status")["daemon"]["pid"] == 4242
    assert any(e["event"] == events.CONTROL_FAILED for e in logs)


# ------------------------------------------------------------------------------------------ the CLI


def test_cli_status_and_routes_json_validate_and_text_is_a_table(tmp_path: Path, snap: Any) -> None:
    r = CliRunner()
    with serving(tmp_path, snap):
        out = r.invoke(main.cli, ["status", "--run-dir", str(tmp_path), "--json", "-n", "3"])
        assert out.exit_code == 0, out.output
        data = json.loads(out.output)
        assert schema_errors("status", data) == [] and len(data["decisions"]) == 3
        out = r.invoke(main.cli, ["routes", "--run-dir", str(tmp_path), "--json", "--prefix", "203.0.113.70"])
        assert out.exit_code == 0, out.output
        data = json.loads(out.output)
        assert schema_errors("routes", data) == []
        assert {x["prefix"] for p in data["peers"] for x in p["routes"]} == {"203.0.113.64/26"}
        text = r.invoke(main.cli, ["status", "--run-dir", str(tmp_path)])
        assert text.exit_code == 0 and "PATH" in text.output and "media/usw2/interconnect" in text.output
        text = r.invoke(main.cli, ["routes", "--run-dir", str(tmp_path), "--peer", "edge"])
        assert text.exit_code == 0 and "peer edge 198.18.1.1" in text.output and "tgw-use1" not in text.output
        bad = r.invoke(main.cli, ["routes", "--run-dir", str(tmp_path), "--peer", "nope"])
        assert bad.exit_code == 2
        assert bad.output == (
            "bgpctl: the daemon refused: no peer 'nope' in the policy: peers are edge, tgw-use1, tgw-usw2 "
            "(bgpctl status lists the peers)\n"
        )


def test_cli_without_a_daemon_says_so_in_one_line_and_exits_1(tmp_path: Path) -> None:
    out = CliRunner().invoke(main.cli, ["status", "--run-dir", str(tmp_path)])
    assert out.exit_code == 1
    assert out.output.count("\n") == 1 and out.output.startswith("bgpctl: the daemon is not running (no socket at")


def test_cli_finds_the_socket_from_the_policy_run_dir(tmp_path: Path) -> None:
    policy = lab_policy()
    out = CliRunner().invoke(main.cli, ["routes", "--policy", str(LAB_POLICY)])
    assert out.exit_code == 1
    assert f"{policy.speaker.exabgp.run_dir}/control.sock" in out.output


def test_cli_refuses_a_bad_prefix_before_asking(tmp_path: Path) -> None:
    out = CliRunner().invoke(main.cli, ["routes", "--run-dir", str(tmp_path), "--prefix", "203.0.113.300"])
    assert out.exit_code == 2 and "is not an IP address or prefix" in out.output


@pytest.mark.skipif(
    os.geteuid() != 0, reason="without root the daemon's capability check refuses first (test_privileges.py)"
)
def test_the_daemon_refuses_an_unknown_control_group_and_starts_nothing(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    text = LAB_POLICY.read_text()
    policy.write_text(text + "\ncontrol:\n  group: bgpctl-no-such-group\n")
    run_dir = tmp_path / "run"
    out = CliRunner().invoke(main.cli, ["daemon", "--policy", str(policy), "--run-dir", str(run_dir)])
    assert out.exit_code == 1
    assert out.output == (
        "bgpctl: control.group 'bgpctl-no-such-group' is no group on this host: create it "
        "(groupadd bgpctl-no-such-group) or remove control.group from the policy (the control socket is then "
        "root only)\n"
    )
    assert not run_dir.exists()


NOBODY = 65534
_CONNECT_AS_NOBODY = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("EACCES"); sys.exit(0)
s.sendall(sys.argv[2].encode() + b"\\n")
print(s.makefile("rb").readline().decode().strip())
"""


def _as_nobody(sock: Path, line: bytes) -> str:
    import shutil  # noqa: PLC0415
    import subprocess  # noqa: PLC0415

    setpriv = shutil.which("setpriv")
    assert setpriv is not None
    argv = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "/usr/bin/python3", "-I", "-c"]
    out = subprocess.run(
        [*argv, _CONNECT_AS_NOBODY, str(sock), line.decode().strip()],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user (setpriv)")
def test_another_user_is_kept_out_by_the_mode_and_with_the_group_is_seen_by_its_credentials(snap: Any) -> None:
    import tempfile  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="bgpctl-ctl-") as d:
        os.chmod(d, 0o755)  # the directory is not what keeps nobody out here: the socket's mode is
        tmp = Path(d)
        with serving(tmp, snap) as srv:
            assert _as_nobody(srv.path, protocol.request_line("status")) == "EACCES"
        done: list[Mapping[str, Any]] = []

        def drain(args: Mapping[str, Any]) -> Mapping[str, Any]:
            done.append(args)
            return {}

        for may_change in (True, False):  # the group may change state (logged), or only connect
            kw: dict[str, Any] = {} if may_change else {"dispatcher_kw": {"group_gid": None}}
            with (
                capture_logs() as logs,
                serving(
                    tmp,
                    snap,
                    group_gid=NOBODY,
                    extra={"drain": drain},
                    verbs=_drain_verb(),
                    log=structlog.get_logger(),
                    **kw,
                ) as srv,
            ):
                status = json.loads(_as_nobody(srv.path, protocol.request_line("status", {"decisions": 1})))
                assert status["ok"] is True and len(status["result"]["decisions"]) == 1
                drained = json.loads(_as_nobody(srv.path, protocol.request_line("drain", {"reason": "CHG-7"}, 5)))
            assert drained["id"] == 5
            if may_change:
                assert drained["ok"] is True and [d["reason"] for d in done] == ["CHG-7"]
                assert (done[0]["by"]["uid"], done[0]["by"]["gid"]) == (NOBODY, NOBODY)
                (change,) = [e for e in logs if e["event"] == events.CONTROL_CHANGE]
                assert (change["uid"], change["gid"], change["reason"]) == (NOBODY, NOBODY, "CHG-7")
            else:
                assert drained["ok"] is False and drained["error"]["code"] == "forbidden" and len(done) == 1
                (refused,) = [e for e in logs if e["event"] == events.CONTROL_REFUSED]
                assert (refused["uid"], refused["gid"], refused["code"]) == (NOBODY, NOBODY, "forbidden")


def test_cli_with_a_bad_policy_exits_3_naming_file_and_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    out = CliRunner().invoke(main.cli, ["status", "--policy", "tests/policy/bad/bool-yes.yaml"])
    assert out.exit_code == 3
    assert out.output.startswith("bgpctl: tests/policy/bad/bool-yes.yaml:12 ")
