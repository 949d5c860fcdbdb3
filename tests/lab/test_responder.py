"""The echo responder as the lab runs it (``python -m bgpctl lab responder``), probed from another namespace."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgpctl.errors import ProbeError
from bgpctl_lab.meter_packet import PACKET_SIZE, Kind, MeterPacket, decode, encode
from bgpctl_lab.meter_socket import sender_sockets
from bgpctl_lab.pytest_plugin import TopologyLab
from bgpctl_lab.responder import run_responder
from tests.lab.meter_support import ENDPOINT, NEEDS_ROOT, Net, topology

pytestmark = [pytest.mark.lab, NEEDS_ROOT]

ANSWER_BUDGET_S = 2.0


@pytest.fixture
def pair(topology_lab: TopologyLab) -> Iterator[Net]:
    with topology(topology_lab, "pair") as net:
        yield net


def _answers(s: socket.socket, budget_s: float) -> list[tuple[bytes, tuple[str, int]]]:
    """Every datagram that arrives on ``s`` within ``budget_s``."""
    got: list[tuple[bytes, tuple[str, int]]] = []
    end = time.monotonic() + budget_s
    while (left := end - time.monotonic()) > 0:
        if select.select([s], [], [], left)[0]:
            data, peer = s.recvfrom(4096)
            got.append((data, peer))
    return got


def _probe(seq: int, **kw: int) -> bytes:
    return encode(MeterPacket(Kind.PROBE, flow=kw.get("flow", 0), nonce=77, seq=seq, send_ns=time.time_ns()))


def test_answers_only_meter_probes_same_size_from_the_dialed_address(pair: Net) -> None:
    r = pair.responder("r1", "use1")
    (s,) = sender_sockets(pair.node("snd"), ENDPOINT, 1, 46)
    try:
        good = _probe(1)
        foreign = [
            b"hello",
            bytes(PACKET_SIZE),
            good[:-1],
            good[:12] + b"XXXX" + good[16:],
            encode(MeterPacket(Kind.ECHO, 0, 77, 9, 0, region="evil")),
        ]
        for data in [*foreign, good]:
            s.sendto(data, (ENDPOINT, 9000))
        got = _answers(s, ANSWER_BUDGET_S)
    finally:
        s.close()
    assert len(got) == 1
    data, peer = got[0]
    assert peer == (ENDPOINT, 9000)  # from the anycast address on lo, not from the link address
    assert len(data) == PACKET_SIZE
    echo = decode(data)
    assert echo is not None and echo.kind == Kind.ECHO and echo.region == "use1"
    assert (echo.seq, echo.nonce) == (1, 77)
    assert 0 < echo.echo_rx_ns <= echo.echo_tx_ns
    summary = r.stop()
    assert (summary["answered"], summary["ignored"]) == (1, len(foreign))
    assert summary["first_rx_unix_ns"] == summary["last_rx_unix_ns"] == echo.echo_rx_ns


def test_ends_by_itself_at_the_end_of_its_lifetime(pair: Net) -> None:
    r = pair.responder("r1", "use1", "--seconds", "1")
    began = time.monotonic()
    summary = r.wait_exit(budget_s=5.0)
    assert time.monotonic() - began < 2.0
    assert summary["answered"] == 0 and 0.9 <= summary["ran_s"] <= 1.5


def test_sigterm_ends_it_with_a_summary(pair: Net) -> None:
    r = pair.responder("r1", "use1")
    (s,) = sender_sockets(pair.node("snd"), ENDPOINT, 1, 46)
    try:
        for i in range(5):
            s.sendto(_probe(i), (ENDPOINT, 9000))
        got = _answers(s, ANSWER_BUDGET_S)
    finally:
        s.close()
    assert len(got) == 5
    r.proc.send_signal(signal.SIGTERM)
    summary = r.wait_exit()
    assert summary["answered"] == 5 and summary["region"] == "use1"


def test_hold_delays_each_echo(pair: Net) -> None:
    pair.responder("r1", "use1", "--hold-ms", "30")
    (s,) = sender_sockets(pair.node("snd"), ENDPOINT, 1, 46)
    try:
        t = time.monotonic()
        s.sendto(_probe(1), (ENDPOINT, 9000))
        got = _answers(s, 0.5)
        waited = time.monotonic() - t
    finally:
        s.close()
    assert len(got) == 1
    echo = decode(got[0][0])
    assert echo is not None and 29.5e6 <= echo.echo_tx_ns - echo.echo_rx_ns <= 31e6
    assert waited >= 0.03


def test_in_process_with_a_stop_event(pair: Net) -> None:
    stop = threading.Event()
    ready = threading.Event()
    out: list[object] = []
    t = threading.Thread(
        target=lambda: out.append(
            run_responder("usw2", port=9100, netns=pair.node("r1"), stop=stop, on_ready=ready.set)
        )
    )
    t.start()
    try:
        assert ready.wait(5.0)
        (s,) = sender_sockets(pair.node("snd"), ENDPOINT, 1, 0)
        try:
            s.sendto(_probe(3), (ENDPOINT, 9100))
            got = _answers(s, ANSWER_BUDGET_S)
        finally:
            s.close()
    finally:
        stop.set()
        t.join(5.0)
    assert not t.is_alive()
    assert len(got) == 1
    echo = decode(got[0][0])
    assert echo is not None and echo.region == "usw2"
    assert getattr(out[0], "answered", None) == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--region", "us east"], "region 'us east'"),
        (["--region", "use1", "--seconds", "0"], "bounded"),
        (["--region", "use1", "--hold-ms", "-1"], "hold_ms"),
    ],
)
def test_bad_arguments_say_what_to_do(args: list[str], needle: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bgpctl", "lab", "responder", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert res.returncode == 1 and needle in res.stderr


def test_a_missing_namespace_is_named_and_not_created() -> None:
    missing = "tbmet_missing_ns"
    with pytest.raises(ProbeError, match=r"tbmet_missing_ns.*does not exist"):
        run_responder("use1", netns=missing, seconds=1)
    with pytest.raises(ProbeError, match="does not exist"):
        sender_sockets(missing, ENDPOINT, 1, 46)
    assert not (Path("/run/netns") / missing).exists()
