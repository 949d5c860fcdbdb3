"""``bgpctl lab meter`` (the call-quality meter) and ``bgpctl lab responder`` (its echo responder)."""

from __future__ import annotations

import json
import signal
import threading
from types import FrameType

import click

from bgpctl import events
from bgpctl.cli.params import FiniteFloatRange
from bgpctl.errors import ProbeError
from bgpctl_lab.cli.lab import lab, lab_option
from bgpctl_lab.meter import DEFAULT_RATE_PPS, MAX_COUNT, MAX_DRAIN_S, MAX_FLOWS, MAX_RATE_PPS, MAX_SECONDS, run_meter
from bgpctl_lab.meter_report import MeterReport
from bgpctl_lab.responder import run_responder
from bgpctl_lab.runner import DEFAULT_NAME, Lab


def _netns_of(lab_name: str | None, node: str | None, netns: str | None) -> str | None:
    if netns is not None:
        if lab_name is not None or node is not None:
            raise ProbeError("give either --netns, or --from NODE (with --lab), not both")
        return netns
    if node is None:
        raise ProbeError("say where to send from: --from NODE (e.g. --from agents, in --lab NAME), or --netns NS")
    return Lab.attach(lab_name or DEFAULT_NAME).netns(node)


def summary_lines(r: MeterReport) -> list[str]:
    """The report for a terminal: what a call would have felt, then the detail."""
    s = r.settings
    lines = [
        f"meter {s.target}:{s.port} from {s.netns or '(this namespace)'}: {r.sent} sent, {r.received} received, "
        f"{r.lost} lost ({r.loss_pct:.2f} %), {r.duplicates} duplicates, {r.reordered} reordered",
        f"longest gap {r.longest_gap_ms:.1f} ms (at {r.longest_gap.start_s:.3f}-{r.longest_gap.end_s:.3f} s; "
        f"spacing {s.spacing_ms:g} ms, {s.flows} flows); worst flow's longest gap {r.longest_flow_gap_ms:.1f} ms",
    ]
    if r.rtt is not None:
        lines.append(
            f"rtt p50 {r.rtt.p50_ms:.2f} ms, p95 {r.rtt.p95_ms:.2f}, max {r.rtt.max_ms:.2f}, "
            f"mean {r.rtt.mean_ms:.2f}; jitter {r.jitter_ms or 0.0:.2f} ms; MOS "
            f"{'n/a' if r.mos is None else f'{r.mos:.2f}'}"
        )
    for name, seen in sorted(r.regions.items()):
        lines.append(f"region {name}: {seen.answered} answers, {seen.first_s:.3f}-{seen.last_s:.3f} s")
    lossy = [f"{x.second}s:{x.lost}/{x.sent}" for x in r.per_second_loss if x.lost]
    if lossy:
        lines.append("loss per second: " + " ".join(lossy))
    if r.send_errors:
        lines.append(f"{r.send_errors} sends failed (no route?)")
    if r.user_tx_stamps:
        lines.append(f"{r.user_tx_stamps} echoes timed from the user-space send time (no kernel transmit stamp)")
    return lines


@lab.command("meter")
@lab_option(default=None)
@click.option("--from", "node", metavar="NODE", help="Node to send from (e.g. agents).")
@click.option("--netns", metavar="NS", help="Send from this network namespace instead of a lab node.")
@click.option("--to", "target", required=True, metavar="ADDR", help="Connect endpoint (e.g. 203.0.113.10).")
@click.option("--port", type=click.IntRange(1, 65535), default=9000, show_default=True, help="Responder UDP port.")
@click.option(
    "--seconds",
    type=FiniteFloatRange(min=0, min_open=True, max=MAX_SECONDS),
    default=10.0,
    show_default=True,
    help="Stop after this long...",
)
@click.option(
    "--count", type=click.IntRange(1, MAX_COUNT), default=None, help="...or after this many packets, whichever first."
)
@click.option(
    "--rate",
    "rate_pps",
    type=FiniteFloatRange(min=1, max=MAX_RATE_PPS),
    default=DEFAULT_RATE_PPS,
    show_default=True,
    help="Packets per second.",
)
@click.option("--fine", is_flag=True, help="2 ms spacing (500 packets/s), to measure gaps finely.")
@click.option(
    "--flows",
    type=click.IntRange(1, MAX_FLOWS),
    default=4,
    show_default=True,
    help="Distinct source ports (ECMP shows as regions).",
)
@click.option("--dscp", type=click.IntRange(0, 63), default=46, show_default=True, help="DSCP of the probes (46 = EF).")
@click.option(
    "--drain",
    "drain_s",
    type=FiniteFloatRange(min=0, max=MAX_DRAIN_S),
    default=1.0,
    show_default=True,
    help="Seconds to wait for late echoes.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def meter(
    *,
    lab_name: str | None,
    node: str | None,
    netns: str | None,
    target: str,
    port: int,
    seconds: float,
    count: int | None,
    rate_pps: float,
    fine: bool,
    flows: int,
    dscp: int,
    drain_s: float,
    as_json: bool,
) -> None:
    """Send a bounded voice-like UDP stream to an echo responder; report loss, longest gap, RTT, MOS."""
    ns = _netns_of(lab_name, node, netns)
    report = run_meter(
        ns,
        target,
        port,
        rate_pps=rate_pps,
        fine=fine,
        flows=flows,
        seconds=seconds,
        count=count,
        dscp=dscp,
        drain_s=drain_s,
    )
    if as_json:
        click.echo(report.model_dump_json(indent=2))
    else:
        for line in summary_lines(report):
            click.echo(line)


@lab.command("responder")
@click.option("--region", required=True, help="Region name put in every echo (e.g. use1).")
@click.option("--port", default=9000, show_default=True)
@click.option(
    "--bind",
    "binds",
    multiple=True,
    default=("0.0.0.0",),
    show_default=True,
    help="Local address to listen on (repeat for several; :: for IPv6).",
)
@click.option("--seconds", default=3600.0, show_default=True, help="Stop by itself after this long.")
@click.option(
    "--hold-ms",
    default=0.0,
    show_default=True,
    help="Hold each echo this long (calibration: the meter must report it in the RTT).",
)
def responder(*, region: str, port: int, binds: tuple[str, ...], seconds: float, hold_ms: float) -> None:
    """Echo meter probes, in this network namespace, until --seconds pass or SIGTERM/SIGINT.

    Prints one JSON line when listening ({"event": events.RESPONDER_READY, ...}) and one summary line at the end.
    """
    stop = threading.Event()

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    def _ready() -> None:
        click.echo(json.dumps({"event": events.RESPONDER_READY, "region": region, "port": port, "binds": binds}))

    summary = run_responder(
        region, port=port, binds=binds, seconds=seconds, hold_ms=hold_ms, stop=stop, on_ready=_ready
    )
    click.echo(json.dumps({"event": events.RESPONDER_SUMMARY, **summary.model_dump()}))
