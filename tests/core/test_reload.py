"""Policy reload, pure: old policy + new policy + the controller's state -> what changes (bgpctl.core.reload,
Controller.reload / Controller.preview). No file, no socket: policies are variations of policies/lab.yaml."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from bgpctl.core.controller import Controller
from bgpctl.core.overrides import RuntimeOverride
from bgpctl.core.reload import diff, restart_needed, stale_overrides
from bgpctl.core.types import ChangeKind, Health, PathKey, Plan, RouteKey, Sample
from bgpctl.policy.load import load_policy_text
from bgpctl.policy.model import Policy

LAB = Path(__file__).resolve().parents[2] / "policies" / "lab.yaml"
T0 = 1_800_000_000.0
API = "203.0.113.128/26"
USE1, USW2 = "198.18.1.11", "198.18.1.12"


def lab_data() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(LAB.read_text())
    return data


def variant(edit: Callable[[dict[str, Any]], object]) -> Policy:
    """policies/lab.yaml with ``edit`` applied to its data, through the real loader (all its checks)."""
    data = lab_data()
    edit(data)
    return load_policy_text(json.dumps(data), "variant.yaml")


LAB_POLICY = variant(lambda d: None)


def judged(policy: Policy = LAB_POLICY, seconds: float = 12.0) -> tuple[Controller, float]:
    """A controller whose every path is up (12 ms RTT) and planned; the time of its last step."""
    ctl = Controller(policy)
    now = T0
    for i in range(int(seconds * 10)):
        t = T0 + i * 0.1
        for k in ctl.keys:
            ctl.sent(k, i, t)
            ctl.add(k, Sample(i, t, t + 0.012))
        now = t + 0.05
        ctl.step(now)
    assert all(h.health is Health.UP for h in ctl.health.values())
    return ctl, now


def set_standby_med(med: int) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        d["actions"]["standby"]["edge"]["med"] = med

    return edit


def add_region(d: dict[str, Any]) -> None:
    """A third region, euc1, the last of api's order (its TGW is tgw-usw2's peer: no new session)."""
    d["regions"]["euc1"] = {
        "paths": {"interconnect": {"peer": "tgw-usw2", "next_hop": USW2, "probe_source": "198.18.1.23", "table": 103}}
    }
    for s in d["services"].values():
        s["probe"]["targets"]["euc1"] = dict(s["probe"]["targets"]["usw2"])
    d["services"]["api"]["order"].append("euc1")


def drop_usw2_and_its_peer(d: dict[str, Any]) -> None:
    drop_usw2(d)
    d["peers"].pop(2)


def add_dx(d: dict[str, Any]) -> None:
    """A second path in use1 (a direct connect to the same TGW), less preferred than the interconnect."""
    d["regions"]["use1"]["paths"]["dx"] = {
        "peer": "tgw-use1",
        "next_hop": USE1,
        "probe_source": "198.18.1.24",
        "table": 104,
        "priority": 50,
    }


def drop_usw2(d: dict[str, Any]) -> None:
    """usw2 is gone: no path, no probe target (its TGW peer then must go too: that is a restart)."""
    del d["regions"]["usw2"]
    for s in d["services"].values():
        s["probe"]["targets"].pop("usw2")
    d["services"]["api"]["order"] = ["use1"]


# ------------------------------------------------------------------------------------ restart-only changes


def test_the_same_policy_needs_no_restart_and_changes_nothing() -> None:
    assert restart_needed(LAB_POLICY, variant(lambda d: None)) == []
    change = diff(LAB_POLICY, variant(lambda d: None))
    assert change.unchanged and (change.added, change.removed, change.reprobed) == ((), (), ())


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda d: d["peers"][0].update(peer_as=65011), "peers.edge.peer_as: 65010 -> 65011"),
        (lambda d: d["peers"][1].update(address="198.18.1.13"), "peers.tgw-use1.address: 198.18.1.11 -> 198.18.1.13"),
        (lambda d: d["peers"][0].update(md5_password={"env": "EDGE_MD5"}), "peers.edge.md5_password: unset -> "),
        (lambda d: d["peers"][0]["timers"].update(hold_time=30), "peers.edge.timers.hold_time: 9 -> 30"),
        (lambda d: d["peers"][0].update(add_path="off"), "peers.edge.add_path: send -> off"),
        (lambda d: d["speaker"].update(local_as=65001), "speaker.local_as: 65000 -> 65001"),
        (lambda d: d["speaker"]["exabgp"].update(graceful_restart=60), "speaker.exabgp.graceful_restart: 120 -> 60"),
        (lambda d: d.update(control={"group": "wheel"}), "control.group: unset -> wheel"),
        (drop_usw2_and_its_peer, "peers: peer tgw-usw2 removed"),
        (lambda d: d["signals"]["relay"].update(interval_s=5), "signals.relay.interval_s: 1.0 -> 5.0"),
        (
            lambda d: d.update(hooks={"noc": {"kind": "exec", "argv": ["/usr/bin/logger", "-t", "bgpctl"]}}),
            "hooks.noc: unset -> ",
        ),
    ],
    ids=[
        "peer-as",
        "address",
        "md5",
        "hold-time",
        "add-path",
        "local-as",
        "graceful-restart",
        "group",
        "peer-gone",
        "signal",
        "hook",
    ],
)
def test_a_change_only_a_restart_applies_is_named(edit: Callable[[dict[str, Any]], object], named: str) -> None:
    needs = restart_needed(LAB_POLICY, variant(edit))
    assert any(line.startswith(named) for line in needs), needs


def test_a_peer_description_is_no_session_change() -> None:
    new = variant(lambda d: d["peers"][0].update(description="the corporate edge, renamed"))
    assert restart_needed(LAB_POLICY, new) == []
    assert diff(LAB_POLICY, new).sections == ("peers",)


# ------------------------------------------------------------------------------------ overrides in force


def test_runtime_overrides_naming_what_the_new_policy_lacks_are_named() -> None:
    runtime = (
        RuntimeOverride("drain", region="euc1", since=T0, reason="fibre"),
        RuntimeOverride("drain", region="use1", path="interconnect", since=T0, reason="ok"),
        RuntimeOverride("pin", region="euc1", service="media", since=T0, reason="test"),
        RuntimeOverride("freeze", since=T0, reason="hold"),
    )
    assert stale_overrides(LAB_POLICY, runtime) == [
        "drain euc1: region 'euc1' is not in the policy",
        "pin media:euc1: region 'euc1' is not in the policy",
    ]
    assert stale_overrides(variant(add_region), runtime) == []


# ------------------------------------------------------------------------------------ the diff


def test_paths_added_removed_and_reprobed() -> None:
    added = diff(LAB_POLICY, variant(add_region))
    assert set(added.added) == {PathKey(s, "euc1", "interconnect") for s in ("media", "signalling", "api")}
    assert added.removed == ()
    assert added.sections == ("regions", "services")
    removed = diff(variant(add_region), LAB_POLICY)
    assert set(removed.removed) == set(added.added) and removed.added == ()
    dx = diff(variant(add_dx), LAB_POLICY)
    assert set(dx.removed) == {PathKey(s, "use1", "dx") for s in ("media", "signalling", "api")}
    assert dx.sections == ("regions",)
    slower = diff(LAB_POLICY, variant(lambda d: d["services"]["api"]["probe"].update(interval_ms=500)))
    assert set(slower.reprobed) == {PathKey("api", r, "interconnect") for r in ("use1", "usw2")}
    window = diff(LAB_POLICY, variant(lambda d: d["sla_classes"]["api"]["hysteresis"].update(window_s=20)))
    assert set(window.reprobed) == {PathKey("api", r, "interconnect") for r in ("use1", "usw2")}
    thresholds = diff(LAB_POLICY, variant(lambda d: d["sla_classes"]["api"]["degraded"].update(rtt_ms=250)))
    assert thresholds.reprobed == () and thresholds.sections == ("sla_classes",)


# ------------------------------------------------------------------------------------ preview and reload


def announcements(p: Plan) -> dict[tuple[str, RouteKey], int | None]:
    return {(c.peer, c.key): c.attrs.med for c in p.changes if c.kind is ChangeKind.ANNOUNCE and c.attrs is not None}


def test_a_new_standby_med_changes_only_the_standby_route_and_the_preview_changes_nothing() -> None:
    ctl, now = judged()
    before_plan, before_policy, windows = ctl.last_plan, ctl.policy, dict(ctl.windows)
    new = variant(set_standby_med(150))
    preview = ctl.preview(new, now + 0.1)
    # api is active-standby: its usw2 route is the only standby one; media and signalling are preferred
    ids = {"use1": 1, "usw2": 2}
    assert announcements(preview) == {("edge", RouteKey(API, ids["usw2"])): 150}
    assert [c.kind for c in preview.changes] == [ChangeKind.ANNOUNCE] and preview.deferred == ()
    assert ctl.last_plan is before_plan and ctl.policy is before_policy and ctl.windows == windows

    change = ctl.reload(new)
    assert change.sections == ("actions",) and (change.added, change.removed, change.reprobed) == ((), (), ())
    assert all(ctl.windows[k] is windows[k] for k in ctl.keys)  # samples kept: the probes did not change
    step = ctl.step(now + 0.1)
    assert step.plan is not None and step.transitions == ()
    assert step.plan.changes == preview.changes  # the dry run said exactly what the reload did


def test_a_new_region_starts_unknown_and_is_announced_only_once_judged() -> None:
    ctl, now = judged()
    new = variant(add_region)
    euc1 = PathKey("media", "euc1", "interconnect")
    assert ctl.preview(new, now).changes == ()  # not judged yet: nothing to announce
    ctl.reload(new)
    assert ctl.health[euc1].health is Health.UNKNOWN and euc1 in ctl.windows
    step = ctl.step(now + 0.1)
    assert step.plan is not None and step.plan.changes == ()
    seen: list[Plan] = []
    for i in range(120):  # every path's probes go on; euc1's start: judged up, then announced
        t = now + 0.2 + i * 0.1
        for k in ctl.keys:
            seq = 1000 + i if k.region != "euc1" else i
            ctl.sent(k, seq, t)
            ctl.add(k, Sample(seq, t, t + 0.012))
        last = ctl.step(t + 0.05)
        if last.plan is not None and last.plan.changes:
            seen.append(last.plan)
    assert all(ctl.health[k].health is Health.UP for k in ctl.keys)
    changes = [c for p in seen for c in p.changes]  # as euc1's paths were judged (voice first, then api)
    assert all(c.kind is ChangeKind.ANNOUNCE for c in changes)
    edge = {(c.key.prefix, c.key.path_id, c.attrs.next_hop if c.attrs else None) for c in changes if c.peer == "edge"}
    assert edge == {(p, 3, USW2) for p in ("203.0.113.0/26", "203.0.113.64/26", API)}


def test_a_removed_path_stops_and_its_routes_go_make_before_break() -> None:
    ctl, now = judged(variant(add_dx))
    dx = {PathKey(s, "use1", "dx") for s in ("media", "signalling", "api")}
    held = ctl.last_plan.desired["edge"] if ctl.last_plan is not None else {}
    ctl.reload(LAB_POLICY)
    assert not dx & (set(ctl.keys) | ctl.windows.keys() | ctl.health.keys())
    step = ctl.step(now + 0.1)
    assert step.plan is not None
    # ADD-PATH ids are positions in the policy's path order: usw2's id moves from 3 to 2 (dx's), so its
    # routes are announced under the new id before the old ids go
    assert [(c.kind, c.key.path_id) for c in step.plan.changes] == [
        *[(ChangeKind.ANNOUNCE, 2)] * 3,
        *[(ChangeKind.WITHDRAW, 3)] * 3,
    ]

    def routes(rib: dict[RouteKey, Any]) -> set[tuple[str, str, int | None]]:
        return {(k.prefix, a.next_hop, a.med) for k, a in rib.items()}

    dx_routes = {(k.prefix, a.next_hop, a.med) for k, a in held.items() if k.path_id == 2}
    assert routes(step.plan.desired["edge"]) == routes(held) - dx_routes | {
        (k.prefix, a.next_hop, a.med) for k, a in held.items() if k.path_id == 3
    }


def test_a_removed_region_is_withdrawn_after_the_announcements_that_replace_it() -> None:
    ctl, now = judged(variant(add_region))
    assert ctl.last_plan is not None
    assert {a.next_hop for k, a in ctl.last_plan.desired["edge"].items() if k.prefix == "203.0.113.0/26"} == {
        USE1,
        USW2,
    }
    ctl.reload(LAB_POLICY)
    step = ctl.step(now + 0.1)
    assert step.plan is not None
    kinds = [c.kind for c in step.plan.changes]
    assert ChangeKind.WITHDRAW in kinds
    assert kinds == sorted(kinds, key=lambda k: k is ChangeKind.WITHDRAW)  # make-before-break order


def test_a_reload_with_many_changes_is_rate_limited_like_any_plan() -> None:
    ctl, now = judged(variant(lambda d: d["guards"].update(max_route_changes_per_minute=10)))
    new = variant(
        lambda d: (
            d["guards"].update(max_route_changes_per_minute=10),
            d["actions"]["preferred"]["edge"].update(med=7),
            d["actions"]["preferred"]["transit-gateway"].update(communities=["7224:7300", "65000:1"]),
        )
    )
    preview = ctl.preview(new, now + 0.1)
    assert preview.deferred and len(preview.changes) + len(preview.deferred) == 7
    assert any("rate limit" in n for n in preview.notes)


def test_the_health_of_kept_paths_is_kept_and_fail_static_still_holds() -> None:
    ctl, now = judged()
    before = dict(ctl.health)
    new = variant(lambda d: d["sla_classes"]["voice"]["down"].update(rtt_ms=300))
    ctl.reload(new)
    assert ctl.health == before
    # every media path dies after the reload: fail-static keeps media's last routes, as without a reload
    media = [k for k in ctl.keys if k.service == "media"]
    t = now
    for i in range(60):
        t = now + 0.1 + i * 0.05
        for k in ctl.keys:
            ctl.sent(k, 5000 + i, t)
            ctl.add(k, Sample(5000 + i, t, None if k in media else t + 0.012))
        ctl.step(t)
    assert all(ctl.health[k].health is Health.DOWN for k in media)
    assert ctl.last_plan is not None
    assert any("fail-static: service media" in n for n in ctl.last_plan.notes)
    assert {k.prefix for k in ctl.last_plan.desired["edge"]} >= {"203.0.113.0/26"}
