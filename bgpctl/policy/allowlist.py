"""The prefix allowlist check: the one function the planner and the speaker both call.

Invariant (docs/design.md, "Invariants"): nothing outside ``guards.allowlist`` is ever announced,
whatever the inputs. :func:`bgpctl.core.plan.plan` drops planned routes outside it and withdraws
announced ones; :func:`bgpctl.speaker.commands.check_allowed` refuses to render an announcement
outside it. Both answer the question with :func:`allowed`.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network

from bgpctl.policy.model import Policy

Network = IPv4Network | IPv6Network


@lru_cache(maxsize=4096)
def parse_network(text: str) -> Network | None:
    """A well-formed prefix (no host bits set), or None. Cached: networks are immutable."""
    try:
        return ip_network(text, strict=True)
    except ValueError:
        return None


def allowlist_networks(policy: Policy) -> list[Network]:
    """The policy's allowlist as networks; malformed entries (a policy built without validation) allow nothing."""
    nets = (parse_network(str(a)) for a in policy.guards.allowlist)
    return [n for n in nets if n is not None]


def allowed(prefix: str, allowlist: Iterable[Network]) -> bool:
    """True when ``prefix`` is a well-formed network inside one of ``allowlist`` (of the same family)."""
    net = parse_network(prefix)
    if net is None:
        return False
    for a in allowlist:
        if isinstance(net, IPv4Network) and isinstance(a, IPv4Network) and net.subnet_of(a):
            return True
        if isinstance(net, IPv6Network) and isinstance(a, IPv6Network) and net.subnet_of(a):
            return True
    return False
