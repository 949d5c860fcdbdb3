"""``bgpctl lab drill NAME``: run a failover drill from lab/drills/ and write its JSON report."""

from __future__ import annotations

from pathlib import Path

import click

from bgpctl.cli.lab import NAME_OPTION, lab
from bgpctl.lab.drill_model import DrillError, drills_dir, load_drill


@lab.command("drill")
@click.argument("drill_name", metavar="NAME")
@NAME_OPTION
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Directory for the JSON report (default: the lab's run directory).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON instead of a summary.")
def drill_cmd(drill_name: str, name: str, out_dir: Path | None, as_json: bool) -> None:
    """Run drill NAME (a file in lab/drills/, or a path) against the running lab.

    Exits 0 when every expectation held and the call meter stayed within the drill's bounds for
    the lab's mode, 1 otherwise.
    """
    from bgpctl.lab.drill import run_drill, summary, to_json  # noqa: PLC0415 (heavy: only when a drill runs)
    from bgpctl.lab.runner import Lab  # noqa: PLC0415

    drill = load_drill(drill_name)
    the_lab = Lab.attach(name)
    out = out_dir or the_lab.run_dir / "drills"
    report = run_drill(the_lab, drill, out_dir=out, progress=lambda m: click.echo(m, err=True))
    click.echo(to_json(report) if as_json else summary(report))
    click.echo(f"report written to {out}/", err=True)
    if not report.passed:
        raise click.exceptions.Exit(1)


@lab.command("drills")
def drills_cmd() -> None:
    """List the drills in lab/drills/."""
    for path in sorted(drills_dir().glob("*.yaml")):
        try:
            d = load_drill(str(path))
        except DrillError as e:
            click.echo(f"{path.stem}: INVALID: {e}")
            continue
        click.echo(f"{d.name}: {d.description}")
