"""The pure builders of the status and routes answers, from a controller judged on real samples."""

from __future__ import annotations

from dataclasses import replace

import structlog

from bgpctl import events
from bgpctl.control.render import routes_text, status_text
from bgpctl.control.state import SessionTracker, routes_result, status_result, unknown_peer
from bgpctl.core.types import MEASURED_V6, Health, PathKey, RouteAttrs, RouteKey, SignalMark
from bgpctl.daemon.sinks import Metrics
from bgpctl.policy.load import load_policy
from bgpctl.policy.model import Drain, Overrides
from bgpctl.signals.document import Document, Reading, SignalError
from bgpctl.signals.feed import SignalFeed
from tests.control.support import REPO, T0, judge, lab_policy, schema_errors, snapshot

MEDIA = "203.0.113.0/26"


def test_status_of_a_healthy_controller_has_every_path_up_with_stats_and_reasons() -> None:
    s = snapshot(judge(lab_policy()))
    result = status_result(s, 10)
    assert schema_errors("status", result) == []
    paths = {p["path"]: p for p in result["paths"]}
    assert set(paths) == {f"{svc}/{r}/interconnect" for svc in ("media", "signalling", "api") for r in ("use1", "usw2")}
    for p in paths.values():
        assert p["health"] == "up"
        assert p["stats"]["rtt_p50_ms"] == 12.0
        assert p["stats"]["loss_pct"] == 0.0
        assert p["stats"]["mos"] is not None and p["stats"]["mos"] > 4
        assert p["why"]
    assert paths["api/use1/interconnect"]["state"] == "preferred"
    assert paths["api/usw2/interconnect"]["state"] == "standby"
    assert "active-standby" in paths["api/usw2/interconnect"]["why"]
    assert result["overrides"] == []
    assert len(result["decisions"]) == 10
    assert [p["peer"] for p in result["sessions"]] == ["edge", "tgw-use1", "tgw-usw2"]
    assert all(x["state"] == "up" and x["uptime_s"] == round(s.at - T0, 1) for x in result["sessions"])
    assert result["exabgp"] == {"pid": 4243, "running": True, "api_connected": True, "starts": 1, "exits": []}


def test_decisions_are_the_newest_and_zero_gives_none() -> None:
    j = judge(lab_policy())
    s = snapshot(j)
    everything = status_result(s, 200)["decisions"]
    assert {d["event"] for d in everything} >= {events.PATH_HEALTH, events.ROUTE_CHANGE}
    assert status_result(s, 3)["decisions"] == everything[-3:]
    assert status_result(s, 0)["decisions"] == []


def test_a_dead_region_shows_down_with_the_metric_and_the_edge_routes_say_why() -> None:
    policy = lab_policy()
    j = judge(policy, seconds=10, lost=lambda k, t: k.region == "use1" and t >= T0 + 6)
    s = snapshot(j)
    status = status_result(s, 50)
    assert schema_errors("status", status) == []
    use1 = [p for p in status["paths"] if p["region"] == "use1"]
    assert {p["health"] for p in use1} == {"down"}, use1
    assert all(p["reasons"] and p["stats"]["unanswered"] > 0 for p in use1)
    assert any(d["event"] == events.PATH_HEALTH and d["new"] == "down" for d in status["decisions"])
    routes = routes_result(s, peer="edge", prefix=MEDIA)
    assert schema_errors("routes", routes) == []
    (edge,) = routes["peers"]
    by_hop = {r["next_hop"]: r for r in edge["routes"]}
    assert set(by_hop) == {"198.18.1.12"}  # use1's media route is withdrawn
    assert by_hop["198.18.1.12"]["rule"]["action"] == "actions.preferred.edge"


def test_routes_name_the_rule_and_attributes_of_every_route() -> None:
    s = snapshot(judge(lab_policy()))
    result = routes_result(s)
    assert schema_errors("routes", result) == []
    peers = {p["peer"]: p for p in result["peers"]}
    api = [r for r in peers["edge"]["routes"] if r["prefix"] == "203.0.113.128/26"]
    standby = next(r for r in api if r["next_hop"] == "198.18.1.12")
    policy = lab_policy()
    action = policy.actions.standby.edge
    assert standby["med"] == action.med  # type: ignore[union-attr]
    assert len(standby["as_path"]) == 1 + action.prepend  # type: ignore[union-attr]
    assert standby["rule"] == {
        "path": "api/usw2/interconnect",
        "health": "up",
        "state": "standby",
        "action": "actions.standby.edge",
        "override": None,
        "kept": None,
    }
    assert all(r["status"] == "announced" for p in result["peers"] for r in p["routes"])
    (tgw,) = peers["tgw-use1"]["routes"]
    assert tgw["prefix"] == "192.0.2.0/24" and tgw["communities"] == ["7224:7300"]
    assert tgw["rule"]["action"] == "actions.preferred.transit-gateway"


def test_not_yet_acknowledged_routes_are_pending_and_unplanned_ones_withdrawing() -> None:
    j = judge(lab_policy())
    s = snapshot(j, acked=False)
    assert {r["status"] for p in routes_result(s)["peers"] for r in p["routes"]} == {"pending"}
    plan = j.controller.last_plan
    assert plan is not None
    stale = {**plan.desired["edge"]}
    extra_key = next(iter(stale))
    s2 = snapshot(j, plan=replace(plan, desired={**plan.desired, "edge": {}}), announced={"edge": stale})
    rows = routes_result(s2, peer="edge")["peers"][0]["routes"]
    assert {r["status"] for r in rows} == {"withdrawing"}
    assert any(r["prefix"] == extra_key.prefix for r in rows)
    assert all(r["rule"]["kept"] == "no longer planned: being withdrawn" for r in rows)


def test_filters_by_peer_and_by_overlapping_prefix() -> None:
    s = snapshot(judge(lab_policy()))
    assert [p["peer"] for p in routes_result(s, peer="tgw-usw2")["peers"]] == ["tgw-usw2"]
    one = routes_result(s, prefix="203.0.113.10/32")
    assert {r["prefix"] for p in one["peers"] for r in p["routes"]} == {MEDIA}
    assert one["filter"] == {"peer": None, "prefix": "203.0.113.10/32"}
    all_connect = routes_result(s, prefix="203.0.113.0/24")
    assert {r["prefix"] for p in all_connect["peers"] for r in p["routes"]} == {
        MEDIA,
        "203.0.113.64/26",
        "203.0.113.128/26",
    }
    assert all(not p["routes"] for p in routes_result(s, prefix="2001:db8::/32")["peers"])
    assert unknown_peer(s, "nope") == "no peer 'nope' in the policy: peers are edge, tgw-use1, tgw-usw2"
    assert unknown_peer(s, "edge") is None


def test_policy_overrides_show_in_status_and_in_the_routes_rule() -> None:
    policy = lab_policy().model_copy(update={"overrides": Overrides(drain=[Drain(region="use1")])})
    s = snapshot(judge(policy))
    status = status_result(s, 0)
    assert status["overrides"] == [
        {
            "kind": "drain",
            "target": "use1",
            "source": "policy",
            "by": None,
            "since": None,
            "expires": None,
            "reason": None,
        }
    ]
    use1_media = next(p for p in status["paths"] if p["path"] == "media/use1/interconnect")
    assert use1_media["state"] == "standby" and "drain use1" in use1_media["why"]
    edge = routes_result(s, peer="edge", prefix=MEDIA)["peers"][0]["routes"]
    drained = next(r for r in edge if r["next_hop"] == "198.18.1.11")
    assert drained["rule"]["override"] == "drain use1" and drained["rule"]["state"] == "standby"


def test_before_any_plan_there_are_no_routes_and_paths_are_unknown() -> None:
    j = judge(lab_policy(), seconds=0)
    s = snapshot(j, session="idle")
    status = status_result(s, 20)
    assert schema_errors("status", status) == []
    assert {p["health"] for p in status["paths"]} == {Health.UNKNOWN.value}
    assert {p["state"] for p in status["paths"]} == {None}
    assert all(p["stats"]["samples"] == 0 for p in status["paths"])
    assert all(x["uptime_s"] is None for x in status["sessions"])
    routes = routes_result(s)
    assert schema_errors("routes", routes) == []
    assert all(not p["routes"] for p in routes["peers"])


def test_session_tracker_keeps_since_and_the_last_error() -> None:
    t = SessionTracker()
    v = t.observe({"edge": "idle"}, {}, 10.0)
    assert v["edge"].since is None  # the state it had when the daemon started: since unknown
    v = t.observe({"edge": "up"}, {}, 11.0)
    assert (v["edge"].state, v["edge"].since) == ("up", 11.0)
    v = t.observe({"edge": "up"}, {}, 12.0)
    assert v["edge"].since == 11.0
    v = t.observe({"edge": "down"}, {"edge": "peer reset"}, 13.0)
    assert (v["edge"].state, v["edge"].since, v["edge"].last_error) == ("down", 13.0, "peer reset")


def test_text_renderers_show_every_path_session_and_route() -> None:
    s = snapshot(judge(lab_policy()))
    text = "\n".join(status_text(status_result(s, 5)))
    for needle in (
        "bgpctl daemon pid 4242",
        "ExaBGP pid 4243",
        "media/use1/interconnect",
        "tgw-usw2",
        "Last 5 decisions",
    ):
        assert needle in text
    routes = "\n".join(routes_text(routes_result(s)))
    assert "peer edge 198.18.1.1 (edge, AS65010, ADD-PATH send), session up:" in routes
    assert "actions.standby.edge" in routes


def test_status_shows_a_signals_mark_and_why_another_signal_is_ignored() -> None:
    policy = lab_policy()
    j = judge(policy)
    feed = SignalFeed(policy, structlog.wrap_logger(structlog.ReturnLogger()), Metrics())
    reason = "AWS Health: elevated errors"
    mark = SignalMark("relay", "use1", None, Health.DOWN, reason)
    feed.take("relay", Reading(j.now - 1, Document((mark,))))
    feed.feed(j.controller, j.now)
    j.controller.step(j.now)
    status = status_result(replace(snapshot(j), signals=feed.rows()), 20)
    assert schema_errors("status", status) == []
    (row,) = status["signals"]
    assert (row["name"], row["kind"], row["state"], row["age_s"], row["error"]) == ("relay", "http", "fresh", 1.0, None)
    assert row["marks"] == [{"region": "use1", "path": None, "state": "down", "reason": reason}]
    use1 = [p for p in status["paths"] if p["region"] == "use1"]
    assert {p["health"] for p in use1} == {"down"}
    assert all(p["reasons"] == [f"signal relay: region use1 down: {reason}"] for p in use1)
    text = "\n".join(status_text(status))
    assert "Signals:" in text and f"use1 down: {reason}" in text and "http  fresh" in text

    feed.take("relay", Reading(j.now, error=SignalError("connect", "cannot connect: [Errno 111] Connection refused")))
    feed.feed(j.controller, j.now + 0.5)
    status = status_result(replace(snapshot(j), signals=feed.rows()), 20)
    assert schema_errors("status", status) == []
    (row,) = status["signals"]
    assert (row["state"], row["marks"]) == ("error", [])
    assert "ignored: cannot connect: [Errno 111] Connection refused" in "\n".join(status_text(status))


def test_status_and_routes_of_a_dual_stack_controller_show_each_family() -> None:
    """docs/dualstack.md: a dual-stack path's IPv6 measurement is a row of its own (path .../ipv6); with only
    IPv6 lost into use1, media's IPv6 routes leave use1 while its IPv4 routes stay."""
    policy = load_policy(REPO / "policies" / "examples" / "dual-stack.yaml")
    v6 = PathKey("media", "use1", "interconnect", MEASURED_V6)
    s = snapshot(judge(policy, lost=lambda k, t: k == v6 and t > T0 + 1.0))
    status = status_result(s, 10)
    assert schema_errors("status", status) == []
    paths = {p["path"]: p for p in status["paths"]}
    assert paths["media/use1/interconnect/ipv6"]["health"] == "down"
    assert paths["media/use1/interconnect"]["health"] == "up"
    routes = routes_result(s, peer="edge")
    assert schema_errors("routes", routes) == []
    edge = {(r["prefix"], r["next_hop"]) for p in routes["peers"] for r in p["routes"]}
    assert ("203.0.113.0/26", "198.18.1.11") in edge and ("2001:db8:c0::/64", "2001:db8:1::12") in edge
    assert ("2001:db8:c0::/64", "2001:db8:1::11") not in edge


def test_a_secondary_controller_says_its_role_and_names_the_ha_penalty_in_each_rule() -> None:
    """docs/ha.md: status.ha from the routes the peers send back; routes name `+ ha.secondary` in their rule."""
    secondary = load_policy(REPO / "policies" / "lab-ha-cr2.yaml")
    back = {"edge": {RouteKey(MEDIA, 0): RouteAttrs("198.18.1.11", (65010, 65000))}}
    s = snapshot(judge(secondary), reflected=back)
    status = status_result(s, 0)
    assert schema_errors("status", status) == []
    assert status["ha"]["role"] == "secondary" and status["ha"]["in_use"] == "no"
    text = "\n".join(status_text(status))
    assert "HA: role secondary" in text and "edge uses the primary's route for 203.0.113.0/26" in text
    routes = routes_result(s)
    assert schema_errors("routes", routes) == []
    rules = {r["rule"]["action"] for p in routes["peers"] for r in p["routes"]}
    assert rules == {"actions.preferred.edge + ha.secondary", "actions.standby.edge + ha.secondary",
                     "actions.preferred.transit-gateway + ha.secondary"}  # fmt: skip
    assert status_result(snapshot(judge(lab_policy())), 0)["ha"] is None
