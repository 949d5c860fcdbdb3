"""``bgpctl lab fault ...``: inject faults into a running lab (impairments, link, FRR, BGP sessions)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

import click

from bgpctl_lab import faults, impair
from bgpctl_lab.cli.lab import LAB_OPTION, lab
from bgpctl_lab.impair import DEFAULT_LIFETIME_S, Applied, BackendChoice, Impairment
from bgpctl_lab.nft import BlackholeFamily

if TYPE_CHECKING:
    from bgpctl_lab.runner import Lab


def _attach(lab_name: str) -> Lab:
    from bgpctl_lab.runner import Lab  # noqa: PLC0415 (imported when a command runs, not at CLI start)

    return Lab.attach(lab_name)


def _describe(a: Applied) -> str:
    i = a.impairment
    left = max(0.0, a.expires_at - time.time())
    return (
        f"{a.netns}/{a.ifname}: delay {i.delay_ms:g} ms, jitter {i.jitter_ms:g} ms, loss {i.loss_pct:g} %, "
        f"duplicate {i.duplicate_pct:g} %, reorder {i.reorder_pct:g} %"
        f"{'' if i.udp_dport is None else f' (UDP to port {i.udp_dport} only)'} "
        f"[backend {a.backend}, delayer pid {a.delayer_pid}, {left:.0f} s left]"
    )


@lab.group("fault")
def fault() -> None:
    """Inject faults: link down/up, delay/jitter/loss/duplication/reordering, FRR stop/start, BGP clear."""


@fault.command("impair")
@click.argument("node")
@click.argument("iface")
@click.option("--delay", type=float, default=0.0, help="Added delay, ms.")
@click.option("--jitter", type=float, default=0.0, help="Standard deviation of the delay (normal), ms.")
@click.option("--loss", type=float, default=0.0, help="Packets lost, %.")
@click.option("--duplicate", type=float, default=0.0, help="Packets duplicated, %.")
@click.option("--reorder", type=float, default=0.0, help="Packets sent at once, ahead of delayed ones, %.")
@click.option("--seed", type=int, default=None, help="Seed for the delayer's random draws.")
@click.option(
    "--udp-dport",
    type=click.IntRange(1, 65535),
    default=None,
    help="Impair only UDP packets to this port (e.g. 862, the STAMP probes); default: every packet.",
)
@click.option(
    "--seconds",
    type=float,
    default=DEFAULT_LIFETIME_S,
    show_default=True,
    help="Lifetime: the impairment removes itself after this long.",
)
@click.option("--backend", type=click.Choice(["auto", "netem", "nft"]), default="auto", show_default=True)
@LAB_OPTION
def impair_cmd(
    *,
    node: str,
    iface: str,
    delay: float,
    jitter: float,
    loss: float,
    duplicate: float,
    reorder: float,
    seed: int | None,
    udp_dport: int | None,
    seconds: float,
    backend: str,
    lab_name: str,
) -> None:
    """Set (or change) the impairment on packets leaving IFACE of NODE."""
    imp = Impairment(
        delay_ms=delay,
        jitter_ms=jitter,
        loss_pct=loss,
        duplicate_pct=duplicate,
        reorder_pct=reorder,
        seed=seed,
        udp_dport=udp_dport,
    )
    applied = faults.impair_node(
        _attach(lab_name), node, iface, imp, seconds=seconds, backend=cast(BackendChoice, backend)
    )
    click.echo(_describe(applied))


@fault.command("clear")
@click.argument("node")
@click.argument("iface")
@LAB_OPTION
def clear_cmd(node: str, iface: str, lab_name: str) -> None:
    """Remove the impairment (and a blackhole) from IFACE of NODE."""
    had = faults.clear_node(_attach(lab_name), node, iface)
    click.echo(f"{node}/{iface}: {'cleared' if had else 'nothing to clear'}")


@fault.command("show")
@click.argument("node")
@click.argument("iface")
@LAB_OPTION
def show_cmd(node: str, iface: str, lab_name: str) -> None:
    """Show the impairment in force on IFACE of NODE."""
    ns = _attach(lab_name).netns(node)
    applied = impair.current(ns, iface)
    click.echo(_describe(applied) if applied else f"{ns}/{iface}: no impairment")


@fault.command("blackhole")
@click.argument("node")
@click.argument("iface")
@click.argument("state", type=click.Choice(["on", "off"]))
@click.option(
    "--family",
    type=click.Choice(["all", "ipv4", "ipv6"]),
    default="all",
    show_default=True,
    help="Drop only this IP family's packets (the other goes on: e.g. IPv6 broken, IPv4 working).",
)
@LAB_OPTION
def blackhole_cmd(node: str, iface: str, state: str, family: BlackholeFamily, lab_name: str) -> None:
    """Drop every packet in and out of IFACE while the link stays up (silent loss, 100 %)."""
    faults.blackhole_node(_attach(lab_name), node, iface, state == "on", family)
    click.echo(f"{node}/{iface}: blackhole {state}" + ("" if family == "all" else f" ({family} only)"))


@fault.command("link")
@click.argument("node")
@click.argument("iface")
@click.argument("state", type=click.Choice(["down", "up"]))
@LAB_OPTION
def link_cmd(node: str, iface: str, state: str, lab_name: str) -> None:
    """Set IFACE of NODE administratively down or up."""
    _attach(lab_name).link_set(node, iface, state == "up")
    click.echo(f"{node}/{iface}: link {state}")


@fault.command("frr")
@click.argument("node")
@click.argument("action", type=click.Choice(["stop", "start"]))
@LAB_OPTION
def frr_cmd(node: str, action: str, lab_name: str) -> None:
    """Stop or start NODE's FRR daemons."""
    the_lab = _attach(lab_name)
    if action == "stop":
        the_lab.stop_frr(node)
    else:
        the_lab.start_frr(node)
    click.echo(f"{node}: FRR {action}{'ped' if action == 'stop' else 'ed'}")


@fault.command("bgp-clear")
@click.argument("node")
@click.argument("peer")
@LAB_OPTION
def bgp_clear_cmd(node: str, peer: str, lab_name: str) -> None:
    """Reset NODE's BGP session with PEER (``clear bgp PEER``)."""
    _attach(lab_name).clear_bgp(node, peer)
    click.echo(f"{node}: cleared BGP session with {peer}")
