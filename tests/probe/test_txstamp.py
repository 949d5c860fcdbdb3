"""Kernel transmit stamps: the pure parsing of the error queue's control messages and the pairing of the
kernel's packet numbers with probe sequence numbers (bgpctl.probe.txstamp)."""

from __future__ import annotations

import errno
import random
import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from bgpctl.probe import txstamp
from bgpctl.probe.protocol import ProbeResult
from bgpctl.probe.scheduler import SeqBook
from bgpctl.probe.txstamp import TxBook, TxStamp, parse_tx_stamp

AT = 1_790_000_000.123456789


def _scm_timestamping(sec: int, nsec: int) -> tuple[int, int, bytes]:
    return socket.SOL_SOCKET, txstamp.SO_TIMESTAMPING, struct.pack("@qqqqqq", sec, nsec, 0, 0, 0, 0)


def _ee(
    key: int,
    *,
    ee_errno: int = errno.ENOMSG,
    origin: int = txstamp.SO_EE_ORIGIN_TIMESTAMPING,
    info: int = txstamp.SCM_TSTAMP_SND,
    level: int = socket.IPPROTO_IP,
    kind: int = txstamp.IP_RECVERR,
) -> tuple[int, int, bytes]:
    # struct sock_extended_err, then the offender address (zeros for a timestamp), as the kernel sends it
    return level, kind, struct.pack("=IBBBBII", ee_errno, origin, 0, 0, 0, info, key) + bytes(16)


def test_a_software_transmit_stamp_with_its_number_is_read() -> None:
    anc = [(socket.SOL_SOCKET, 35, struct.pack("@qq", 1, 2)), _scm_timestamping(1_790_000_000, 5), _ee(7)]
    assert parse_tx_stamp(anc) == TxStamp(7, 1_790_000_000 + 5e-9)


def test_ipv6_sockets_report_the_number_under_ipv6_recverr() -> None:
    anc = [_scm_timestamping(3, 0), _ee(2**32 - 1, level=socket.IPPROTO_IPV6, kind=txstamp.IPV6_RECVERR)]
    assert parse_tx_stamp(anc) == TxStamp(2**32 - 1, 3.0)


def test_what_is_not_a_numbered_software_send_stamp_is_none() -> None:
    assert parse_tx_stamp([]) is None
    assert parse_tx_stamp([_scm_timestamping(3, 0)]) is None  # no number
    assert parse_tx_stamp([_ee(1)]) is None  # no time
    assert parse_tx_stamp([_scm_timestamping(0, 0), _ee(1)]) is None  # only a hardware stamp would be set
    assert parse_tx_stamp([_scm_timestamping(3, 0), _ee(1, ee_errno=errno.EHOSTUNREACH)]) is None  # ICMP error
    assert parse_tx_stamp([_scm_timestamping(3, 0), _ee(1, origin=2)]) is None  # SO_EE_ORIGIN_ICMP
    assert parse_tx_stamp([_scm_timestamping(3, 0), _ee(1, info=1)]) is None  # SCM_TSTAMP_SCHED
    short = (socket.SOL_SOCKET, txstamp.SO_TIMESTAMPING, bytes(16))
    assert parse_tx_stamp([short, _ee(1)]) is None
    assert parse_tx_stamp([_scm_timestamping(3, 0), (socket.IPPROTO_IP, txstamp.IP_RECVERR, bytes(8))]) is None


def test_the_error_queue_buffer_holds_every_message_a_stamp_brings() -> None:
    assert txstamp.tx_ancillary_space() >= socket.CMSG_SPACE(16) + socket.CMSG_SPACE(48) + socket.CMSG_SPACE(44)


def test_stamps_pair_with_the_probes_in_send_order_and_may_come_late() -> None:
    book = TxBook()
    for seq in (10, 11, 12):
        book.sent(seq, AT + seq)
    assert book.stamped(TxStamp(1, AT + 11.001)) == 11  # out of order: a qdisc held packet 0
    assert book.kernel_at(10) is None and book.knows(10)
    assert book.stamped(TxStamp(0, AT + 10.002)) == 10
    assert (book.kernel_at(10), book.kernel_at(11), book.kernel_at(12)) == (AT + 10.002, AT + 11.001, None)
    assert not book.knows(13) and book.kernel_at(13) is None


def test_a_stamp_earlier_than_its_probes_user_time_or_for_no_probe_is_refused() -> None:
    book = TxBook()
    book.sent(5, AT)
    assert book.stamped(TxStamp(0, AT - 0.001)) is None  # a stale number (from before a restart)
    assert book.stamped(TxStamp(1, AT + 1)) is None  # never sent
    assert book.kernel_at(5) is None and book.unmatched == 2


def test_after_a_restart_numbering_starts_again_at_zero() -> None:
    book = TxBook()
    book.sent(0, AT)
    book.sent(1, AT + 1)  # this send failed: the kernel may or may not have used number 1
    book.restart()
    book.sent(2, AT + 2)
    assert book.stamped(TxStamp(1, AT + 1.5)) is None  # the old packet 1's stamp pairs with nothing now
    assert book.stamped(TxStamp(0, AT + 0.5)) is None  # old packet 0 is older than probe 2's send
    assert book.stamped(TxStamp(0, AT + 2.001)) == 2


def test_numbers_wrap_at_32_bits() -> None:
    book = TxBook(ring=8)
    book._next_key = 2**32 - 1
    book.sent(100, AT)
    book.sent(101, AT)
    assert book.stamped(TxStamp(2**32 - 1, AT + 1)) == 100
    assert book.stamped(TxStamp(0, AT + 2)) == 101


@given(
    st.lists(st.floats(0, 0.01), min_size=1, max_size=300),
    st.randoms(use_true_random=False),
    st.integers(0, 2**20),
)
def test_any_arrival_order_of_stamps_gives_each_probe_its_own(
    delays: list[float], rnd: random.Random, first_seq: int
) -> None:
    book = TxBook(ring=512)
    sends = [(first_seq + i, AT + i * 0.02) for i in range(len(delays))]
    for seq, at in sends:
        book.sent(seq, at)
    stamps = [TxStamp(i, at + d) for i, ((_, at), d) in enumerate(zip(sends, delays, strict=True))]
    rnd.shuffle(stamps)
    for s in stamps:
        book.stamped(s)
    assert [book.kernel_at(seq) for seq, _ in sends] == [at + d for (_, at), d in zip(sends, delays, strict=True)]


def test_a_replys_kernel_send_time_replaces_the_one_send_returned() -> None:
    book = SeqBook(timeout_s=0.2)
    book.sent(0, 100.0)  # user-space time: the stamp had not come when send() returned
    book.sent(1, 100.02)
    book.reply(ProbeResult(0, 100.015, sent=100.003))
    book.reply(ProbeResult(1, 100.035))
    assert [(s.seq, s.sent, s.received) for s in book.take_settled()] == [(0, 100.003, 100.015), (1, 100.02, 100.035)]


def test_the_timeout_is_judged_on_the_kernels_send_time() -> None:
    book = SeqBook(timeout_s=0.2)
    book.sent(0, 100.0)
    book.reply(ProbeResult(0, 100.205, sent=100.01))  # 0.195 s after the packet really left
    assert book.counters["answered"] == 1 and book.counters["lost"] == 0
