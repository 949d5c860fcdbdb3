"""Issue 16: before an evaluation the daemon reads every answer that has arrived, for every probe kind.

A stalled event loop must not make an answered probe look unanswered: ``poll()`` hands over what the
kernel already has (a datagram in the socket, a completed TCP connect) without the loop's callbacks.
Loopback only, no root.
"""

from __future__ import annotations

import asyncio
import socket
import time

from bgpctl.probe.protocol import ProbeResult, Problem
from bgpctl.probe.tcp import TcpConnectProbe


def test_tcp_poll_reports_a_completed_connect_without_the_event_loop() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    results: list[ProbeResult] = []
    bad: list[Problem] = []

    async def scenario() -> None:
        probe = TcpConnectProbe(source="127.0.0.1", target="127.0.0.1", port=port, timeout_s=1.0)
        probe.open(results.append, bad.append)
        try:
            sent = probe.send(0)
            time.sleep(0.05)  # the loop is stalled: its writer callback cannot run
            assert results == []
            probe.poll()  # the evaluation reads the evidence itself
            assert [r.seq for r in results] == [0]
            assert 0 <= results[0].received - sent < 0.05
            await asyncio.sleep(0.01)  # the loop's own callback finds nothing left to report
            assert len(results) == 1 and bad == []
        finally:
            probe.close()

    try:
        asyncio.run(scenario())
    finally:
        listener.close()


def test_tcp_poll_reports_a_refused_connect_as_such() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there: the kernel answers with RST
    results: list[ProbeResult] = []
    bad: list[Problem] = []

    async def scenario() -> None:
        probe = TcpConnectProbe(source="127.0.0.1", target="127.0.0.1", port=port, timeout_s=1.0)
        probe.open(results.append, bad.append)
        try:
            probe.send(0)
            time.sleep(0.05)
            probe.poll()
            assert results == [] and bad == [Problem.REFUSED]
        finally:
            probe.close()

    asyncio.run(scenario())
