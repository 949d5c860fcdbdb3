"""Faults on a running lab's nodes: the one place the CLI and the drills both go through.

Link, FRR and BGP-session faults are :class:`~bgpctl_lab.runner.Lab` methods; impairments and
blackholes live in :mod:`bgpctl_lab.impair` / :mod:`bgpctl_lab.nft` and are bound to a lab node here,
so that their delayer processes are started through ``Lab.spawn`` and ``lab down`` removes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bgpctl_lab import impair, nft
from bgpctl_lab.impair import DEFAULT_LIFETIME_S, Applied, BackendChoice, Impairment

if TYPE_CHECKING:
    from bgpctl_lab.runner import Lab


def impair_node(
    lab: Lab,
    node: str,
    iface: str,
    imp: Impairment,
    *,
    seconds: float = DEFAULT_LIFETIME_S,
    backend: BackendChoice = "auto",
) -> Applied:
    """Set (or change) the impairment on packets leaving ``iface`` of ``node``."""

    def spawn(argv: list[str]) -> int:
        return lab.spawn(node, argv, tag="impair", log_name=f"delayer-{iface}.log")

    return impair.set_impairment(lab.netns(node), iface, imp, seconds=seconds, backend=backend, spawn=spawn)


def clear_node(lab: Lab, node: str, iface: str) -> bool:
    """Remove the impairment and any blackhole from ``iface`` of ``node``; True if there was one."""
    ns = lab.netns(node)
    had = impair.clear_impairment(ns, iface)
    had = nft.delete_table(nft.blackhole_table(iface), ns) or had
    nft.remove_sink_if_unused(ns)
    for proc in lab.spawned():  # forget the delayers that are gone (nothing is signalled: they are not ours)
        if proc.node == node and proc.tag == "impair" and not lab.spawned_alive(proc):
            lab.kill_spawned(pid=proc.pid)
    return had


def blackhole_node(lab: Lab, node: str, iface: str, on: bool, family: nft.BlackholeFamily = "all") -> None:
    """Drop every packet in and out of ``iface`` while its link stays up (silent 100 % loss); with ``family``
    (ipv4, ipv6) only that family's packets."""
    ns = lab.netns(node)
    nft.ifindex(iface, ns)
    nft.set_blackhole(iface, on, ns, family)
