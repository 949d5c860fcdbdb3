"""``bgpctl lab up|down|status|exec|vtysh``: the reference lab on network namespaces.

Other modules attach their own sub-commands to the ``lab`` group (``lab fault``, ``lab meter`` ...).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bgpctl.cli.params import FiniteFloatRange
from bgpctl.errors import LabError
from bgpctl_lab import frr
from bgpctl_lab.runner import DEFAULT_MODE, DEFAULT_NAME, UP_BUDGET_S, Lab, down, up
from bgpctl_lab.state import check_name
from bgpctl_lab.topology import EDGE_VARIANTS, TOPOLOGY_ENV, edge_topology, find_topology

FC = TypeVar("FC", bound=Callable[..., Any])
NAME_ENV = "BGPCTL_LAB_NAME"


def _check_lab_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A bad name (from --lab or $BGPCTL_LAB_NAME) is a usage error, before anything runs."""
    if value is None:
        return None
    try:
        return check_name(value)
    except LabError as e:
        raise click.BadParameter(str(e), ctx, param) from None


def lab_option(default: str | None = DEFAULT_NAME) -> Callable[[FC], FC]:
    """``--lab NAME`` (or $BGPCTL_LAB_NAME): the one way every lab command names its lab."""
    return click.option(
        "--lab",
        "lab_name",
        metavar="NAME",
        default=default,
        show_default=default is not None,
        envvar=NAME_ENV,
        callback=_check_lab_name,
        help="Lab name: namespaces are <lab>-<node>; labs with different names coexist.",
    )


LAB_OPTION = lab_option()
TOPOLOGY_OPTION = click.option(
    "--topology",
    "-t",
    "topology",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    envvar=TOPOLOGY_ENV,
    help="containerlab topology file (default: ./containerlab.yml); node configs, "
    "services and drills are found in lab/ next to it.",
)


@click.group()
def lab() -> None:
    """Run the reference lab (containerlab.yml) on network namespaces."""


@lab.command("up")
@TOPOLOGY_OPTION
@LAB_OPTION
@click.option(
    "--mode",
    type=click.Choice(list(frr.MODES)),
    default=DEFAULT_MODE,
    show_default=True,
    help="no-controller: the TGWs announce the Connect prefixes to the edge themselves; "
    "controller: edge<->TGW sessions shut, bgpctl on cr announces; "
    "no-controller-bfd: no-controller plus BFD 300 ms x 3 on the edge<->TGW sessions.",
)
@click.option(
    "--edge",
    type=click.Choice(list(EDGE_VARIANTS)),
    default=None,
    help="Which router the edge runs: frr (containerlab.yml), bird (BIRD 2, ADD-PATH receive on: "
    "containerlab-bird.yml) or bird-no-addpath (BIRD 2, ADD-PATH off); the file is taken next to "
    "--topology. Default: the topology as given.",
)
@click.option(
    "--budget",
    type=FiniteFloatRange(min=0, min_open=True, max=3600),
    default=UP_BUDGET_S,
    show_default=True,
    help="Seconds allowed for every FRR<->FRR session to reach Established.",
)
def up_cmd(topology: Path | None, lab_name: str, mode: str, edge: str | None, budget: float) -> None:
    """Bring the lab up (idempotent: a running lab is repaired and switched to --mode)."""
    t0 = time.monotonic()
    name = lab_name
    topo = find_topology(topology)
    if edge is not None:
        topo = edge_topology(topo, edge)
    the_lab = up(topo, name, mode, budget=budget)
    took = time.monotonic() - t0
    sessions = the_lab.established() if frr.frr_only(mode) else {}
    n = sum(len(p) for p in sessions.values())
    click.echo(
        f"lab {name} up in {took:.1f} s (mode {mode}): {len(the_lab.nodes())} nodes, "
        f"{n} FRR sessions Established; run dir {the_lab.run_dir}"
    )


@lab.command("down")
@LAB_OPTION
def down_cmd(lab_name: str) -> None:
    """Remove every namespace, process, link and run directory of the lab (also after a crash)."""
    name = lab_name
    t0 = time.monotonic()
    if down(name):
        click.echo(f"lab {name} down in {time.monotonic() - t0:.1f} s")
    else:
        click.echo(f"lab {name} was not up")


def _status(the_lab: Lab) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    for node in the_lab.nodes():
        info: dict[str, Any] = {"netns": the_lab.netns(node)}
        if node in the_lab.frr_nodes():
            info["frr"] = "running" if the_lab.frr_alive(node) else "stopped"
            if node not in the_lab.bgpd_nodes():
                nodes[node] = info  # FRR without bgpd (the HA lab's bfdd on a controller host)
                continue
            try:
                info["bgp"] = the_lab.sessions(node)
            except LabError as e:
                info["bgp"] = {"error": str(e)}
        elif node in the_lab.bird_nodes():
            info["bird"] = "running" if the_lab.bird_alive(node) else "stopped"
            try:
                info["bgp"] = the_lab.sessions(node)
            except LabError as e:
                info["bgp"] = {"error": str(e)}
        nodes[node] = info
    spawned = [
        {"pid": p.pid, "node": p.node, "tag": p.tag, "argv": p.argv, "log": p.log, "alive": the_lab.spawned_alive(p)}
        for p in the_lab.spawned()
    ]
    return {
        "name": the_lab.name,
        "mode": the_lab.mode,
        "edge": the_lab.edge_variant(),
        "topology": str(the_lab.topology_file),
        "run_dir": str(the_lab.run_dir),
        "nodes": nodes,
        "spawned": spawned,
    }


@lab.command("status")
@LAB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status_cmd(lab_name: str, as_json: bool) -> None:
    """Nodes, FRR daemons, BGP session states and spawned helper processes."""
    st = _status(Lab.attach(lab_name))
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    click.echo(f"lab {st['name']} (mode {st['mode']}) from {st['topology']}; run dir {st['run_dir']}")
    for node, info in st["nodes"].items():
        line = f"  {node:<14} netns {info['netns']}"
        if "frr" in info:
            line += f"  FRR {info['frr']}"
        if "bird" in info:
            line += f"  BIRD {info['bird']}"
        click.echo(line)
        for peer, state in info.get("bgp", {}).items():
            click.echo(f"      bgp {peer:<16} {state}")
    if st["spawned"]:
        click.echo("spawned:")
        for p in st["spawned"]:
            alive = "running" if p["alive"] else "exited"
            click.echo(f"  {p['pid']:>7} {p['node']:<14} {p['tag']:<16} {alive:<8} {' '.join(p['argv'])}")


@lab.command("exec", context_settings={"ignore_unknown_options": True})
@LAB_OPTION
@click.argument("node")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(lab_name: str, node: str, argv: tuple[str, ...]) -> None:
    """Run a command in a node's namespace: bgpctl lab exec NODE -- CMD [ARGS...]."""
    the_lab = Lab.attach(lab_name)
    ns = the_lab.netns(node)
    os.execvpe("ip", ["ip", "netns", "exec", ns, *argv], {**os.environ, **the_lab.env(node)})


@lab.command("vtysh", context_settings={"ignore_unknown_options": True})
@LAB_OPTION
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def vtysh_cmd(lab_name: str, node: str, command: tuple[str, ...]) -> None:
    """FRR's vtysh on a node: bgpctl lab vtysh NODE -- show bgp summary (no command: interactive)."""
    the_lab = Lab.attach(lab_name)
    if node not in the_lab.frr_nodes():
        raise LabError(f"node {node!r} runs no FRR; FRR nodes: {', '.join(the_lab.frr_nodes())}")
    ns = the_lab.netns(node)
    if not command:
        os.execvp(frr.VTYSH, [frr.VTYSH, "-N", ns])
    click.echo(the_lab.vtysh(node, " ".join(command)), nl=False)
