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

from bgpctl.core.types import RouteAttrs
from bgpctl.policy.model import HaRole, PeerRole, Policy


def is_secondary(policy: Policy) -> bool:
    return policy.ha is not None and policy.ha.role is HaRole.SECONDARY


def apply_role(policy: Policy, role: PeerRole, attrs: RouteAttrs) -> RouteAttrs:
    """``attrs`` as this host sends them: unchanged on a primary, de-preferred on a secondary."""
    if policy.ha is None or policy.ha.role is not HaRole.SECONDARY:
        return attrs
    penalty = policy.ha.secondary
    communities = attrs.communities
    if role is PeerRole.TRANSIT_GATEWAY and penalty.transit_gateway_communities is not None:
        communities = tuple(penalty.transit_gateway_communities)
    return dataclasses.replace(
        attrs,
        as_path=attrs.as_path + (policy.speaker.local_as,) * penalty.prepend,
        med=(attrs.med or 0) + penalty.med if (attrs.med is not None or penalty.med) else None,
        communities=communities,
    )
