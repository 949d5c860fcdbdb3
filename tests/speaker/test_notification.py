"""NOTIFICATION codes in words, ExaBGP's down reasons, and the bookkeeping of sessions that never come up."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bgpctl.speaker import notification as n
from bgpctl.speaker.sessionwatch import (
    CAUSES_NO_TCP,
    CAUSES_TCP_ONLY,
    SessionWatch,
    SynWatch,
    syn_sent_to,
    unacknowledged_to,
)


def test_the_rfc_words_of_common_failures() -> None:
    hold = n.decode(4, 0)
    assert (hold.reason, hold.description) == ("hold_timer_expired", "Hold Timer Expired")
    bad_as = n.decode(2, 2)
    assert (bad_as.reason, bad_as.description) == ("open_message_error_bad_peer_as", "OPEN Message Error / Bad Peer AS")
    assert "peer_as" in bad_as.hint
    assert n.decode(2, 7).reason == "open_message_error_unsupported_capability"  # RFC 5492
    assert n.decode(6, 1).description == "Cease / Maximum Number of Prefixes Reached"  # RFC 4486
    assert n.decode(6, 6).reason == "other_configuration_change"
    assert n.decode(6, 9).reason == "hard_reset"  # RFC 8538
    assert n.decode(5, 2).reason == "fsm_error_unexpected_message_in_openconfirm"  # RFC 6608
    assert n.decode(1, 0).reason == "message_header_error"  # subcode 0: unspecific


def test_the_shutdown_communication_is_read_from_exabgps_message() -> None:
    # ExaBGP's text for FRR's "neighbor X shutdown message maintenance-window" (docs: the notes' sample)
    d = n.decode(6, 2, 'Shutdown Communication: "maintenance-window"')
    assert (d.reason, d.shutdown_message) == ("administrative_shutdown", "maintenance-window")
    assert n.decode(6, 4, 'Shutdown Communication: "a \\"quoted\\" text"').shutdown_message == 'a \\"quoted\\" text'
    assert n.decode(6, 2, "empty Shutdown Communication.").shutdown_message is None
    assert n.decode(6, 3, 'Shutdown Communication: "x"').shutdown_message is None  # only subcodes 2 and 4 carry it


def test_unknown_codes_keep_the_label_set_bounded() -> None:
    assert n.decode(6, 99).reason == "cease_subcode_other"
    assert n.decode(2, 42).reason == "open_message_error_subcode_other"
    assert n.decode(200, 3).reason == "unknown_code"


@given(st.integers(0, 255), st.integers(0, 255), st.text(max_size=300))
def test_decode_never_raises_and_reasons_come_from_a_fixed_vocabulary(code: int, subcode: int, message: str) -> None:
    d = n.decode(code, subcode, message)
    assert re.fullmatch(r"[a-z][a-z_]*", d.reason)
    vocabulary = (
        {w for w, _ in n.CODES.values()}
        | {w for w, _ in n.SUBCODES.values()}
        | {f"{w}_{s}" for (c, _), (s, _) in n.SUBCODES.items() for cc, (w, _) in n.CODES.items() if cc == c}
        | {f"{w}_subcode_other" for w, _ in n.CODES.values()}
        | {"unknown_code"}
    )
    assert d.reason in vocabulary
    assert d.description and d.hint


def test_exabgps_down_reasons() -> None:
    assert n.from_down_reason("notification sent (4,0)") == n.DownNotification("send", 4, 0)
    assert n.from_down_reason("notification received (6,2)") == n.DownNotification("receive", 6, 2)
    assert n.from_down_reason("closing connection") is None
    assert n.from_down_reason("stop, message [shutting down]") is None
    assert n.from_down_reason("notification sent (4,0) and more") is None


def test_a_session_not_up_within_two_hold_times_is_reported_once_per_period() -> None:
    w = SessionWatch({"edge": 9, "tgw": 30})
    w.restart(100.0)
    assert w.due(117.9) == []
    (late,) = w.due(118.0)
    assert (late.peer, late.tcp_connected, late.report, late.likely_causes) == ("edge", False, 1, CAUSES_NO_TCP)
    assert "MD5" in late.likely_causes
    assert w.due(130.0) == []  # reported; the next report after two more hold times
    assert [x.report for x in w.due(136.0)] == [1 + 1]
    w.state("edge", "up", 137.0)
    w.state("tgw", "up", 137.0)
    assert w.due(1000.0) == []


def test_tcp_connected_but_never_up_points_at_gtsm_and_open() -> None:
    w = SessionWatch({"edge": 9})
    w.restart(0.0)
    w.state("edge", "up", 1.0)
    w.state("edge", "down", 50.0)  # a new episode starts when the session goes down
    w.state("edge", "connected", 51.0)
    w.state("edge", "down", 60.0)  # GTSM: ExaBGP's hold timer expires, it tries again: the same episode
    w.state("edge", "connected", 61.0)
    assert w.due(67.9) == []
    (late,) = w.due(68.0)
    assert late.tcp_connected and late.likely_causes == CAUSES_TCP_ONLY and "GTSM" in late.likely_causes
    w.state("nobody", "down", 70.0)  # not a watched peer: ignored
    assert list(w.waiting()) == ["edge"]


# /proc/net/tcp as this kernel writes it (x86: the address words printed as native little-endian integers)
PROC_TCP = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 020112C6:A4F2 0C0112C6:00B3 02 00000001:00000000 01:00000276 00000002     0        0 1 1 0 1000 0\n"
    "   1: 020112C6:A4F4 0B0112C6:00B3 01 00000000:00000000 02:00000276 00000000     0        0 2 1 0 20 4 30\n"
    "   2: 020112C6:A4F6 0B0112C6:01BB 02 00000001:00000000 01:00000276 00000002     0        0 3 1 0 1000 0\n"
    "   3: 0100007F:2505 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0\n"
)
PROC_TCP6 = (
    "  sl  local_address                         remote_address                        st tx_queue\n"
    "   0: B80D0120000000000000000002000000:A4F2 B80D0120000000000000000001000000:00B3 02 00000001:00000000\n"
)


def test_sockets_in_syn_sent_to_port_179_are_read_from_proc_net_tcp() -> None:
    # .12:179 is in SYN-SENT; .11:179 is established (01); .11:443 is not BGP; the listener is not SYN-SENT
    assert syn_sent_to(PROC_TCP) == {"198.18.1.12"}
    assert syn_sent_to(PROC_TCP6) == {"2001:db8::1"}
    assert syn_sent_to("") == set() and syn_sent_to("header\n  0: zz:zz 02\n") == set()


def test_established_sockets_with_unacknowledged_data_are_read_from_proc_net_tcp() -> None:
    # .11:179 established with 0 bytes unacknowledged: fine; the same with 45 bytes (an OPEN) outstanding
    assert unacknowledged_to(PROC_TCP) == set()
    stuck = PROC_TCP.replace("0B0112C6:00B3 01 00000000:00000000", "0B0112C6:00B3 01 0000002D:00000000")
    assert unacknowledged_to(stuck) == {"198.18.1.11"}
    assert syn_sent_to(stuck) == {"198.18.1.12"}


def test_a_peer_whose_syns_stay_unanswered_for_three_seconds_is_named_once() -> None:
    w = SynWatch({"198.18.1.12": "tgw-usw2", "198.18.1.11": "tgw-use1"})
    assert w.seen({"198.18.1.12"}, 10.0) == []
    assert w.seen({"198.18.1.12"}, 12.9) == []
    assert w.seen(set(), 13.0) == []  # the attempt ended: the next one starts over
    assert w.seen({"198.18.1.12", "198.51.100.1"}, 14.0) == []
    (late,) = w.seen({"198.18.1.12"}, 17.0)
    assert (late.peer, late.unanswered_s) == ("tgw-usw2", 3.0)
    assert w.seen({"198.18.1.12"}, 30.0) == []  # once, until the session comes up
    w.up("tgw-usw2")  # the session came up (and went down again): a new report is due
    assert [(x.peer, x.unanswered_s) for x in w.seen({"198.18.1.12"}, 31.0)] == [("tgw-usw2", 17.0)]
