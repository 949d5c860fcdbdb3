"""The secondary controller's de-preference, applied to every route it plans (pure; docs/ha.md).

The primary (or a host without an ``ha`` section) announces exactly what the actions say. The secondary
announces the same routes with ``ha.secondary.prepend`` more copies of the local AS, ``ha.secondary.med``
added to the MED (a missing MED counts as 0), and towards transit gateways the standard communities
replaced by ``ha.secondary.transit_gateway_communities`` when it is given. bgpctl.policy.ha checks that this
outranks every action's own de-preference, so peers prefer every route of the primary over any of the
secondary's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bgpctl.core.types import Health, PathHealth, PathKey, Rib, RouteAttrs
from bgpctl.policy.ha import ANNOUNCING
from bgpctl.policy.model import Announce, HaRole, PeerRole, Policy


def is_secondary(policy: Policy) -> bool:
    return policy.ha is not None and policy.ha.role is HaRole.SECONDARY


def apply_role(policy: Policy, role: PeerRole, attrs: RouteAttrs) -> RouteAttrs:
    """``attrs`` as this host sends them: unchanged on a primary, de-preferred on a secondary."""
    if policy.ha is None or policy.ha.role is not HaRole.SECONDARY:
        return attrs
    return _penalized(policy, role, attrs, policy.ha.secondary.prepend)


def _penalized(policy: Policy, role: PeerRole, attrs: RouteAttrs, prepend: int) -> RouteAttrs:
    """``attrs`` with ``prepend`` more copies of our AS, ``ha.secondary.med`` more MED (at most the largest MED)
    and, towards transit gateways, the secondary's communities: the secondary's penalty, and the hand-over's."""
    assert policy.ha is not None
    penalty = policy.ha.secondary
    communities = attrs.communities
    if role is PeerRole.TRANSIT_GATEWAY and penalty.transit_gateway_communities is not None:
        communities = tuple(penalty.transit_gateway_communities)
    return dataclasses.replace(
        attrs,
        as_path=attrs.as_path + (policy.speaker.local_as,) * prepend,
        med=min(MED_MAX, (attrs.med or 0) + penalty.med) if (attrs.med is not None or penalty.med) else None,
        communities=communities,
    )


def _own_copies(policy: Policy, attrs: RouteAttrs) -> int:
    return sum(1 for asn in attrs.as_path if asn == policy.speaker.local_as)


def whose(policy: Policy, role: PeerRole, attrs: RouteAttrs) -> HaRole | None:
    """Which controller of the pair sent the route a peer reflects back to us (``attrs``, our AS in its path):
    the primary's routes carry at most ``1 + max(prepend)`` copies of our AS, the secondary's at least
    ``1 + min(prepend) + ha.secondary.prepend`` (more: bgpctl.policy.ha checks it). None without ``ha``."""
    if policy.ha is None:
        return None
    prepends = [a.prepend for s in ANNOUNCING if isinstance(a := policy.actions.get(s, role), Announce)]
    return HaRole.PRIMARY if _own_copies(policy, attrs) <= 1 + max(prepends, default=0) else HaRole.SECONDARY


def in_use(policy: Policy, reflected: Rib, handing_over: bool = False) -> dict[str, Any] | None:
    """This host's role and whether its routes are the ones the peers use (``status.ha``; None without ``ha``).

    ``reflected``: per peer, our own routes as that peer sends them back (its best path per prefix). A peer
    that sends none back (the edge must be configured to: docs/ha.md) leaves it ``unknown``.
    """
    if policy.ha is None:
        return None
    mine = policy.ha.role
    prefixes: list[dict[str, Any]] = []
    roles = {p.name: p.role for p in policy.peers}
    for peer in sorted(reflected):
        for key, attrs in sorted(reflected[peer].items(), key=lambda kv: (kv[0].prefix, kv[0].path_id)):
            used = (
                "handing-over"
                if is_handed_over(policy, attrs)
                else str(whose(policy, roles.get(peer, PeerRole.EDGE), attrs))
            )
            prefixes.append({"peer": peer, "prefix": key.prefix, "as_path": list(attrs.as_path), "uses": used})
    mine_now = "handing-over" if handing_over else str(mine)
    ours = sum(1 for p in prefixes if p["uses"] == mine_now)
    verdict = "unknown" if not prefixes else "yes" if ours == len(prefixes) else "no" if ours == 0 else "partly"
    return {
        "role": str(mine),
        "penalty": {
            "prepend": policy.ha.secondary.prepend,
            "med": policy.ha.secondary.med,
            "transit_gateway_communities": policy.ha.secondary.transit_gateway_communities,
        },
        "in_use": verdict,
        "handing_over": handing_over,
        "why": (
            "no peer sends our prefixes back, so whose routes are in use cannot be told here (docs/ha.md)"
            if not prefixes
            else f"{ours} of {len(prefixes)} route(s) the peers send back are this host's ({mine}"
            + (", handing over: every path was judged down" if handing_over else "")
            + ")"
        ),
        "reflected": prefixes,
    }


# ------------------------------------------------------------------------------------------------ hand-over

MED_MAX = 0xFFFFFFFF


def _prepends(policy: Policy) -> list[int]:
    return [
        a.prepend
        for role in (PeerRole.EDGE, PeerRole.TRANSIT_GATEWAY)
        for s in ANNOUNCING
        if isinstance(a := policy.actions.get(s, role), Announce)
    ]


def hand_over_prepend(policy: Policy) -> int:
    """Extra copies of our AS on every route of a controller that hands over (:func:`held_back`): enough that
    its shortest route is longer than the longest route of a secondary that does not hand over, whatever
    states the two give their paths (``max - min`` of the actions' prepends, plus ``ha.secondary.prepend``,
    plus one). 0 without ``ha``."""
    if policy.ha is None:
        return 0
    prepends = _prepends(policy) or [0]
    return max(prepends) - min(prepends) + policy.ha.secondary.prepend + 1


def _held_copies(policy: Policy) -> int:
    """Routes with more copies of our AS than this are a handing-over controller's (no other route has as
    many: the longest route of a secondary that does not hand over has ``1 + max(prepend) + ha prepend``)."""
    assert policy.ha is not None
    return 1 + max(_prepends(policy) or [0]) + policy.ha.secondary.prepend


def is_handed_over(policy: Policy, attrs: RouteAttrs) -> bool:
    """Does ``attrs`` carry the hand-over penalty (:func:`hand_over`)? False without ``ha``."""
    return policy.ha is not None and _own_copies(policy, attrs) > _held_copies(policy)


def hand_over(policy: Policy, role: PeerRole, attrs: RouteAttrs) -> RouteAttrs:
    """``attrs`` made worse than any route of a controller that does not hand over (docs/ha.md, "Handing
    over"): :func:`hand_over_prepend` more copies of our AS, ``ha.secondary.med`` more MED, towards transit
    gateways the secondary's communities (the lowest AWS local preference). Idempotent: a route that already
    carries it is returned as it is (fail-static keeps a handing-over plan's routes)."""
    if policy.ha is None or is_handed_over(policy, attrs):
        return attrs
    return _penalized(policy, role, attrs, hand_over_prepend(policy))


_RISING_FROM = {Health.DOWN: 3, Health.DEGRADED: 1, Health.UP: 0}


def rising(health: PathHealth) -> bool:
    """Is the path on its way back to a better state: its measurements already vouch for a better level
    (``clean_level``) than its health, which its hysteresis (rise, dwell, hold-down) has not reached yet? A
    suspect path is judged by the judgement beneath its suspicion."""
    h = health.beneath if health.health is Health.SUSPECT and health.beneath is not None else health
    better = h.clean_level
    return (
        better is not None
        and h.health in _RISING_FROM
        and better in _RISING_FROM
        and _RISING_FROM[better] < _RISING_FROM[h.health]
    )


def held_back(policy: Policy, health: Mapping[PathKey, PathHealth], was: bool) -> bool:
    """Does this controller hand over now (docs/ha.md, "Handing over")? Pure; ``was``: it did at the last step.

    A controller of a pair that judges *every* path DOWN sees nothing it can stand by: it is cut off (its
    links or sessions down), its own probe sources are broken, or everything is really down. It then hands
    over, and keeps handing over while any path is DOWN or still rising back (:func:`rising`: a path leaves
    DOWN through DEGRADED when its window still held the cut's losses, and rises to UP only ``rise_s``
    later), so that it is never followed while its view is still partial. Handing over changes only how its
    routes compare with the other controller's (:func:`hand_over`): the peers use the other one's routes where
    it has any, and this one's (fail-static) otherwise. False without ``ha``.
    """
    if policy.ha is None or not health:
        return False
    states = [h.health for h in health.values()]
    if all(s is Health.DOWN for s in states):
        return True
    if any(s is Health.DOWN or rising(h) for s, h in zip(states, health.values(), strict=True)):
        return was
    return False
