"""The override verbs over a real Unix socket and through the CLI: the daemon's ControlServer, Dispatcher,
handlers and OverrideDesk over a real Controller; what status shows, what is on disk, the exit codes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog
from click.testing import CliRunner

from bgpctl.cli import main
from bgpctl.control import client, overrides_store
from bgpctl.control.service import OverrideDesk
from bgpctl.core.controller import Controller
from bgpctl.policy.model import PathState
from tests.control.support import judge, lab_policy, live_snapshot, schema_errors, serving

QUIET = structlog.wrap_logger(structlog.ReturnLogger())


def _runtime(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [o for o in status["overrides"] if o["source"] == "runtime"]


def test_drain_over_the_socket_shows_in_status_with_who_when_why_and_expiry(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    j = judge(lab_policy())
    desk = OverrideDesk(j.controller, tmp_path, QUIET)
    with serving(tmp_path, lambda: live_snapshot(j), desk=desk):
        result = client.call(tmp_path, "drain", {"target": "use1", "reason": "CHG-42 fibre work", "for": "15m"})
        assert result["set"]["target"] == "use1"
        status = client.call(tmp_path, "status")
    assert schema_errors("status", status) == []
    (row,) = _runtime(status)
    assert row["kind"] == "drain" and row["target"] == "use1" and row["reason"] == "CHG-42 fibre work"
    assert row["by"] == {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid()}
    assert isinstance(row["since"], float) and row["expires"] == row["since"] + 900.0
    use1 = [p for p in status["paths"] if p["region"] == "use1"]
    assert use1 and all(p["state"] == PathState.STANDBY.value and "override drain use1" in p["why"] for p in use1)
    # on disk, and a restarted daemon (a new controller, a new desk) has it in force from the start
    assert (
        json.loads((tmp_path / overrides_store.FILE_NAME).read_text())["overrides"][0]["reason"] == "CHG-42 fibre work"
    )
    again = Controller(lab_policy(), {})
    OverrideDesk(again, tmp_path, QUIET).load()
    assert again.runtime == j.controller.runtime


def test_the_cli_verbs_exit_codes_and_outputs(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    j = judge(lab_policy())
    desk = OverrideDesk(j.controller, tmp_path, QUIET)
    r = CliRunner()
    where = ["--run-dir", str(tmp_path)]
    with serving(tmp_path, lambda: live_snapshot(j), desk=desk):
        out = r.invoke(main.cli, ["drain", "usw2", "--reason", "CHG-1", *where])
        assert out.exit_code == 0, out.output
        assert out.output.startswith("drain usw2 in force until removed (by uid ")
        refused = r.invoke(main.cli, ["drain", "use1", "--reason", "CHG-2", *where])
        assert refused.exit_code == 3
        assert "last healthy region" in refused.output and "--force" in refused.output
        assert refused.output.count("\n") == 1
        forced = r.invoke(main.cli, ["drain", "use1", "--reason", "CHG-2", "--force", "--for", "90s", *where, "--json"])
        assert forced.exit_code == 0, forced.output
        data = json.loads(forced.output)
        assert [o["target"] for o in data["overrides"]] == ["usw2", "use1"]
        assert data["set"]["expires"] == data["set"]["since"] + 90.0
        unknown = r.invoke(main.cli, ["drain", "euc1", "--reason", "x", *where])
        assert unknown.exit_code == 2 and "'euc1' is not in the policy" in unknown.output
        bad_for = r.invoke(main.cli, ["drain", "use1", "--reason", "x", "--for", "soon", *where])
        assert bad_for.exit_code == 2 and "--for" in bad_for.output
        no_reason = r.invoke(main.cli, ["pin", "media", "use1", *where])
        assert no_reason.exit_code == 2 and "--reason" in no_reason.output
        assert r.invoke(main.cli, ["pin", "media", "usw2", "--reason", "CHG-3", *where]).exit_code == 0
        assert r.invoke(main.cli, ["freeze", "--reason", "CHG-4", *where]).exit_code == 0
        text = r.invoke(main.cli, ["status", *where])
        assert "freeze" in text.output and "media:usw2" in text.output and "CHG-3" in text.output
        for argv in (["undrain", "use1"], ["undrain", "usw2"], ["unpin", "media"], ["thaw"]):
            done = r.invoke(main.cli, [*argv, *where, "--json"])
            assert done.exit_code == 0, done.output
            assert json.loads(done.output)["removed"]
        again = r.invoke(main.cli, ["thaw", *where])
        assert again.exit_code == 3 and "no runtime freeze" in again.output
        # the undrained regions return after the rise rules: holds per service, shown as returning
        assert {(o.target, o.returning) for o in j.controller.runtime} == {
            (f"{region} for {s}", True) for region in ("use1", "usw2") for s in ("media", "signalling", "api")
        }
        text = r.invoke(main.cli, ["status", *where])
        assert "drain (returning)" in text.output and "returning after rise_s 20 s" in text.output
        twice = r.invoke(main.cli, ["undrain", "use1", *where])
        assert twice.exit_code == 3 and "already returning" in twice.output and "--now" in twice.output
        for region in ("use1", "usw2"):
            now = r.invoke(main.cli, ["undrain", region, "--now", "--reason", "at once", *where])
            assert now.exit_code == 0, now.output
            assert now.output.count(f"drain {region} for ") == 3  # the three holds removed
    assert j.controller.runtime == ()
    assert json.loads((tmp_path / overrides_store.FILE_NAME).read_text()) == {"version": 1, "overrides": []}


def test_weight_over_the_socket_and_the_cli_shows_in_status_routes_and_on_disk(tmp_path: Path) -> None:
    """``bgpctl weight media use1=80 usw2=20``: status lists it, routes carry each region's weight (the
    link-bandwidth community's value) and the rule that made it, the file holds it, a restart has it;
    use1=0 makes use1 standby; ``unweight`` ends it and the routes carry no weight again."""
    tmp_path.chmod(0o700)
    j = judge(lab_policy())
    desk = OverrideDesk(j.controller, tmp_path, QUIET)
    r = CliRunner()
    where = ["--run-dir", str(tmp_path)]

    steps = iter(range(1, 100))

    def replan() -> None:  # the daemon's loop steps the controller after a change; so does this test
        j.controller.step(j.now + next(steps) * 0.01)

    def media_weights(routes: Mapping[str, Any]) -> dict[str, int | None]:
        (edge,) = [p for p in routes["peers"] if p["peer"] == "edge"]
        return {x["next_hop"]: x.get("weight") for x in edge["routes"] if x["prefix"] == "203.0.113.0/26"}

    with serving(tmp_path, lambda: live_snapshot(j), desk=desk):
        assert media_weights(client.call(tmp_path, "routes")) == {"198.18.1.11": None, "198.18.1.12": None}
        bad = r.invoke(main.cli, ["weight", "media", "use1=80", "usw2=-20", "--reason", "x", *where])
        assert bad.exit_code == 2 and "REGION=WEIGHT" in bad.output
        out = r.invoke(main.cli, ["weight", "media", "use1=80", "usw2=20", "--reason", "CHG-7 canary", *where])
        assert out.exit_code == 0, out.output
        assert out.output.startswith("weight media use1=80 usw2=20 in force until removed (by uid ")
        replan()
        status = client.call(tmp_path, "status")
        routes = client.call(tmp_path, "routes")
        assert schema_errors("status", status) == [] and schema_errors("routes", routes) == []
        (row,) = _runtime(status)
        assert (
            row["kind"] == "weight" and row["weights"] == {"use1": 80, "usw2": 20} and row["reason"] == "CHG-7 canary"
        )
        assert media_weights(routes) == {"198.18.1.11": 80, "198.18.1.12": 20}
        (edge,) = [p for p in routes["peers"] if p["peer"] == "edge"]
        media = [x for x in edge["routes"] if x["prefix"] == "203.0.113.0/26"]
        assert all(x["rule"]["override"] == "weight media use1=80 usw2=20" for x in media), media
        text = r.invoke(main.cli, ["routes", *where]).output
        assert "weight:80" in text and "weight:20" in text
        on_disk = json.loads((tmp_path / overrides_store.FILE_NAME).read_text())["overrides"]
        assert [(o["kind"], o["weights"]) for o in on_disk] == [("weight", {"use1": 80, "usw2": 20})]
        again = Controller(lab_policy(), {})
        OverrideDesk(again, tmp_path, QUIET).load()
        assert again.runtime == j.controller.runtime
        # weight 0: use1's up path is standby while usw2 is up
        zero = r.invoke(main.cli, ["weight", "media", "use1=0", "usw2=100", "--reason", "CHG-8", *where, "--json"])
        assert zero.exit_code == 0, zero.output
        replan()
        paths = {p["path"]: p for p in client.call(tmp_path, "status")["paths"]}
        assert paths["media/use1/interconnect"]["state"] == PathState.STANDBY.value
        assert "weight 0" in paths["media/use1/interconnect"]["why"]
        assert media_weights(client.call(tmp_path, "routes")) == {"198.18.1.11": None, "198.18.1.12": 100}
        done = r.invoke(main.cli, ["unweight", "media", *where, "--json"])
        assert done.exit_code == 0 and json.loads(done.output)["removed"][0]["weights"] == {"use1": 0, "usw2": 100}
        replan()
        assert media_weights(client.call(tmp_path, "routes")) == {"198.18.1.11": None, "198.18.1.12": None}
        twice = r.invoke(main.cli, ["unweight", "media", *where])
        assert twice.exit_code == 3 and "no runtime weight of media" in twice.output
    assert j.controller.runtime == ()
