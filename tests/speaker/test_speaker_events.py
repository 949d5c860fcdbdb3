"""The speaker's handling of what ExaBGP writes, fed line by line (no ExaBGP process: the lines are the
notes' real samples; the lab tests run the same code against ExaBGP and FRR)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bgpctl import events
from bgpctl.core.types import RouteAttrs, RouteKey
from bgpctl.errors import SpeakerError
from bgpctl.speaker import Speaker
from tests.speaker.exabgp_lines import CASES, NB, H
from tests.speaker.lab import LogTap, make_policy


def _speaker(tmp_path: Path) -> tuple[Speaker, LogTap]:
    tap = LogTap()
    return Speaker(make_policy(), tmp_path / "run", tap.log), tap


def test_unparsable_line_is_logged_with_the_line_and_counted(tmp_path: Path) -> None:
    sp, tap = _speaker(tmp_path)
    sp._dispatch('{"exabgp": "5.0.0", "type": "state", "neighbor": 7}\n')
    sp._dispatch("exabgp 5.0.15\n")
    assert sp.counters["unparsable_lines"] == 2
    logged = tap.events(events.EXABGP_UNPARSABLE_LINE)
    assert [e["line"] for e in logged] == ['{"exabgp": "5.0.0", "type": "state", "neighbor": 7}', "exabgp 5.0.15"]
    assert all(e["level"] == "error" and e["reason"] for e in logged)
    assert sp.sessions() == {"edge": "idle", "edge6": "idle", "tgw-use1": "idle"}  # state untouched


def test_ack_without_a_command_is_an_error_not_a_crash(tmp_path: Path) -> None:
    sp, tap = _speaker(tmp_path)
    sp._dispatch("done\n")
    assert sp.counters["acks_unexpected"] == 1 and tap.events(events.EXABGP_UNEXPECTED_ACK)


def test_session_states_and_own_routes(tmp_path: Path) -> None:
    sp, tap = _speaker(tmp_path)
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')
    assert sp.sessions()["edge"] == "up" and "edge" in sp._resync
    sp._dispatch(CASES[5][1])  # FRR's 192.0.2.0/24, add-path id 2
    sp._dispatch(CASES[6][1])  # our 203.0.113.0/26 reflected back (65000 in the path)
    assert sp.received()["edge"] == {RouteKey("192.0.2.0/24", 2): RouteAttrs("198.18.1.1", (65010,), 0)}
    assert sp.counters["own_routes_filtered"] == 1
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "down", "reason": "notification received (6,2)" } }')
    assert sp.sessions()["edge"] == "down" and sp.received()["edge"] == {} and "edge" not in sp._resync
    sp._dispatch(
        H + '"type": "state", ' + NB.replace('"peer": "198.18.1.1"', '"peer": "198.18.1.99"') + ', "state": "up" } }'
    )
    assert tap.events(events.EXABGP_UNKNOWN_PEER)


def test_open_refused_by_the_peer_is_logged_with_a_hint(tmp_path: Path) -> None:
    sp, tap = _speaker(tmp_path)
    sp._dispatch(
        H + '"type": "notification", ' + NB + ', "direction": "receive", "notification": { "code": 2, '
        '"subcode": 2, "data": "0x", "message": "Bad Peer AS" } } }'
    )
    (note,) = tap.events(events.BGP_NOTIFICATION)
    assert (note["peer"], note["code"], note["subcode"], note["level"]) == ("edge", 2, 2, "warning")
    assert (note["reason"], note["description"]) == (
        "open_message_error_bad_peer_as",
        "OPEN Message Error / Bad Peer AS",
    )
    assert "refused our OPEN" in note["hint"] and "peer_as" in note["hint"]
    # the down event that follows names the same NOTIFICATION: counted once
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "down", "reason": "notification received (2,2)" } }')
    assert sp.failures == {("edge", "receive", "open_message_error_bad_peer_as"): 1}


def test_a_notification_exabgp_sends_is_decoded_from_the_down_reason(tmp_path: Path) -> None:
    sp, tap = _speaker(tmp_path)
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "down", "reason": "notification sent (4,0)" } }')
    (note,) = tap.events(events.BGP_NOTIFICATION)
    assert (note["peer"], note["direction"], note["reason"], note["level"]) == (
        "edge",
        "send",
        "hold_timer_expired",
        "warning",
    )
    assert tap.events(events.BGP_SESSION)[-1]["level"] == "warning"
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "down", "reason": "closing connection" } }')
    assert sp.failures == {("edge", "send", "hold_timer_expired"): 1, ("edge", "none", "connection_lost"): 1}


def test_a_received_shutdown_names_its_text(tmp_path: Path) -> None:
    sp, tap = _speaker(tmp_path)
    sp._dispatch(
        H + '"type": "notification", ' + NB + ', "direction": "receive", "notification": { "code": 6, '
        '"subcode": 2, "data": "0x", "message": "Shutdown Communication: \\"maintenance-window\\"" } } }'
    )
    (note,) = tap.events(events.BGP_NOTIFICATION)
    assert (note["reason"], note["shutdown_message"]) == ("administrative_shutdown", "maintenance-window")
    assert sp.failures == {("edge", "receive", "administrative_shutdown"): 1}


def test_sessions_not_up_in_two_hold_times_are_warned_about_with_likely_causes(tmp_path: Path) -> None:
    sp, tap = _speaker(tmp_path)
    sp._watch.restart(0.0)
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')  # edge comes up
    sp.check_sessions(17.0)
    assert tap.events(events.BGP_SESSION_NOT_ESTABLISHED) == []
    sp.check_sessions(18.5)  # 2 x hold 9 s
    late = {e["peer"]: e for e in tap.events(events.BGP_SESSION_NOT_ESTABLISHED)}
    assert set(late) == {"edge6", "tgw-use1"}
    assert all(e["level"] == "warning" and "MD5" in e["likely_causes"] for e in late.values())
    assert late["tgw-use1"]["address"] == "198.18.1.11" and late["tgw-use1"]["waited_s"] == 18.5
    assert sp.failures[("tgw-use1", "none", "not_established")] == 1


def test_received_prefixes_are_bounded_by_max_prefixes(tmp_path: Path) -> None:
    tap = LogTap()
    sp = Speaker(make_policy(), tmp_path / "run", tap.log)
    limit = sp.policy.peer("edge").max_prefixes.limit
    assert limit == 1000 and str(sp.policy.peer("edge").max_prefixes.action) == "ignore"  # the safe default
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')
    for batch in range(3):  # 3 UPDATEs of 600 /32s each: 1800 offered, 1000 kept
        nlri = ", ".join(
            f'{{ "nlri": "198.19.{batch}.{i % 256}/32", "path-information": "0.0.{i // 256}.1" }}' for i in range(600)
        )
        sp._dispatch(
            H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": { "attribute": '
            '{ "origin": "igp", "as-path": {"0": {"element": "as-sequence", "value": [65010]}} }, '
            '"announce": { "ipv4 unicast": { "198.18.1.1": [ ' + nlri + " ] } } } } } }"
        )
    assert len(sp.received()["edge"]) == limit
    assert sp.counters["prefixes_over_limit"] == 800
    (warned,) = tap.events(events.BGP_MAX_PREFIXES)  # once per session
    assert (warned["peer"], warned["limit"], warned["action"], warned["level"]) == ("edge", 1000, "ignore", "warning")
    assert sp.failures == {("edge", "receive", "max_prefixes_exceeded"): 1}
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "down", "reason": "closing connection" } }')
    assert sp.received()["edge"] == {}


def test_sync_without_exabgp_keeps_the_rib_and_refuses_outside_the_allowlist(tmp_path: Path) -> None:
    async def run() -> None:
        sp, _tap = _speaker(tmp_path)
        rib = {"edge": {RouteKey("203.0.113.0/26"): RouteAttrs("198.18.1.11", (65000,), 0)}}
        result = await sp.sync(rib)
        assert not result.connected and result.sent == 0
        assert sp.desired() == rib and sp.announced() == {}
        with pytest.raises(SpeakerError, match="outside the policy allowlist"):
            await sp.sync({"edge": {RouteKey("10.0.0.0/8"): RouteAttrs("198.18.1.11", (65000,))}})
        assert sp.desired() == rib

    asyncio.run(run())


def test_a_session_we_closed_for_max_prefixes_counts_as_that_not_as_a_lost_connection(tmp_path: Path) -> None:
    sp, _tap = _speaker(tmp_path)
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')
    sp._torn_down.add("edge")  # what _teardown records before ExaBGP acknowledges "neighbor ... teardown 1"
    # with graceful restart negotiated ExaBGP closes without sending the Cease NOTIFICATION
    reason = "graceful restarted negotiated, closing without sending any notification"
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "down", "reason": "' + reason + '" } }')
    assert sp.failures == {("edge", "send", "maximum_prefixes_reached"): 1}
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')
    sp._torn_down.add("edge")  # without graceful restart: the NOTIFICATION is in the reason, counted once
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "down", "reason": "notification sent (6,1)" } }')
    assert sp.failures == {("edge", "send", "maximum_prefixes_reached"): 2}


def test_syns_unanswered_name_the_peer_within_seconds_unless_its_session_is_up(tmp_path: Path) -> None:
    sp, tap = _speaker(tmp_path)
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')  # edge (198.18.1.1) is up
    for t in (0.0, 1.0, 2.0, 3.0):
        sp.check_syns({"198.18.1.11", "198.18.1.1"}, now=t)
    (late,) = tap.events(events.BGP_SYN_UNANSWERED)
    assert (late["peer"], late["address"], late["unanswered_s"], late["level"]) == (
        "tgw-use1",
        "198.18.1.11",
        3.0,
        "warning",
    )
    assert "TCP-MD5" in late["likely_causes"] and late["md5"] is False
    assert sp.failures == {("tgw-use1", "send", "syn_unanswered"): 1}


def test_a_connection_the_peer_acknowledges_nothing_on_is_named_as_gtsm_within_seconds(tmp_path: Path) -> None:
    sp, tap = _speaker(tmp_path)
    for t in (0.0, 1.0, 2.0, 3.0):
        sp.check_syns(set(), {"198.18.1.11"}, now=t)
    (late,) = tap.events(events.BGP_PACKETS_UNACKNOWLEDGED)
    assert (late["peer"], late["unanswered_s"], late["level"]) == ("tgw-use1", 3.0, "warning")
    assert "GTSM" in late["likely_causes"] and late["ttl_security"] is False
    assert sp.failures == {("tgw-use1", "send", "packets_unacknowledged"): 1}


def test_the_last_error_status_shows_is_the_decoded_notification_of_the_episode(tmp_path: Path) -> None:
    sp, _ = _speaker(tmp_path)
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "down", "reason": "notification sent (4,0)" } }')
    assert sp.session_errors["edge"] == "NOTIFICATION send (4,0) Hold Timer Expired"
    # a received NOTIFICATION comes before the down state; the down's own words do not replace it
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')
    sp._dispatch(
        H + '"type": "notification", ' + NB + ', "direction": "receive", "notification": { "code": 6, '
        '"subcode": 2, "data": "0x", "message": "Shutdown Communication: \\"maintenance-window\\"" } } }'
    )
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "down", "reason": "closing connection" } }')
    assert sp.session_errors["edge"] == (
        'NOTIFICATION receive (6,2) Cease / Administrative Shutdown "maintenance-window"'
    )
    # the next episode without a NOTIFICATION: ExaBGP's words
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "down", "reason": "closing connection" } }')
    assert sp.session_errors["edge"] == "closing connection"


def test_own_routes_sent_back_are_kept_apart_and_forgotten_on_withdraw_and_down(tmp_path: Path) -> None:
    """The HA pair's view of whose routes a peer uses (docs/ha.md): our own routes, as the peer sends them back,
    are kept apart from the received ones (never used as routes) and go with a withdrawal or the session."""
    sp, _ = _speaker(tmp_path)
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "up" } }')
    sp._dispatch(CASES[6][1])  # our 203.0.113.0/26 reflected back (65010 65000 65000)
    key = RouteKey("203.0.113.0/26", 0)
    assert sp.reflected()["edge"] == {
        key: RouteAttrs("198.18.1.1", (65010, 65000, 65000), None, ("65000:100", "65000:200"), ("65000:1:2",))
    }
    assert sp.received()["edge"] == {}
    withdraw = (
        H + '"type": "update", ' + NB + ', "direction": "receive", "message": { "update": { "withdraw": '
        '{ "ipv4 unicast": [ { "nlri": "203.0.113.0/26" } ] } } } } }'
    )
    sp._dispatch(withdraw)
    assert sp.reflected()["edge"] == {}
    sp._dispatch(CASES[6][1])
    assert key in sp.reflected()["edge"]
    sp._dispatch(H + '"type": "state", ' + NB + ', "state": "down", "reason": "notification received (6,2)" } }')
    assert sp.reflected()["edge"] == {}
