"""Hand-made meter streams and their reports (no network): the meter report's tests and the drill series' tests."""

from __future__ import annotations

from bgpctl_lab.meter_report import (
    EchoPacket,
    MeterReport,
    MeterSettings,
    SentPacket,
    build_report,
)

MS = 1_000_000


T0 = 1_700_000_000 * 1_000_000_000


S = 2 * MS  # spacing


def synthetic_settings(flows: int = 1, n: int = 100) -> MeterSettings:
    return MeterSettings(
        netns=None,
        target="203.0.113.10",
        port=9000,
        flows=flows,
        spacing_ms=S / MS,
        rate_pps=1e9 / S,
        fine=True,
        dscp=46,
        seconds=n * S / 1e9,
        count=n,
        drain_s=1.0,
    )


def synthetic_stream(
    n: int,
    *,
    flows: int = 1,
    lost: frozenset[int] | set[int] = frozenset(),
    rtt: int = MS,
    late: dict[int, int] | None = None,
    server: dict[int, int] | None = None,
    held: dict[int, int] | None = None,
    unstamped: frozenset[int] | set[int] = frozenset(),
    region: str = "use1",
) -> tuple[list[SentPacket], list[EchoPacket]]:
    """``late``: the sender read its clock that long after the schedule; ``held``: the packet left that long
    after the clock read (kernel transmit stamp); ``unstamped``: no transmit stamp came for these."""
    late = late or {}
    server = server or {}
    held = held or {}

    def tx(i: int) -> int:
        return T0 + i * S + late.get(i, 0) + held.get(i, 0)

    sent = [
        SentPacket(
            seq=i,
            flow=i % flows,
            send_ns=T0 + i * S + late.get(i, 0),
            late_ns=late.get(i, 0),
            tx_ns=None if i in unstamped else tx(i),
        )
        for i in range(n)
    ]
    echoes = [
        EchoPacket(
            seq=p.seq,
            flow=p.flow,
            rx_ns=tx(p.seq) + rtt + server.get(p.seq, 0),
            region=region,
            server_ns=server.get(p.seq, 0),
        )
        for p in sent
        if p.seq not in lost
    ]
    echoes.sort(key=lambda e: e.rx_ns)
    return sent, echoes


def synthetic_report(n: int, flows: int = 1, **kw: object) -> MeterReport:
    sent, echoes = synthetic_stream(n, flows=flows, **kw)  # type: ignore[arg-type]
    return build_report(synthetic_settings(flows, n), sent, echoes)
