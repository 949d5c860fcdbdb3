"""Loop-DoS (CVE-2024-2169) and floods against ``bgpctl reflector``, with real packets in namespaces
(reflector_topo.py): x spoofs, a and b reflect.

* One spoofed datagram "from b's reflector" to a's: a refuses it at once when the source port is
  privileged (both on 862) or its own (both on 18620); on unprivileged ports of their own (18620,
  18621) the two answer each other until a token bucket runs dry: at most about one burst each.
* A flood of self-addressed datagrams (the one that used to wedge the reflector at 100 % CPU) does not
  keep it from exiting on ``--seconds`` or on SIGTERM within a bound.

Every traffic generator here is bounded in packets and seconds; the namespaces and processes are removed
also on failure.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest
from scapy.layers.inet import IP, UDP

from bgpctl.probe import reflector as r
from bgpctl.probe import stamp
from bgpctl_lab.poll import eventually
from tests.badinput.reflector_topo import A, B, Topo, X, stopped, topology

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

PROBE = stamp.encode_sender(stamp.SenderPacket(1, stamp.ntp_from_unix_ns(1_700_000_000_000_000_000)))
WIRE_BUDGET_S = 20.0
QUIET_S = 1.0  # the wire counters did not move for this long: the loop is over (it cannot restart)
RATE, BURST = 50, 100
LOOP_BOUND = 2 * BURST  # answers a sends in a loop with b: one burst, plus the rate over its short life
EXIT_MARGIN_S = 10.0  # --seconds S must end by S + this, also under a flood on a loaded machine
SIGTERM_BOUND_S = 5.0
FLOOD_PACKETS, FLOOD_SECONDS = 3_000_000, 12.0

FLOOD = """
import socket, sys, time
pkt, dst, limit, seconds = bytes.fromhex(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
end, sent = time.monotonic() + seconds, 0
print("flooding", flush=True)
while sent < limit and time.monotonic() < end:
    for _ in range(100):
        s.sendto(pkt, (dst, 0))
    sent += 100
print(sent, flush=True)
"""


def _spoof(topo: Topo, src: str, sport: int, dst: str, dport: int) -> None:
    raw = topo.raw_sender("x")
    try:
        raw.sendto(bytes(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / PROBE), (dst, 0))
    finally:
        raw.close()


def _quiet(topo: Topo) -> dict[str, int]:
    """The wire counters once they stopped moving for QUIET_S (polled, within WIRE_BUDGET_S)."""
    last: list[dict[str, int]] = []

    def check(now: dict[str, int]) -> list[str]:
        moved = not last or last[-1] != now
        last.append(now)
        return [f"still moving: {now}"] if moved else []

    return eventually(
        "the wire is quiet", budget=WIRE_BUDGET_S, probe=topo.counters, check=check, interval_s=QUIET_S
    ).value


@pytest.mark.parametrize(
    ("port", "reason"),
    [(862, r.REFUSED_PRIVILEGED_PORT), (18620, r.REFUSED_SERVICE_PORT)],
    ids=["both on 862", "both on 18620"],
)
def test_two_reflectors_on_one_port_never_answer_a_spoofed_datagram(port: int, reason: str) -> None:
    with topology() as topo:
        a = topo.reflector("a", "--port", str(port), "--seconds", "120")
        b = topo.reflector("b", "--port", str(port), "--seconds", "120")
        _spoof(topo, B, port, A, port)  # "from b's reflector" to a's
        _spoof(topo, X, 40000, A, port)  # then a good probe: answered once the spoofed one was handled
        eventually(
            "a answered the good probe",
            budget=WIRE_BUDGET_S,
            probe=topo.counters,
            check=lambda c: [] if c["a_sent"] >= 1 else ["a sent nothing yet"],
        )
        wire = _quiet(topo)
        a_counts, _ = stopped(a)
        b_counts, _ = stopped(b)
    assert wire["a_sent"] == 1  # the answer to the good probe, nothing to b
    assert wire["from_b"] == 1  # the spoofed datagram itself; b never sent anything
    assert a_counts[r.RECEIVED] == 2 and a_counts[r.REFLECTED] == 1 and a_counts[reason] == 1
    assert b_counts[r.RECEIVED] == 0 and b_counts[r.REFLECTED] == 0


def test_reflectors_on_ports_of_their_own_stop_answering_each_other_within_a_burst() -> None:
    """No port rule can tell a third-party reflector on an unprivileged port: the per-source token
    bucket ends the loop. The loop cannot restart (one datagram in flight, dropped)."""
    limits = ["--rate", str(RATE), "--burst", str(BURST), "--seconds", "120"]
    with topology() as topo:
        a = topo.reflector("a", "--port", "18620", *limits)
        b = topo.reflector("b", "--port", "18621", *limits)
        _spoof(topo, B, 18621, A, 18620)
        eventually(
            "the loop started",
            budget=WIRE_BUDGET_S,
            probe=topo.counters,
            check=lambda c: [] if c["a_sent"] >= 1 else ["a sent nothing yet"],
        )
        wire = _quiet(topo)
        a_counts, _ = stopped(a)
        b_counts, _ = stopped(b)
    print(f"loop: a sent {wire['a_sent']}, received {wire['from_b']} from b; a {a_counts}; b {b_counts}")
    assert 1 <= wire["a_sent"] <= LOOP_BOUND and wire["from_b"] <= LOOP_BOUND + 1
    assert a_counts[r.REFLECTED] == wire["a_sent"]
    assert a_counts[r.RATE_LIMITED] + b_counts[r.RATE_LIMITED] == 1  # the drop that ended it
    assert b_counts[r.REFLECTED] <= LOOP_BOUND


def _flood(topo: Topo, sport: int) -> subprocess.Popen[str]:
    pkt = bytes(IP(src=A, dst=A) / UDP(sport=sport, dport=862) / PROBE).hex()
    proc = topo.spawn("a", sys.executable, "-c", FLOOD, pkt, A, str(FLOOD_PACKETS), str(FLOOD_SECONDS))
    assert proc.stdout is not None
    readable, _, _ = select.select([proc.stdout], [], [], WIRE_BUDGET_S)
    assert readable and proc.stdout.readline().strip() == "flooding"
    eventually(
        "the flood reaches port 862",
        budget=WIRE_BUDGET_S,
        probe=topo.counters,
        check=lambda c: [] if c["stamp_in"] >= 10_000 else [f"{c['stamp_in']} datagrams so far"],
    )
    return proc


def _refused(counts: dict[str, int]) -> int:
    return sum(v for k, v in counts.items() if k.startswith("refused_"))


@pytest.mark.parametrize("sport", [862, 40000], ids=["from its own port", "from a high port"])
def test_a_self_addressed_flood_does_not_keep_the_reflector_from_exiting_on_seconds(sport: int) -> None:
    seconds = 3.0
    with topology() as topo:
        started = time.monotonic()
        refl = topo.reflector("a", "--seconds", str(seconds))
        flood = _flood(topo, sport)
        counts, _ = stopped(refl, sig=None)
        took = time.monotonic() - started
        flood.kill()
    print(f"--seconds {seconds} under a flood: exited after {took:.2f} s; {counts}")
    assert took <= seconds + EXIT_MARGIN_S
    assert counts[r.REFLECTED] == 0 and counts[r.RECEIVED] >= 1000
    assert _refused(counts) == counts[r.RECEIVED]


@pytest.mark.parametrize("sport", [862, 40000], ids=["from its own port", "from a high port"])
def test_a_self_addressed_flood_does_not_keep_the_reflector_from_exiting_on_sigterm(sport: int) -> None:
    with topology() as topo:
        refl = topo.reflector("a", "--seconds", "120")
        flood = _flood(topo, sport)
        counts, took = stopped(refl, sig=signal.SIGTERM)
        flood.kill()
    print(f"SIGTERM under a flood: exited after {took:.2f} s; {counts}")
    assert took <= SIGTERM_BOUND_S
    assert counts[r.REFLECTED] == 0 and counts[r.RECEIVED] >= 1000
    assert _refused(counts) == counts[r.RECEIVED]
