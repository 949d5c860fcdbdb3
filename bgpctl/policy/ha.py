"""The rules that make a controller pair work through BGP best-path selection alone (docs/ha.md).

The secondary sends every route the primary would send, made worse by ``ha.secondary``: more AS-path
prepends, a higher MED and, towards transit gateways, a lower AWS local-preference community. Peers then
prefer *every* route of the primary over *any* route of the secondary, whatever state each controller
gives a path, so two controllers that disagree never make traffic move between them: the peers follow
the primary while its session is up and its routes are there, the secondary otherwise.

That holds only when the penalty outranks the actions' own de-preference; :func:`penalty_problems`
checks it on the policy's raw data (it runs in :mod:`bgpctl.policy.xref`, so every problem of a file is
reported together).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from bgpctl.policy.model import PathState, PeerRole, is_community

AWS_LOCAL_PREFERENCE: Mapping[str, int] = {"7224:7100": 100, "7224:7200": 200, "7224:7300": 300}
"""AWS Direct Connect / Transit Gateway local-preference communities: low, medium, high (higher wins)."""

MAX_MED_PENALTY = 2147483647
"""The largest ``ha.secondary.med`` (the model's bound)."""

ANNOUNCING = (PathState.PREFERRED, PathState.STANDBY, PathState.DEGRADED)
"""The states whose action announces (xref refuses a withdraw in them)."""


def local_preference(communities: object) -> int | None:
    """The highest AWS local preference a community list asks for (None: it names none)."""
    if not isinstance(communities, list):
        return None
    ranks = [AWS_LOCAL_PREFERENCE[c] for c in communities if isinstance(c, str) and c in AWS_LOCAL_PREFERENCE]
    return max(ranks) if ranks else None


@dataclass(frozen=True)
class PenaltyProblem:
    """One way the secondary's penalty fails to outrank the actions (field path under ``ha``, message, hint)."""

    field: tuple[str, ...]
    message: str
    hint: str


def _prepend(action: Mapping[str, object]) -> int | None:
    v = action.get("prepend", 0)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _med(action: Mapping[str, object]) -> int | None:
    v = action.get("med", 0)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _announces(actions: Mapping[str, object], role: PeerRole) -> list[tuple[PathState, Mapping[str, object]]]:
    out: list[tuple[PathState, Mapping[str, object]]] = []
    for state in ANNOUNCING:
        per_role = actions.get(state.value)
        action = per_role.get(role.value) if isinstance(per_role, dict) else None
        if isinstance(action, dict) and action.get("withdraw") is not True:
            out.append((state, action))
    return out


def penalty_problems(actions: Mapping[str, object], penalty: Mapping[str, object]) -> Iterator[PenaltyProblem]:
    """Why the secondary's routes could beat some route of the primary; nothing when they never can.

    ``actions`` and ``penalty`` are the raw ``actions`` and ``ha.secondary`` mappings; malformed values are
    skipped (the structural pass reports them).
    """
    yield from _prepend_problems(actions, penalty.get("prepend"))
    yield from _med_problems(actions, penalty.get("med", 0))
    yield from _local_preference_problems(actions, penalty.get("transit_gateway_communities"))


def _prepend_problems(actions: Mapping[str, object], extra: object) -> Iterator[PenaltyProblem]:
    if not isinstance(extra, int) or isinstance(extra, bool) or extra < 1:
        return  # malformed or out of range: the structural pass says so
    for role in PeerRole:
        announced = [(s, p) for s, a in _announces(actions, role) if (p := _prepend(a)) is not None]
        if not announced:
            continue
        worst_state, worst = max(announced, key=lambda t: t[1])
        best_state, best = min(announced, key=lambda t: t[1])
        if 1 + best + extra <= 1 + worst:
            yield PenaltyProblem(
                ("secondary", "prepend"),
                f"the secondary's {best_state} routes to {role} peers (AS path of {1 + best + extra}) are no longer "
                f"than the primary's {worst_state} ones ({1 + worst}): peers could prefer the secondary",
                f"make ha.secondary.prepend at least {worst - best + 1}: every route of the primary must beat "
                "every route of the secondary, see docs/ha.md",
            )


def _med_problems(actions: Mapping[str, object], extra: object) -> Iterator[PenaltyProblem]:
    if not isinstance(extra, int) or isinstance(extra, bool) or extra > MAX_MED_PENALTY:
        return
    for role in PeerRole:
        for state, action in _announces(actions, role):
            med = _med(action)
            if med is not None and med + extra > 4294967295:
                yield PenaltyProblem(
                    ("secondary", "med"),
                    f"actions.{state}.{role}.med {med} plus ha.secondary.med {extra} is above 4294967295",
                    "lower ha.secondary.med: a MED is 32 bits",
                )


def _local_preference_problems(actions: Mapping[str, object], replaced: object) -> Iterator[PenaltyProblem]:
    tgw = _announces(actions, PeerRole.TRANSIT_GATEWAY)
    primary = [(s, lp) for s, a in tgw if (lp := local_preference(a.get("communities"))) is not None]
    if not primary:
        return
    low_state, low = min(primary, key=lambda t: t[1])
    if replaced is not None:
        if not isinstance(replaced, list) or not all(isinstance(c, str) and is_community(c) for c in replaced):
            return  # malformed: the structural pass says so
        lp = local_preference(replaced)
        if lp is None or lp > low:
            yield PenaltyProblem(
                ("secondary", "transit_gateway_communities"),
                "the secondary's routes to transit gateways would carry "
                + ("no AWS local-preference community" if lp is None else f"local preference {lp}")
                + f" while the primary's {low_state} ones carry {low}",
                f'give the lowest the primary uses, ["{_community_of(low)}"]: AWS compares local '
                "preference before the AS path",
            )
        return
    high_state, high = max(primary, key=lambda t: t[1])
    if high > low:
        yield PenaltyProblem(
            ("secondary",),
            f"the secondary would keep actions.{high_state}.transit-gateway's AWS local preference {high}, above "
            f"the primary's {low_state} routes ({low}): a transit gateway would prefer the secondary",
            f'add transit_gateway_communities: ["{_community_of(low)}"] to ha.secondary: AWS compares local '
            "preference before the AS path",
        )


def _community_of(rank: int) -> str:
    return next(c for c, r in AWS_LOCAL_PREFERENCE.items() if r == rank)
