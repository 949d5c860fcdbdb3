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


def _stalled_connect(port: int) -> tuple[float, list[ProbeResult], list[Problem], list[ProbeResult]]:
    """Send probe 0, stall the loop 50 ms, poll; return (sent, results after the poll, problems,
    results once the loop ran again)."""
    results: list[ProbeResult] = []
    bad: list[Problem] = []
    out: dict[str, object] = {}

    async def scenario() -> None:
        probe = TcpConnectProbe(source="127.0.0.1", target="127.0.0.1", port=port, timeout_s=1.0)
        probe.open(results.append, bad.append)
        try:
            out["sent"] = probe.send(0)
            time.sleep(0.05)  # the loop is stalled: its writer callback cannot run
            assert results == [] and bad == []
            probe.poll()  # the evaluation reads the evidence itself
            out["polled"] = list(results)
            await asyncio.sleep(0.01)  # the loop's own callback must find nothing left to report
        finally:
            probe.close()

    asyncio.run(scenario())
    sent = out["sent"]
    polled = out["polled"]
    assert isinstance(sent, float) and isinstance(polled, list)
    return sent, polled, bad, results


def test_tcp_poll_reports_a_completed_connect_without_the_event_loop() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        sent, polled, bad, final = _stalled_connect(listener.getsockname()[1])
    finally:
        listener.close()
    assert [r.seq for r in polled] == [0] and 0 <= polled[0].received - sent < 0.05
    assert final == polled and bad == []


def test_tcp_poll_reports_a_refused_connect_as_such() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there: the kernel answers with RST
    _sent, polled, bad, final = _stalled_connect(port)
    assert polled == [] and final == [] and bad == [Problem.REFUSED]
