"""Hostile datagrams for the STAMP reflector: each is refused (no answer) and counted under its reason,
and nothing else changes. The same table runs twice: through :meth:`Reflector.answer` (pure, unit tier)
and as real packets sent with a raw socket into a reflector in a network namespace (lab tier), where
the wire (nft counters) shows that nothing was sent back.

Loops between reflectors and floods are in test_reflector_loop.py.
"""

from __future__ import annotations

import asyncio
import os
import socket
from dataclasses import dataclass
from ipaddress import ip_address

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP

from bgpctl.cli.main import cli
from bgpctl.errors import ProbeError
from bgpctl.probe import reflector as r
from bgpctl.probe import stamp
from bgpctl.probe.sockopt import Received
from bgpctl_lab.poll import eventually
from tests.badinput.reflector_topo import A_X, A, B, stopped, topology

PORT = 862
OWN = frozenset(ip_address(a) for a in (A, A_X, "127.0.0.1", "::1"))
GOOD_SRC = "198.18.240.1"
PROBE = stamp.encode_sender(stamp.SenderPacket(7, stamp.ntp_from_unix_ns(1_700_000_000_000_000_000)))


@dataclass(frozen=True)
class Case:
    why: str
    src: str
    sport: int
    expect: str  # the counter this datagram lands in; "reflected" for an answer
    dst: str = A_X
    payload: bytes = PROBE
    truncated: bool = False
    listen: str = "0.0.0.0"
    port: int = PORT
    allow_local: bool | None = None
    wire: str | None = "x"  # namespace the lab test sends it from ("a": the reflector's own); None: not sent


CASES = [
    Case("echo (7)", GOOD_SRC, 7, r.REFUSED_PRIVILEGED_PORT),
    Case("chargen (19)", GOOD_SRC, 19, r.REFUSED_PRIVILEGED_PORT),
    Case("time (37)", GOOD_SRC, 37, r.REFUSED_PRIVILEGED_PORT),
    Case("DNS (53)", GOOD_SRC, 53, r.REFUSED_PRIVILEGED_PORT),
    Case("TFTP (69)", GOOD_SRC, 69, r.REFUSED_PRIVILEGED_PORT),
    Case("NTP (123)", GOOD_SRC, 123, r.REFUSED_PRIVILEGED_PORT),
    Case("another STAMP reflector (862)", B, 862, r.REFUSED_PRIVILEGED_PORT),
    Case("port 0", GOOD_SRC, 0, r.REFUSED_PRIVILEGED_PORT, wire=None),  # the kernel drops sport 0
    Case("port 1023", GOOD_SRC, 1023, r.REFUSED_PRIVILEGED_PORT),
    Case("own port (18620)", B, 18620, r.REFUSED_SERVICE_PORT, port=18620, wire=None),  # on the wire: the loop tests
    Case("SSDP (1900)", GOOD_SRC, 1900, r.REFUSED_SERVICE_PORT),
    Case("STUN (3478)", GOOD_SRC, 3478, r.REFUSED_SERVICE_PORT),
    Case("mDNS (5353)", GOOD_SRC, 5353, r.REFUSED_SERVICE_PORT),
    Case("memcached (11211)", GOOD_SRC, 11211, r.REFUSED_SERVICE_PORT),
    Case("self-addressed, own port", A, 862, r.REFUSED_PRIVILEGED_PORT, dst=A, wire="a"),
    Case("self-addressed, high port", A, 40000, r.REFUSED_OWN_ADDRESS, dst=A, wire="a"),
    Case("from another own address", A_X, 40000, r.REFUSED_OWN_ADDRESS, dst=A, wire="a"),
    Case("loopback source", "127.0.0.1", 40000, r.REFUSED_OWN_ADDRESS, dst="127.0.0.1", wire=None),
    Case("source = destination off lo", A_X, 40000, r.REFUSED_OWN_ADDRESS, wire=None),
    Case("source = listen address", A, 40000, r.REFUSED_OWN_ADDRESS, listen=A, dst=A, wire=None),
    Case("IPv6 loopback", "::1", 40000, r.REFUSED_OWN_ADDRESS, dst="::1", listen="::", wire=None),
    Case(
        "IPv4-mapped own address",
        "::ffff:198.18.240.2",
        40000,
        r.REFUSED_OWN_ADDRESS,
        dst="::ffff:198.18.240.2",
        listen="::",
        wire=None,
    ),
    Case("multicast source", "224.0.0.1", 40000, r.REFUSED_BAD_ADDRESS, wire=None),
    Case("broadcast source", "255.255.255.255", 40000, r.REFUSED_BAD_ADDRESS, wire=None),
    Case("unspecified source", "0.0.0.0", 40000, r.REFUSED_BAD_ADDRESS, wire=None),
    Case("IPv6 multicast source", "ff02::1", 40000, r.REFUSED_BAD_ADDRESS, listen="::", dst="2001:db8::1", wire=None),
    Case("unreadable source", "not-an-address", 40000, r.REFUSED_BAD_ADDRESS, wire=None),
    Case("empty datagram", GOOD_SRC, 40000, r.DROPPED_SHORT, payload=b""),
    Case("10 octets", GOOD_SRC, 40000, r.DROPPED_SHORT, payload=b"x" * 10),
    Case("43 octets", GOOD_SRC, 40000, r.DROPPED_SHORT, payload=PROBE[:43]),
    Case("truncated by the kernel", GOOD_SRC, 40000, r.DROPPED_LONG, truncated=True, wire=None),
    Case("good probe", GOOD_SRC, 40000, r.REFLECTED),
    Case("good probe, padded", GOOD_SRC, 40001, r.REFLECTED, payload=PROBE + bytes(100)),
    Case(
        "loopback on purpose",
        "127.0.0.1",
        40000,
        r.REFLECTED,
        dst="127.0.0.1",
        listen="127.0.0.1",
        wire=None,
    ),
    Case(
        "own address with --allow-local",
        A,
        40000,
        r.REFLECTED,
        dst=A,
        allow_local=True,
        wire=None,
    ),
    Case(
        "own port even with --allow-local",
        A,
        862,
        r.REFUSED_PRIVILEGED_PORT,
        dst=A,
        allow_local=True,
        wire=None,
    ),
]


def _reflector(case: Case) -> r.Reflector:
    return r.Reflector(case.listen, case.port, allow_local=case.allow_local)


@pytest.mark.parametrize("case", CASES, ids=[c.why for c in CASES])
def test_each_datagram_is_answered_or_refused_under_its_reason(case: Case) -> None:
    refl = _reflector(case)
    refl.own = OWN  # what netlink says namespace a has (test_own_addresses_come_from_netlink)
    info = Received(at=None, ttl=64, tos=0, local=case.dst)
    answer = refl.answer(case.payload, info, (case.src, case.sport), truncated=case.truncated, now=0.0)
    if case.expect == r.REFLECTED:
        assert answer is not None and len(answer) == len(case.payload)
        assert stamp.decode_reflector(answer).sender_seq == 7
        assert refl.counters == {r.RECEIVED: 1}
    else:
        assert answer is None
        assert refl.counters == {r.RECEIVED: 1, case.expect: 1}
    assert set(refl.report()) == set(r.COUNTERS)  # the stopped line always shows every reason


def test_a_source_gets_its_burst_then_the_rate() -> None:
    refl = r.Reflector(rate=10, burst=5)
    info = Received(at=None, ttl=64, local=A_X)
    answers = [refl.answer(PROBE, info, (GOOD_SRC, 40000), now=100.0) for _ in range(8)]
    assert sum(a is not None for a in answers) == 5 and refl.counters[r.RATE_LIMITED] == 3
    assert refl.answer(PROBE, info, ("198.18.240.9", 40000), now=100.0) is not None  # per source
    assert refl.answer(PROBE, info, (GOOD_SRC, 40000), now=100.05) is None  # half a token
    assert refl.answer(PROBE, info, (GOOD_SRC, 40000), now=100.2) is not None  # 1.5 tokens by now
    assert refl.answer(PROBE, info, (GOOD_SRC, 40000), now=1000.0) is not None


def test_buckets_are_bounded_and_forget_the_least_recently_used() -> None:
    buckets = r.TokenBuckets(rate=1, burst=1, max_sources=3)
    for src in ("s1", "s2", "s3"):
        assert buckets.admit(src, 0.0)
    assert not buckets.admit("s1", 0.0)  # s1 is now the most recently used
    assert buckets.admit("s4", 0.0) and len(buckets) == 3  # s2 forgotten
    assert not buckets.admit("s1", 0.0) and not buckets.admit("s3", 0.0)
    assert buckets.admit("s2", 0.0)  # forgotten: a full bucket again


@settings(deadline=None, max_examples=50)
@given(st.lists(st.floats(0, 10), min_size=1, max_size=200), st.floats(0.5, 50), st.integers(1, 20))
def test_answers_never_exceed_burst_plus_rate_times_time(gaps: list[float], rate: float, burst: int) -> None:
    buckets = r.TokenBuckets(rate=rate, burst=burst)
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        admitted += buckets.admit("s", now)
    assert admitted <= burst + rate * now + 1e-6


@pytest.mark.parametrize(
    ("rate", "burst", "batch"),
    [(0, 1, 1), (1, 0, 1), (1, 1, 0), (-1, 1, 1), (float("nan"), 1, 1), (float("inf"), 1, 1)],
)
def test_nonsense_limits_are_refused(rate: float, burst: int, batch: int) -> None:
    with pytest.raises(ProbeError, match="must be positive"):
        r.Reflector(rate=rate, burst=burst, batch=batch)


def test_one_wake_up_handles_at_most_batch_datagrams() -> None:
    """Real sockets on 127.0.0.1 (a loopback listen is local on purpose): 50 datagrams wait, one call of
    the reader handles 8 and returns to the event loop; the next call the next 8."""

    async def main() -> list[int]:
        refl = r.Reflector("127.0.0.1", 0, batch=8)
        await refl.start()
        try:
            assert refl._sock is not None
            asyncio.get_running_loop().remove_reader(refl._sock.fileno())  # drive it by hand
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.bind(("127.0.0.1", 0))
            for _ in range(50):
                client.sendto(PROBE, ("127.0.0.1", refl.udp_port))
            seen = []
            for _ in range(3):
                refl._readable()
                seen.append(refl.counters[r.RECEIVED])
            client.close()
            return [*seen, refl.counters[r.REFLECTED]]
        finally:
            refl.close()

    assert asyncio.run(main()) == [8, 16, 24, 24]


def test_an_ipv6_reflector_takes_ipv6_only_so_an_ipv4_one_shares_its_port() -> None:
    """The lab runs an IPv4 and an IPv6 reflector on port 862 (lab/services.yaml ``reflector6``): an IPv6 listen
    socket is IPv6-only, UDP and TCP alike; without it ``::`` also takes the IPv4 port and the IPv4 reflector
    cannot start. Real sockets on an ephemeral port, open for the length of the test; the IPv4 one on
    127.0.0.1."""

    async def main() -> list[int]:
        v6 = r.Reflector("::", 0, tcp_ports=(0,), allow_local=True)
        await v6.start()
        try:
            assert v6._sock is not None and v6._sock.family == socket.AF_INET6
            tcp = [s for server in v6._servers for s in server.sockets]
            v4 = r.Reflector("127.0.0.1", v6.udp_port, allow_local=True)
            await v4.start()  # ProbeError "cannot listen" without IPv6-only
            v4.close()
            return [s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) for s in [v6._sock, *tcp]]
        finally:
            v6.close()

    assert asyncio.run(main()) == [1, 1]


# ------------------------------------------------------------------------------ real packets (lab)


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_own_addresses_come_from_netlink() -> None:
    async def own(netns: str) -> frozenset[r.IPAddress]:
        refl = r.Reflector(netns=netns, port=0)
        await refl.start()
        try:
            return refl.own
        finally:
            refl.close()

    with topology() as topo:
        got = asyncio.run(own(topo.ns("a")))
    assert got >= OWN
    assert all(a.is_link_local for a in got - OWN)  # the veths' fe80:: addresses


BAD_OPTIONS = [
    (["--listen", "foo"], "Invalid value for '--listen': 'foo' is not an IP address"),
    (["--listen", "203.0.113.10\n"], "is not an IP address"),
    (["--listen", ""], "is not an IP address"),
    (["--rate", "0"], "Invalid value for '--rate'"),
    (["--rate", "nan"], "Invalid value for '--rate'"),
    (["--burst", "0"], "Invalid value for '--burst'"),
    (["--seconds", "0"], "Invalid value for '--seconds'"),
    (["--seconds", "inf"], "Invalid value for '--seconds'"),
    (["--seconds", "nan"], "Invalid value for '--seconds'"),
    (["--port", "0"], "Invalid value for '--port'"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_reflector_options_are_one_usage_error(argv: list[str], message: str) -> None:
    # a reflector that starts by mistake must not listen in this namespace, nor run unbounded
    guard = ["--netns", "tbrfl-does-not-exist"] + ([] if "--seconds" in argv else ["--seconds", "1"])
    res = CliRunner().invoke(cli, ["reflector", *guard, *argv])
    assert res.exit_code == 2 and message in res.output
    assert ("Traceback" not in res.output and res.exception is None) or isinstance(res.exception, SystemExit)


WIRE = [c for c in CASES if c.wire is not None]
COUNT_BUDGET_S = 20.0


@pytest.mark.lab
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_the_table_on_the_wire() -> None:
    """Every sendable case as a real packet (raw socket, spoofed where the case says) into ``bgpctl
    reflector`` in namespace a: its counters per reason match the table, and the wire shows exactly one
    datagram leaving a per good case (from port 862 back to x), none for the others."""
    expected: dict[str, int] = {}
    for c in WIRE:
        expected[c.expect] = expected.get(c.expect, 0) + 1
    good = expected.get(r.REFLECTED, 0)
    with topology() as topo:
        proc = topo.reflector("a", "--port", str(PORT), "--seconds", "120")
        senders = {"x": topo.raw_sender("x"), "a": topo.raw_sender("a")}
        try:
            before = topo.counters()["a_sent"]
            for c in WIRE:
                assert c.port == PORT and c.wire is not None
                pkt = IP(src=c.src, dst=c.dst) / UDP(sport=c.sport, dport=PORT) / c.payload
                senders[c.wire].sendto(bytes(pkt), (c.dst, 0))
            eventually(
                "the good probes answered on the wire",
                budget=COUNT_BUDGET_S,
                probe=topo.counters,
                check=lambda got: [] if got["a_sent"] - before >= good else [f"a sent {got['a_sent'] - before}"],
            )
        finally:
            for s in senders.values():
                s.close()
        counts, _ = stopped(proc)
        sent = topo.counters()["a_sent"] - before
    print(f"wire table: a sent {sent}; {counts}")
    assert sent == good
    assert counts[r.RECEIVED] == len(WIRE)
    assert {k: v for k, v in counts.items() if v and k != r.RECEIVED} == expected
