"""The drill model and the pure helpers behind the drill report (no lab needed)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import ValidationError
from ruamel.yaml import YAML

from bgpctl.cli.main import cli
from bgpctl.control.reload import refusal_of_problems
from bgpctl.core.reload import diff, restart_needed
from bgpctl.errors import LabError, PolicyError
from bgpctl.policy.load import check_policy_text, load_policy
from bgpctl_lab import nft
from bgpctl_lab.drill import (
    ActionResult,
    drill_daemons,
    drill_nodes,
    flaps,
    moved_after,
    prefix_change_problems,
    refusal_problems,
    session_age_problems,
    session_changes,
    session_problems,
)
from bgpctl_lab.drill_model import Bounds, Drill, DrillError, Sessions, load_drill
from bgpctl_lab.route_watch import NextHops, RouteChange, RouteWatcher, changes, nexthops_of
from bgpctl_lab.topology import drills_dir
from tests.lab.helpers import TOPOLOGY

DRILLS = drills_dir(TOPOLOGY)
ALL_DRILLS = sorted(p.stem for p in DRILLS.glob("*.yaml"))
ISSUE_DRILLS = {
    "region-blackhole",
    "interconnect-cut",
    "region-loss",
    "region-latency",
    "soak-jitter",
    "soak-jitter-short",
    "both-regions-down",
    "active-active",
}


def raw(name: str) -> dict[str, Any]:
    data = YAML(typ="safe").load((DRILLS / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def write(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "broken.yaml"
    YAML(typ="safe").dump(data, path)
    return str(path)


def test_every_issue_drill_exists_and_loads() -> None:
    assert set(ALL_DRILLS) >= ISSUE_DRILLS
    for name in ALL_DRILLS:
        assert load_drill(name, DRILLS).name == name


def test_cut_drills_bound_the_controller_at_400_ms() -> None:
    for name in ("region-blackhole", "interconnect-cut"):
        bounds = load_drill(name, DRILLS).bounds
        assert bounds["controller"].interruption_max_ms == 400


def test_budgets_per_mode() -> None:
    cut = load_drill("interconnect-cut", DRILLS)
    edge = next(c for c in cut.expect if c.name == "edge routes media via usw2 only")
    assert (edge.budget("controller"), edge.budget("no-controller-bfd"), edge.budget("no-controller")) == (1, 2, 12)
    loss = load_drill("region-loss", DRILLS).expect[0]
    assert loss.budget("controller") == 2  # "on region 2 within 2 s"
    assert cut.recover[0].not_before("controller") == 10 and cut.recover[0].not_before("no-controller") is None


def test_soak_demands_zero_route_changes_and_both_down_no_withdrawal() -> None:
    for name in ("soak-jitter", "soak-jitter-short"):
        d = load_drill(name, DRILLS)
        assert d.watch is not None
        assert {m: b.route_changes_max for m, b in d.bounds.items()} == {
            "controller": 0,
            "no-controller": 0,
            "no-controller-bfd": 0,
        }
    assert load_drill("soak-jitter", DRILLS).meter.seconds == 600
    assert load_drill("soak-jitter-short", DRILLS).meter.seconds == 30
    down = load_drill("both-regions-down", DRILLS).bounds
    assert down["controller"].route_withdrawals_max == 0  # fail-static: the last routes are never withdrawn
    assert down["no-controller"].route_changes_max == 0 and down["no-controller-bfd"].route_changes_max == 0


def test_a_wrong_field_is_refused_naming_it(tmp_path: Path) -> None:
    data = raw("interconnect-cut")
    data["expect"][1]["budget_s"] = -1
    with pytest.raises(DrillError, match=r"expect\[1\]\.budget_s: Input should be greater than 0"):
        load_drill(write(tmp_path, data), DRILLS)


def test_an_unknown_field_is_refused_naming_it(tmp_path: Path) -> None:
    data = raw("region-blackhole")
    data["fault"]["lnk"] = data["fault"].pop("link")
    with pytest.raises(DrillError, match=r"fault\.lnk: Extra inputs are not permitted"):
        load_drill(write(tmp_path, data), DRILLS)


def test_an_unknown_mode_is_refused(tmp_path: Path) -> None:
    data = raw("region-blackhole")
    data["bounds"]["controler"] = {"interruption_max_ms": 400}
    with pytest.raises(DrillError, match=r"bounds\.controler"):
        load_drill(write(tmp_path, data), DRILLS)


def test_timeline_and_watch_rules() -> None:
    base = raw("interconnect-cut")
    with pytest.raises(ValueError, match=r"restore\.at_s must come after fault\.at_s"):
        Drill.model_validate({**base, "restore": {**base["restore"], "at_s": 1}})
    with pytest.raises(ValueError, match=r"lengthen meter\.seconds"):
        Drill.model_validate({**base, "meter": {**base["meter"], "seconds": 10}})
    with pytest.raises(ValueError, match="route_changes_max needs a `watch`"):
        Drill.model_validate({**base, "watch": None, "bounds": {"controller": {"route_changes_max": 0}}})
    with pytest.raises(ValueError, match="before, restore and recover need a fault"):
        Drill.model_validate({**base, "fault": None})
    check = {**base["recover"][0], "not_before_by_mode": {"controller": 45}}
    with pytest.raises(ValueError, match=r"not_before_by_mode.controller \(45 s\) must be less than"):
        Drill.model_validate({**base, "recover": [check]})
    with pytest.raises(ValueError, match="exactly one of link, links, impair"):
        Drill.model_validate({**base, "fault": {"at_s": 3}})


def _route(dst: str, dst_len: int, *gws: str, multipath: bool = False) -> dict[str, Any]:
    attrs: list[tuple[str, Any]] = [("RTA_TABLE", 254), ("RTA_DST", dst)]
    if multipath:
        attrs.append(("RTA_MULTIPATH", [{"attrs": [("RTA_GATEWAY", g)]} for g in gws]))
    elif gws:
        attrs.append(("RTA_GATEWAY", gws[0]))
    return {"dst_len": dst_len, "attrs": attrs}


def test_nexthops_of_reads_ecmp_single_and_missing_routes() -> None:
    dump = [
        _route("203.0.113.0", 26, "198.18.1.12", "198.18.1.11", multipath=True),
        _route("203.0.113.64", 26, "198.18.1.12"),
        _route("203.0.113.0", 24, "198.18.1.11"),
    ]  # a covering route is not the watched prefix
    got = nexthops_of(dump, ["203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26"])
    assert got == {
        "203.0.113.0/26": ("198.18.1.11", "198.18.1.12"),
        "203.0.113.64/26": ("198.18.1.12",),
        "203.0.113.128/26": (),
    }


def test_changes_count_each_prefix_that_changed() -> None:
    both, one = ("198.18.1.11", "198.18.1.12"), ("198.18.1.12",)
    samples: list[tuple[float, dict[str, NextHops]]] = [
        (0.0, {"a": both, "b": both}),
        (5.1, {"a": one, "b": both}),
        (5.2, {"a": one, "b": one}),
        (20.0, {"a": both, "b": both}),
    ]
    got = changes(samples)
    assert [(c.at_s, c.prefix, c.nexthops) for c in got] == [
        (5.1, "a", list(one)),
        (5.2, "b", list(one)),
        (20.0, "a", list(both)),
        (20.0, "b", list(both)),
    ]
    assert changes(samples[:1]) == []


def test_moved_after_is_the_first_change_after_the_fault() -> None:
    samples: list[tuple[float, dict[str, NextHops]]] = [
        (0.0, {"a": ("x", "y")}),
        (1.0, {"a": ("x",)}),
        (2.0, {"a": ("x", "y")}),
        (9.5, {"a": ("y",)}),
    ]
    fault = ActionResult(at_s=3, applied_s=3.01, what="link down")
    assert moved_after(fault, changes(samples)) == pytest.approx(6.49)
    assert moved_after(None, changes(samples)) is None
    assert moved_after(fault, changes(samples[:3])) is None
    # an impairment counts from when the first one was in force (its delayer took 1.2 s to start)
    slow = ActionResult(at_s=3, applied_s=3.01, in_force_s=4.21, what="impair a/eth1 loss 20 %")
    assert moved_after(slow, changes(samples)) == pytest.approx(5.29)


def test_the_cli_refuses_a_broken_drill_naming_the_field(tmp_path: Path) -> None:
    data = raw("region-loss")
    data["fault"]["impair"][0]["loss_pct"] = "lots"
    result = CliRunner().invoke(cli, ["lab", "drill", write(tmp_path, data), "--lab", "nosuchlab"])
    assert result.exit_code != 0
    assert "fault.impair[0].loss_pct: Input should be a valid number" in result.output


def test_an_edge_variant_may_expect_otherwise() -> None:
    """bird-no-addpath keeps one path per prefix: the steady state is use1 only, the others as written."""
    for name in ("region-blackhole", "interconnect-cut"):
        both = load_drill(name, DRILLS).steady[1]
        single = both.expected("bird-no-addpath")["203.0.113.0/26"][0]["nexthops"]
        assert single == [{"__exact_len__": 1}, {"ip": "198.18.1.11", "active": True}]
        assert both.expected("bird") == both.expected("frr") == both.expect


# --------------------------------------------------------------------------------------------
# operations drills (issue 8, point 5): control requests, daemon operations, control checks


OPS_DRILLS = {"drain-undrain", "restart", "kill-9"}


def test_the_operations_drills_load_and_run_in_controller_mode_only() -> None:
    assert set(ALL_DRILLS) >= OPS_DRILLS
    for name in OPS_DRILLS:
        d = load_drill(name, DRILLS)
        assert d.modes == ["controller"]
        assert d.cleanup and all(o.control is not None and o.control.refused_ok for o in d.cleanup)
    drain = load_drill("drain-undrain", DRILLS)
    assert drain.fault is not None and drain.fault.control is not None and drain.fault.control.verb == "drain"
    assert drain.restore is not None and drain.restore.control is not None
    assert drain.restore.control.verb == "undrain" and "now" not in drain.restore.control.args
    assert [c.not_before("controller") for c in drain.recover[1:]] == [10, 10, 20]  # rise_s voice, voice, api
    assert drain.bounds["controller"].lost_max == 0
    for name in ("restart", "kill-9"):
        d = load_drill(name, DRILLS)
        assert d.bounds["controller"].route_changes_max == 0 and d.bounds["controller"].lost_per_flow_max == 1
        assert d.setup[0].control is not None and d.setup[0].control.verb == "drain"
        assert d.fault is not None and d.fault.daemon is not None
    assert load_drill("kill-9", DRILLS).supervisor is not None and load_drill("restart", DRILLS).supervisor is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("modes"), r"fault needs the daemon: add `modes: \[controller\]`"),
        (lambda d: d.update(modes=["no-controller"]), r"needs the daemon: add `modes: \[controller\]`"),
        (lambda d: d["fault"]["control"].update(verb="drian"), r"fault\.control: .*unknown control verb 'drian'"),
        (lambda d: d["fault"]["control"]["args"].pop("reason"), r"fault\.control: .*give args\.reason"),
        (lambda d: d["fault"]["control"]["args"].update(target="US-EAST"), r"fault\.control: .*argument 'target'"),
        (lambda d: d["fault"]["control"]["args"].update(region="use1"), r"unknown argument 'region'"),
        (lambda d: d["restore"]["control"]["args"].update(now="yes"), r"restore\.control: .*argument 'now'"),
        (lambda d: d["fault"].update(link={"node": "x", "iface": "y", "state": "down"}), "exactly one of"),
        (lambda d: d["recover"][0]["control"].update(verb="drain"), r"read-only verb"),
        (lambda d: d["recover"][0].update(node="cr"), "a control check asks the daemon, not a node"),
        (lambda d: d["recover"][0].update(vtysh="show ip route json"), "exactly one of vtysh"),
        (lambda d: d["steady"][0].pop("node"), "a vtysh check needs the node"),
        (lambda d: d["cleanup"][0]["control"].update(refused_ok="sure"), r"cleanup\[0\]\.control\.refused_ok"),
    ],
)
def test_a_bad_operation_is_refused_when_the_drill_loads(tmp_path: Path, change: Any, message: str) -> None:
    data = raw("drain-undrain")
    change(data)
    with pytest.raises(DrillError, match=message):
        load_drill(write(tmp_path, data), DRILLS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("supervisor"), r"fault: kill-9 needs a `supervisor`"),
        (lambda d: d["fault"]["daemon"].update(action="signal"), "give signal with action 'signal'"),
        (lambda d: d["fault"]["daemon"].update(signal="HUP"), "give signal with action 'signal'"),
        (lambda d: d["fault"]["daemon"].update(action="signal", signal="KILL"), r"fault\.daemon\.signal"),
        (lambda d: d["fault"]["daemon"].update(action="reboot"), r"fault\.daemon\.action"),
        (lambda d: d["fault"]["daemon"].update(grace_s=0), r"fault\.daemon\.grace_s"),
        (lambda d: d["supervisor"].update(restart_sec=-1), r"supervisor\.restart_sec"),
        (
            lambda d: (d.pop("supervisor"), d["fault"]["daemon"].update(action="signal", signal="TERM")),
            "signal TERM stops the daemon for good without a `supervisor`",
        ),
        (lambda d: d["bounds"]["controller"].update(lost_per_flow_max=-1), r"lost_per_flow_max"),
    ],
)
def test_a_bad_daemon_operation_is_refused_when_the_drill_loads(tmp_path: Path, change: Any, message: str) -> None:
    data = raw("kill-9")
    change(data)
    with pytest.raises(DrillError, match=message):
        load_drill(write(tmp_path, data), DRILLS)


def test_the_cli_refuses_an_operations_drill_with_a_bad_request_naming_it(tmp_path: Path) -> None:
    data = raw("drain-undrain")
    data["fault"]["control"]["args"]["for"] = "forever"
    result = CliRunner().invoke(cli, ["lab", "drill", write(tmp_path, data), "--lab", "nosuchlab"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "fault.control: Value error, control drain: argument 'for' must be a duration" in result.output


# --------------------------------------------------------------------------------------------
# reload drills (issue 8, point 5): the daemon's policy file replaced, then `bgpctl reload`

RELOAD_DRILLS = {"reload-good": "policies/reload-med.yaml", "reload-broken": "policies/reload-broken.yaml"}
LAB_POLICY = TOPOLOGY.parent / "policies" / "lab.yaml"
STANDBY_LINE = "    edge: { med: 100, prepend: 1 }"


def changed_lines(path: Path) -> list[tuple[str, str]]:
    """(lab.yaml's line, the file's line) for every line that differs, the leading comments aside."""

    def body(p: Path) -> list[str]:
        lines = p.read_text().splitlines()
        while lines and lines[0].startswith("#"):
            lines.pop(0)
        return lines

    lines, base = body(path), body(LAB_POLICY)
    assert len(lines) == len(base), f"{path} has {len(lines)} policy lines, policies/lab.yaml {len(base)}"
    return [(a, b) for a, b in zip(base, lines, strict=True) if a != b]


def test_the_reload_drills_load_replace_the_policy_then_reload_and_put_the_installed_one_back() -> None:
    for name, policy in RELOAD_DRILLS.items():
        d = load_drill(name, DRILLS)
        assert d.modes == ["controller"] and d.sessions is not None
        assert set(d.sessions.nodes) == {"edge", "tgw-use1", "tgw-usw2"} and d.sessions.peer == "198.18.1.2"
        (setup,) = d.setup
        assert setup.policy is not None and setup.policy.file == str((DRILLS / policy).resolve())
        assert d.fault is not None and d.fault.control is not None and d.fault.control.verb == "reload"
        assert [(o.policy is not None and o.policy.original, o.control and o.control.verb) for o in d.cleanup] == [
            (True, None),
            (False, "reload"),
        ]
        bounds = d.bounds["controller"]
        assert (bounds.lost_max, bounds.route_changes_max, bounds.route_withdrawals_max) == (0, 0, 0)
        assert bounds.session_resets_max == 0
    assert load_drill("reload-good", DRILLS).bounds["controller"].updates_max == 1  # api's usw2 route only
    assert load_drill("reload-broken", DRILLS).bounds["controller"].updates_max == 0
    good = load_drill("reload-good", DRILLS)
    assert good.fault is not None and good.fault.control is not None and good.fault.control.refused is None


def test_the_reviewed_policy_passes_policy_check_and_changes_only_the_standby_med() -> None:
    path = DRILLS / RELOAD_DRILLS["reload-good"]
    result = CliRunner().invoke(cli, ["policy", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert changed_lines(path) == [(STANDBY_LINE, "    edge: { med: 150, prepend: 1 }")]
    new, old = load_policy(path), load_policy(LAB_POLICY)
    assert new.actions.standby.edge == old.actions.standby.edge.model_copy(update={"med": 150})
    assert restart_needed(old, new) == [] and diff(old, new).sections == ("actions",)


def test_the_broken_policy_fails_policy_check_at_its_line_as_the_drill_expects_the_refusal() -> None:
    path = DRILLS / RELOAD_DRILLS["reload-broken"]
    assert changed_lines(path) == [(STANDBY_LINE, "    edge: { med: 150, prepnd: 1 }")]
    line = path.read_text().splitlines().index("    edge: { med: 150, prepnd: 1 }") + 1
    result = CliRunner().invoke(cli, ["policy", "check", str(path)])
    assert result.exit_code == 3
    assert result.output.startswith(f"{path}:{line} actions.standby.edge.prepnd: unknown field 'prepnd'"), result.output
    # the daemon's refusal of the same text under its own file name, as the control client shows it
    daemon_file = Path("/run/lab/od1/cr/policy.yaml")
    with pytest.raises(PolicyError) as e:
        check_policy_text(path.read_text(), str(daemon_file))
    refusal = refusal_of_problems(daemon_file, e.value.problems, None).protocol_error()
    shown = f"the daemon refused: {refusal.message}\n({refusal.hint})"
    drill = load_drill("reload-broken", DRILLS)
    assert drill.fault is not None and drill.fault.control is not None and drill.fault.control.refused is not None
    assert drill.fault.control.refused.problem(shown) is None, shown
    assert f"{daemon_file}:{line} actions.standby.edge.prepnd" in shown
    # a refusal for another line or another reason is not the one expected
    assert drill.fault.control.refused.problem(shown.replace(f":{line} ", f":{line + 1} ")) is not None
    assert drill.fault.control.refused.problem("the daemon refused: drain of the last healthy region") is not None


def _absolute_policies(data: dict[str, Any]) -> dict[str, Any]:
    """The drill with its policy files named absolutely (the broken copy is written elsewhere)."""
    for op in [*data.get("setup", []), *data.get("cleanup", [])]:
        if "policy" in op and "file" in op["policy"]:
            op["policy"]["file"] = str((DRILLS / op["policy"]["file"]).resolve())
    return data


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        (
            "reload-good",
            lambda d: d["setup"][0]["policy"].update(file="/nonexistent/p.yaml"),
            r"setup\[0\]\.policy\.file: .*/nonexistent/p\.yaml is not a file",
        ),
        (
            "reload-good",
            lambda d: d["setup"][0]["policy"].update(original=True),
            r"setup\[0\]\.policy: .*give file .* or original: true",
        ),
        (
            "reload-good",
            lambda d: d["setup"][0].update(policy={}),
            r"setup\[0\]\.policy: .*give file .* or original: true",
        ),
        (
            "reload-good",
            lambda d: d["cleanup"][0]["policy"].update(original="yes please"),
            r"cleanup\[0\]\.policy\.original",
        ),
        (
            "reload-good",
            lambda d: d["setup"][0]["policy"].update(path="x.yaml"),
            r"setup\[0\]\.policy\.path: Extra inputs",
        ),
        ("reload-good", lambda d: d.pop("modes"), r"setup\[0\] needs the daemon: add `modes: \[controller\]`"),
        (
            "reload-good",
            lambda d: d["fault"]["control"]["args"].update(dry_run="no"),
            r"fault\.control: .*argument 'dry_run'",
        ),
        ("reload-good", lambda d: d.pop("sessions"), r"bounds\.controller\.session_resets_max needs `sessions`"),
        ("reload-good", lambda d: d["sessions"].update(peer="cr"), r"sessions\.peer: .*'cr' is not an IP address"),
        ("reload-good", lambda d: d["sessions"].update(nodes=[]), r"sessions\.nodes: .*at least 1"),
        ("reload-good", lambda d: d["bounds"]["controller"].update(updates_max=-1), r"bounds\.controller\.updates_max"),
        (
            "reload-broken",
            lambda d: d["fault"]["control"]["refused"].update(match="(unclosed"),
            r"fault\.control\.refused\.match: .*not a regular expression",
        ),
        (
            "reload-broken",
            lambda d: d["fault"]["control"].update(refused_ok=True),
            r"give refused .* or refused_ok .*, not both",
        ),
        (
            "reload-broken",
            lambda d: d["fault"]["control"].update(refused="yes"),
            r"fault\.control\.refused: .*valid dictionary",
        ),
        (
            "reload-broken",
            lambda d: d["cleanup"][1]["control"].update(refused={"match": "x"}),
            r"cleanup\[1\]\.control\.refused: only the fault or the restore",
        ),
    ],
)
def test_a_bad_reload_drill_is_refused_when_it_loads_naming_the_field(
    tmp_path: Path, name: str, change: Any, message: str
) -> None:
    data = _absolute_policies(raw(name))
    change(data)
    with pytest.raises(DrillError, match=message) as e:
        load_drill(write(tmp_path, data), DRILLS)
    assert str(e.value).startswith(f"{tmp_path / 'broken.yaml'}: invalid drill: ")


def test_a_policy_file_is_named_relative_to_the_drill_file(tmp_path: Path) -> None:
    data = raw("reload-good")  # policies/reload-med.yaml: not next to a copy in tmp_path
    with pytest.raises(DrillError, match=rf"{tmp_path}/policies/reload-med\.yaml is not a file: name a policy file"):
        load_drill(write(tmp_path, data), DRILLS)
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "reload-med.yaml").write_text((DRILLS / "policies" / "reload-med.yaml").read_text())
    d = load_drill(write(tmp_path, data), DRILLS)
    assert d.setup[0].policy is not None and d.setup[0].policy.file == str(tmp_path / "policies" / "reload-med.yaml")


def test_the_cli_refuses_a_reload_drill_with_a_missing_policy_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["lab", "drill", write(tmp_path, raw("reload-broken")), "--lab", "nosuchlab"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert f"setup[0].policy.file: Value error, {tmp_path}/policies/reload-broken.yaml is not a file" in result.output


def test_session_readings_count_resets_and_updates_and_name_the_peers_refreshes() -> None:
    before = {
        "edge": {"established": 1, "dropped": 0, "updates": 7, "refreshes": 0},
        "tgw-use1": {"established": 2, "dropped": 1, "updates": 3, "refreshes": 0},
    }
    after = {
        "edge": {"established": 1, "dropped": 0, "updates": 8, "refreshes": 0},
        "tgw-use1": {"established": 3, "dropped": 2, "updates": 9, "refreshes": 1},
    }
    both, resets, updates = session_changes(before, after)
    assert both["edge"] == {"established": [1, 1], "dropped": [0, 0], "updates": [7, 8], "refreshes": [0, 0]}
    assert (resets, updates) == (1, 7)
    # a session that dropped and is not back yet is one reset too
    down = {"established": 2, "dropped": 2, "updates": 3, "refreshes": 0}
    (_, resets, _) = session_changes(before, {**after, "tgw-use1": down})
    assert resets == 1
    bounds = load_drill("reload-broken", DRILLS).bounds["controller"]
    problems = session_problems(bounds, session_changes(before, after))
    assert problems == [
        "1 BGP session reset(s) > bound 0 (at tgw-use1)",
        "7 UPDATE(s) received from the peer > bound 0 (edge: 1, tgw-use1: 6 after 1 ROUTE-REFRESH(es) it sent)",
    ]
    assert session_problems(bounds, session_changes(before, before)) == []


class _Neighbors:
    """A lab whose FRR nodes answer ``show bgp neighbors PEER json`` from a table (node -> neighbor JSON)."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table

    def query_json(self, node: str, command: str) -> Any:
        assert command == "show bgp neighbors 198.18.1.2 json"
        return self.table[node]


def test_sessions_count_only_once_older_than_frrs_start_up_route_refresh() -> None:
    sessions = Sessions(nodes=["edge", "tgw-use1", "tgw-usw2"], peer="198.18.1.2")
    up = {"bgpState": "Established", "bgpTimerUpMsec": 7000}
    young = {"bgpState": "Established", "bgpTimerUpMsec": 6999}
    lab: Any = _Neighbors(
        {
            "edge": {"198.18.1.2": up},
            "tgw-use1": {"198.18.1.2": young},
            "tgw-usw2": {"198.18.1.2": {"bgpState": "Active"}},
        }
    )
    assert session_age_problems(lab, sessions) == [
        "tgw-use1: session with 198.18.1.2 up 6999 ms, not yet 7000 ms",
        "tgw-usw2: session with 198.18.1.2 not established",
    ]
    lab.table = {node: {"198.18.1.2": up} for node in sessions.nodes}
    assert session_age_problems(lab, sessions) == []


def test_an_expected_refusal_is_a_violation_when_applied_unmatched_or_unasked() -> None:
    drill = load_drill("reload-broken", DRILLS)
    line = (DRILLS / RELOAD_DRILLS["reload-broken"]).read_text().splitlines().index("    edge: { med: 150, prepnd: 1 }")
    refused = (
        "the daemon refused: reload refused, the daemon keeps running the old policy: 1 problem in /n/policy.yaml:\n"
        f"/n/policy.yaml:{line + 1} actions.standby.edge.prepnd: unknown field 'prepnd' (did you mean 'prepend'?)"
    )

    def fault(error: str | None, code: str | None = "refused") -> ActionResult:
        return ActionResult(
            at_s=2, applied_s=2.0, what="control reload", error=error, error_code=code, refusal_expected=True
        )

    assert refusal_problems(drill, fault(refused), None) == []
    assert refusal_problems(drill, fault(None, None), None) == [
        "fault control reload was applied; the drill expects a refusal matching "
        + repr(drill.fault.control.refused.match)  # type: ignore[union-attr]
    ]
    (unmatched,) = refusal_problems(drill, fault("the daemon refused: busy"), None)
    assert unmatched.startswith("fault control reload: the refusal does not match")
    (unasked,) = refusal_problems(drill, fault("no daemon listens on /x/control.sock", None), None)
    assert unasked == "fault control reload: the daemon could not be asked: no daemon listens on /x/control.sock"
    assert refusal_problems(load_drill("reload-good", DRILLS), fault(None, None), None) == []


def test_flaps_count_a_return_to_next_hops_had_since_the_fault() -> None:
    samples: list[tuple[float, dict[str, NextHops]]] = [
        (0.0, {"a": ("x", "y")}),
        (1.0, {"a": ("x",)}),  # before the fault: not counted, but where the fault found it
        (4.0, {"a": ("y",)}),
        (5.0, {"a": ("x",)}),  # back to the next hops at the fault: one flap
        (6.0, {"a": ("x", "y")}),  # new since the fault
        (30.0, {"a": ("x",)}),  # after the restore: not counted
    ]
    fault = ActionResult(at_s=3, applied_s=3.0, what="impair")
    restore = ActionResult(at_s=20, applied_s=20.0, what="clear")
    got = flaps(changes(samples), {"a": ["x", "y"]}, fault, restore)
    assert [(c.at_s, c.nexthops) for c in got] == [(5.0, ["x"])]
    assert flaps(changes(samples), {"a": ["x", "y"]}, None, None) == []


def test_the_ha_drills_name_their_daemons_and_an_action_before_the_fault() -> None:
    region = load_drill("ha-region-blackhole-isolated", DRILLS)
    assert region.daemon == "cr2" and [b.link for b in region.before if b.link] and region.before[0].at_s == 3
    assert drill_daemons(region) == ["cr2", "cr1"]
    assert {"cr1", "tgw-use1", "edge", "tgw-usw2"} <= set(drill_nodes(region))
    both = load_drill("ha-restart-both", DRILLS)
    assert both.restore is not None and both.restore.daemon is not None and both.restore.daemon.node == "cr2"
    assert drill_daemons(both) == ["cr1", "cr2"]
    assert drill_nodes(load_drill("kill-9", DRILLS))[0] == "cr"  # a single controller's drill: cr
    base = raw("ha-region-blackhole-isolated")
    with pytest.raises(ValueError, match=r"before\[0\]\.at_s must come before fault\.at_s"):
        Drill.model_validate({**base, "before": [{**base["before"][0], "at_s": 9}]})
    impaired = load_drill("ha-primary-probes-impaired-short", DRILLS)
    assert impaired.fault is not None and impaired.fault.impair is not None
    assert impaired.fault.impair[0].udp_dport == 862
    assert impaired.bounds["controller"].flaps_max == 0


# --------------------------------------------------------------------------------------------
# the IPv6 drills (issue 15): the dual-stack lab policy, a one-family blackhole, per-prefix route-change bounds

V6_DRILLS = ("v6-only-region1", "region-blackhole-v6", "interconnect-cut-v6")


def test_the_drills_dual_stack_policy_is_the_example_as_the_reference_lab_runs_it() -> None:
    from tests.lab.test_dualstack_reference import dual_lab_policy  # noqa: PLC0415 (a lab module's helper)

    path = DRILLS / "policies" / "lab-dual-stack.yaml"
    assert YAML(typ="safe").load(path.read_text()) == YAML(typ="safe").load(dual_lab_policy())
    check_policy_text(path.read_text(), str(path))  # policy check passes it


def test_the_ipv6_drills_install_the_dual_stack_policy_and_keep_the_ipv4_bounds() -> None:
    ipv4 = load_drill("region-blackhole", DRILLS).bounds["controller"]
    for name in V6_DRILLS:
        d = load_drill(name, DRILLS)
        assert d.modes == ["controller"] and d.meter.to == "2001:db8:c0::10"
        assert d.setup[0].policy is not None and Path(d.setup[0].policy.file or "").name == "lab-dual-stack.yaml"
        assert d.setup[1].daemon is not None and d.setup[1].daemon.action == "restart"
        assert d.cleanup[0].policy is not None and d.cleanup[0].policy.original
        assert d.cleanup[1].daemon is not None and d.cleanup[1].daemon.action == "restart"
        bounds = d.bounds["controller"]
        assert bounds.interruption_max_ms == ipv4.interruption_max_ms == 400
        assert bounds.route_withdrawals_max == ipv4.route_withdrawals_max == 0
        assert d.watch is not None and {"2001:db8:c0::/64", "203.0.113.0/26"} <= set(d.watch.prefixes)
        moved = next(c for c in d.expect if c.name == "edge routes IPv6 media via usw2 only")
        assert moved.budget("controller") == 1  # the IPv4 drills' controller budget
    v6 = load_drill("v6-only-region1", DRILLS)
    assert v6.fault is not None and v6.fault.blackhole is not None
    hole = v6.fault.blackhole
    assert (hole.node, hole.iface, hole.state, hole.family) == ("tgw-use1", "eth2", "on", "ipv6")
    by_prefix = v6.bounds["controller"].route_changes_max_by_prefix
    assert by_prefix.pop("2001:db8:c0::/64") == 2 and set(by_prefix.values()) == {0}
    assert v6.watch is not None and set(by_prefix) == set(v6.watch.prefixes) - {"2001:db8:c0::/64"}


def test_a_per_prefix_bound_names_a_watched_prefix() -> None:
    base = raw("v6-only-region1")
    bounds = {"controller": {"route_changes_max_by_prefix": {"2001:db8:c0:40::/64": 0}}}
    with pytest.raises(ValueError, match=r"route_changes_max_by_prefix: 2001:db8:c0:40::/64 is not one of watch"):
        Drill.model_validate({**base, "bounds": bounds}, context={"drill_dir": DRILLS})
    bounds = {"controller": {"route_changes_max_by_prefix": {"203.0.113.0/33": 0}}}
    with pytest.raises(ValueError, match=r"'203.0.113.0/33' is not a prefix"):
        Drill.model_validate({**base, "bounds": bounds}, context={"drill_dir": DRILLS})
    with pytest.raises(ValueError, match="route_changes_max_by_prefix needs a `watch`"):
        Drill.model_validate(
            {**base, "watch": None, "bounds": {"controller": {"route_changes_max_by_prefix": {"203.0.113.0/26": 0}}}},
            context={"drill_dir": DRILLS},
        )
    fault = {**base["fault"], "blackhole": {**base["fault"]["blackhole"], "family": "ipx"}}
    with pytest.raises(ValidationError, match=r"fault\.blackhole\.family"):
        Drill.model_validate({**base, "fault": fault}, context={"drill_dir": DRILLS})


def test_a_per_prefix_bound_counts_only_its_prefix() -> None:
    bounds = Bounds(route_changes_max_by_prefix={"2001:db8:c0::/64": 2, "203.0.113.0/26": 0})
    watch = {"node": "edge"}
    timeline = [
        RouteChange(at_s=3.2, prefix="2001:db8:c0::/64", nexthops=["2001:db8:1::12"]),
        RouteChange(at_s=28.0, prefix="2001:db8:c0::/64", nexthops=["2001:db8:1::11", "2001:db8:1::12"]),
    ]
    assert prefix_change_problems(bounds, timeline, watch) == []
    moved4 = [*timeline, RouteChange(at_s=3.3, prefix="203.0.113.0/26", nexthops=["198.18.1.12"])]
    assert prefix_change_problems(bounds, moved4, watch) == [
        "1 route change(s) of 203.0.113.0/26 at edge > bound 0 (first: -> ['198.18.1.12'] at 3.30 s)"
    ]
    assert prefix_change_problems(bounds, moved4, None) == []  # no watch, nothing counted
    assert len(prefix_change_problems(bounds, [*timeline, *timeline], watch)) == 1  # 4 > 2


def test_nexthops_of_reads_ipv6_routes_beside_ipv4_ones() -> None:
    dump = [
        _route("203.0.113.0", 26, "198.18.1.12", "198.18.1.11", multipath=True),
        _route("2001:db8:c0::", 64, "2001:db8:1::12", "2001:db8:1::11", multipath=True),
        _route("2001:db8:c0:80::", 64, "2001:db8:1::11"),
        _route("2001:db8:c0::", 48, "2001:db8:1::11"),  # a covering route is not the watched prefix
    ]
    got = nexthops_of(dump, ["203.0.113.0/26", "2001:db8:c0::/64", "2001:db8:c0:80:0::/64", "2001:db8:c0:40::/64"])
    assert got == {
        "203.0.113.0/26": ("198.18.1.11", "198.18.1.12"),
        "2001:db8:c0::/64": ("2001:db8:1::11", "2001:db8:1::12"),
        "2001:db8:c0:80:0::/64": ("2001:db8:1::11",),
        "2001:db8:c0:40::/64": (),
    }


def test_the_route_watch_dumps_the_families_it_watches() -> None:
    assert RouteWatcher("x", ["203.0.113.0/26"], interval_ms=20).family == socket.AF_INET
    assert RouteWatcher("x", ["2001:db8:c0::/64"], interval_ms=20).family == socket.AF_INET6
    assert RouteWatcher("x", ["2001:db8:c0::/64", "203.0.113.0/26"], interval_ms=20).family == socket.AF_UNSPEC


@pytest.mark.parametrize(("family", "ether"), [("ipv6", "ip6"), ("ipv4", "ip")])
def test_a_one_family_blackhole_drops_only_that_family(family: nft.BlackholeFamily, ether: str) -> None:
    text = nft.render_blackhole("eth2", True, family)
    assert 'hook ingress device "eth2" priority -100; policy accept;' in text  # the other family passes
    assert f"meta protocol {ether} counter drop" in text
    assert f'meta protocol {ether} counter fwd to "{nft.SINK_IFNAME}"' in text
    everything = nft.render_blackhole("eth2", True)
    assert "policy drop;" in everything and "meta protocol" not in everything
    assert nft.render_blackhole("eth2", False, family) == nft.render_blackhole("eth2", False)
    with pytest.raises(LabError, match="use all, ipv4 or ipv6"):
        nft.render_blackhole("eth2", True, "ipx")  # type: ignore[arg-type]
