"""``bgpctl probe PATH|--all`` (mtr-like per-path report) and ``bgpctl reflector`` (STAMP responder)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import signal
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict

import click

from bgpctl import events
from bgpctl.cli.params import FiniteFloatRange
from bgpctl.core.types import PathKey, Sample
from bgpctl.policy.load import load_policy
from bgpctl.probe.paths import run_specs, select, specs_from_policy
from bgpctl.probe.pinning import Pinning, pins_from_policy
from bgpctl.probe.recorder import Recorder
from bgpctl.probe.reflector import DEFAULT_BURST, DEFAULT_RATE, Reflector
from bgpctl.probe.stamp import DEFAULT_PORT
from bgpctl.probe.summary import PathSummary, render, summarize


@contextlib.contextmanager
def _pinned(enabled: bool, pins: Pinning) -> Iterator[None]:
    if not enabled:
        yield
        return
    pins.install()
    try:
        yield
    finally:
        pins.remove()


@click.command("probe")
@click.argument("paths", nargs=-1, metavar="PATH...")
@click.option("--all", "all_paths", is_flag=True, help="probe every path of every service in the policy")
@click.option(
    "--policy",
    "-p",
    "policy_file",
    envvar="BGPCTL_POLICY",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="policy file (default: $BGPCTL_POLICY)",
)
@click.option("--count", "-c", type=click.IntRange(1, 1_000_000), default=10, show_default=True, help="probes per path")
@click.option("--record", type=click.Path(dir_okay=False), help="append the samples to this JSONL file")
@click.option(
    "--pin/--no-pin",
    default=True,
    show_default=True,
    help="install the paths' policy routing for the run (what it adds, it removes at exit)",
)
@click.option("--netns", default=None, help="run the probes inside this network namespace")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object per path instead of the table")
def probe(
    *,
    paths: tuple[str, ...],
    all_paths: bool,
    policy_file: str,
    count: int,
    record: str | None,
    pin: bool,
    netns: str | None,
    as_json: bool,
) -> None:
    """Probe paths the way the daemon does and print per-path stats like mtr.

    PATH is region/path (every service probed over it), service/region/path, a region or a service.
    """
    if bool(paths) == all_paths:
        raise click.UsageError("name at least one PATH, or give --all (not both)")
    policy = load_policy(policy_file)
    specs = select(specs_from_policy(policy), paths)
    labels = {"/".join(filter(None, (s.key.region, s.key.path, s.key.family))) for s in specs}  # pins' labels
    pinning = Pinning([p for p in pins_from_policy(policy) if p.label in labels], netns=netns)
    samples: dict[PathKey, list[Sample]] = defaultdict(list)

    def sink(key: PathKey, sample: Sample) -> None:
        samples[key].append(sample)
        if recorder is not None:
            recorder(key, sample)

    recorder: Recorder | None = None
    with contextlib.ExitStack() as stack:
        if record is not None:
            recorder = stack.enter_context(Recorder(record))
        stack.enter_context(_pinned(pin, pinning))
        counters = asyncio.run(run_specs(specs, sink, count=count, netns=netns))
    rows = [summarize(s.key, s.protocol.value, samples[s.key], counters[s.key]) for s in specs]
    if as_json:
        for r in rows:
            click.echo(json.dumps(_row_json(r)))
    else:
        click.echo(render(rows))
    if all(r.sent and r.lost == r.sent for r in rows):
        sys.exit(1)  # nothing answered at all: say so in the exit code too


def _row_json(r: PathSummary) -> dict[str, object]:
    out = {k: v for k, v in asdict(r).items() if k not in ("key", "stats")}
    out.update(
        service=r.key.service,
        region=r.key.region,
        path=r.key.path,
        loss_pct=r.loss_pct,
        rtt_p50_ms=r.stats.rtt_p50_ms,
        rtt_p95_ms=r.stats.rtt_p95_ms,
        jitter_ms=r.stats.jitter_ms,
        mos=r.stats.mos,
    )
    return out


def _listen_address(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an IP address: give one of this host's addresses, or 0.0.0.0 / :: for all"
        ) from None


@click.command("reflector")
@click.option(
    "--listen",
    default="0.0.0.0",
    show_default=True,
    callback=_listen_address,
    help="address to listen on (0.0.0.0 / :: answers for every local address)",
)
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True, help="STAMP UDP port")
@click.option(
    "--tcp-port",
    "tcp_ports",
    type=click.IntRange(1, 65535),
    multiple=True,
    help="also accept-and-close TCP connections on this port (targets for tcp probes); repeatable",
)
@click.option(
    "--seconds",
    type=FiniteFloatRange(min=0, min_open=True, max=1e9),
    default=None,
    help="stop after this long (default: until SIGTERM or SIGINT)",
)
@click.option("--netns", default=None, help="listen inside this network namespace")
@click.option(
    "--rate",
    type=FiniteFloatRange(min=0, min_open=True, max=1e6),
    default=DEFAULT_RATE,
    show_default=True,
    help="answers per second per source address (token bucket); more are counted as rate_limited",
)
@click.option(
    "--burst",
    type=click.IntRange(1, 1_000_000),
    default=DEFAULT_BURST,
    show_default=True,
    help="answers a source address may get at once before --rate applies",
)
@click.option(
    "--allow-local/--refuse-local",
    default=None,
    help="answer datagrams from this host's own addresses (default: only when --listen is a loopback address)",
)
def reflector(
    *,
    listen: str,
    port: int,
    tcp_ports: tuple[int, ...],
    seconds: float | None,
    netns: str | None,
    rate: float,
    burst: int,
    allow_local: bool | None,
) -> None:
    """Answer STAMP (RFC 8762) / TWAMP-light probes, as the lab's Connect hosts do.

    Refuses (and counts) datagrams from privileged or reflecting-service source ports, from its own
    port and from this host's own addresses, and rate-limits each source (docs/cli.md). Prints one JSON
    line when listening ({"event": "reflector.ready", ...}) and one with every counter when it stops
    ({"event": "reflector.stopped", "received": ..., "reflected": ..., "refused_...": ...}).
    """
    refl = Reflector(listen, port, tcp_ports=tcp_ports, netns=netns, rate=rate, burst=burst, allow_local=allow_local)
    counts = asyncio.run(_serve(refl, seconds))
    click.echo(json.dumps({"event": events.REFLECTOR_STOPPED, **counts}))


async def _serve(refl: Reflector, seconds: float | None) -> dict[str, int]:
    await refl.start()
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    click.echo(
        json.dumps(
            {
                "event": events.REFLECTOR_READY,
                "listen": refl.listen,
                "port": refl.udp_port,
                "tcp_ports": list(refl.tcp_ports),
                "rate": refl.buckets.rate,
                "burst": refl.buckets.burst,
                "batch": refl.batch,
                "allow_local": refl.allow_local,
            }
        )
    )
    try:
        if seconds is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        pass
    finally:
        refl.close()
    return refl.report()


COMMANDS: list[click.Command] = [probe, reflector]
