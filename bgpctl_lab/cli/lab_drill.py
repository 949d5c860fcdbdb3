"""``bgpctl lab drill NAME``: run a failover drill from lab/drills/ (next to the topology file) and write
its JSON report; ``bgpctl lab drills`` lists them."""

from __future__ import annotations

from pathlib import Path

import click

from bgpctl.cli.params import plot_option
from bgpctl_lab.cli.lab import LAB_OPTION, TOPOLOGY_OPTION, lab
from bgpctl_lab.drill_model import DrillError, load_drill
from bgpctl_lab.topology import drills_dir, find_topology


@lab.command("drill")
@click.argument("drill_name", metavar="NAME")
@LAB_OPTION
@TOPOLOGY_OPTION
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory for the JSON report (default: the lab's run directory).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON instead of a summary.")
@plot_option(
    "the report: per path RTT, loss and health, the edge's route changes, the call meter's silences, "
    "the fault and restore"
)
def drill_cmd(
    *,
    drill_name: str,
    lab_name: str,
    topology: Path | None,
    out_dir: Path | None,
    as_json: bool,
    plot_file: Path | None,
) -> None:
    """Run drill NAME (a file in lab/drills/ next to the topology, or a path) against the running lab.

    Without --topology, the drills are those of the topology the lab was brought up from.

    Exits 0 when every expectation held and the call meter stayed within the drill's bounds for
    the lab's mode, 1 otherwise.
    """
    from bgpctl_lab.drill import run_drill, summary, to_json  # noqa: PLC0415 (heavy: only when a drill runs)
    from bgpctl_lab.runner import Lab  # noqa: PLC0415

    path = Path(drill_name)
    if path.suffix and path.exists():  # a drill file: no lab needed to check it
        drill = load_drill(drill_name, path.parent)
        the_lab = Lab.attach(lab_name)
    else:
        the_lab = Lab.attach(lab_name)
        drill = load_drill(drill_name, drills_dir(find_topology(topology) if topology else the_lab.topology_file))
    out = out_dir or the_lab.run_dir / "drills"
    report = run_drill(the_lab, drill, out_dir=out, progress=lambda m: click.echo(m, err=True))
    click.echo(to_json(report) if as_json else summary(report))
    click.echo(f"report written to {out}/", err=True)
    if plot_file is not None:
        from bgpctl.render_plot import save_png  # noqa: PLC0415
        from bgpctl_lab.plot import drill_figure  # noqa: PLC0415

        save_png(drill_figure(report.model_dump(mode="json")), plot_file)
        click.echo(f"picture written to {plot_file}", err=True)
    if not report.passed:
        raise click.exceptions.Exit(1)


@lab.command("drills")
@TOPOLOGY_OPTION
def drills_cmd(topology: Path | None) -> None:
    """List the drills in lab/drills/ next to the topology file."""
    drills = drills_dir(find_topology(topology))
    for path in sorted(drills.glob("*.yaml")):
        try:
            d = load_drill(str(path), drills)
        except DrillError as e:
            click.echo(f"{path.stem}: INVALID: {e}")
            continue
        click.echo(f"{d.name}: {d.description}")
