"""``bgpctl demo``: the main job in one command — lab up with the controller, a failover drill, the report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bgpctl import events
from bgpctl.errors import BgpctlError
from bgpctl_lab.cli.lab import TOPOLOGY_OPTION
from bgpctl_lab.topology import drills_dir, find_topology

DEMO_LAB = "demo"


def _decisions(log_file: Path, since_unix: float) -> list[str]:
    """The daemon's health and route events since the drill started, one readable line each."""
    from datetime import datetime  # noqa: PLC0415

    out: list[str] = []
    if not log_file.exists():
        return out
    for line in log_file.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
            at = datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError):
            continue
        if at < since_unix:
            continue
        t = f"+{at - since_unix:7.3f}s"
        if ev.get("event") == events.PATH_HEALTH:
            out.append(f"{t} {ev['path']}: {ev['old']} -> {ev['new']} ({'; '.join(ev.get('reasons', [])[:2])})")
        elif ev.get("event") == events.ROUTE_CHANGE:
            attrs = "" if ev["kind"] == "withdraw" else f" med {ev.get('med')} as-path {ev.get('as_path')}"
            out.append(f"{t}   {ev['kind']} {ev['prefix']} (path {ev['path_id']}) to {ev['peer']}{attrs}")
        elif ev.get("event") == events.PLAN_NOTE:
            out.append(f"{t}   note: {ev['note']}")
    return out


@click.command("demo")
@click.option(
    "--drill",
    "drill_name",
    default="region-blackhole",
    show_default=True,
    help="Drill from lab/drills/ (next to the topology file) to run.",
)
@TOPOLOGY_OPTION
@click.option("--keep", is_flag=True, help="Leave the lab running afterwards (bgpctl lab down --lab demo).")
def demo(drill_name: str, topology: Path | None, keep: bool) -> None:
    """Bring up the reference lab with bgpctl on cr, run a failover drill, print what happened."""
    from bgpctl_lab import runner  # noqa: PLC0415
    from bgpctl_lab.drill import run_drill, summary  # noqa: PLC0415
    from bgpctl_lab.drill_model import load_drill  # noqa: PLC0415

    topology_file = find_topology(topology)
    drill = load_drill(drill_name, drills_dir(topology_file))
    click.echo(f"== bringing up lab '{DEMO_LAB}' from {topology_file} with the bgpctl daemon on cr", err=True)
    lab = runner.up(topology_file, DEMO_LAB, "controller")
    try:
        click.echo(f"== running drill {drill.name}: {drill.description}", err=True)
        report = run_drill(lab, drill, out_dir=lab.run_dir / "drills", progress=lambda m: click.echo(m, err=True))
        click.echo(summary(report))
        click.echo("\nwhat bgpctl decided (daemon log, times since the drill started):")
        for line in _decisions(lab.node_dir("cr") / "daemon.log", report.started_unix):
            click.echo(f"  {line}")
        click.echo(f"\nfull report: {lab.run_dir / 'drills'}/ ; daemon log: {lab.node_dir('cr') / 'daemon.log'}")
        if not report.passed:
            raise BgpctlError(f"drill {drill.name} did not pass: {'; '.join(report.violations)}")
    finally:
        if keep:
            click.echo(f"lab '{DEMO_LAB}' left running: bgpctl lab down --lab {DEMO_LAB}", err=True)
        else:
            runner.down(DEMO_LAB)
