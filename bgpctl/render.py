"""One renderer per data type: routes, route changes, plans and health transitions, as JSON-able data
and as one line of text.

Every command, log sink and golden file that shows one of these goes through the functions here, so a
route looks the same in ``bgpctl policy plan --json``, the daemon's ``route.change`` events, ``bgpctl
replay`` and the golden plans. :func:`change_from_dict` reads the data form back (JSON reports, log events)
so that text can be rendered from either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bgpctl.core.plan import route_order
from bgpctl.core.types import ChangeKind, Plan, Rib, RouteAttrs, RouteChange, RouteKey, Transition

# --------------------------------------------------------------------------------------------
# data (JSON output, log events, golden files)


def attrs_to_dict(attrs: RouteAttrs) -> dict[str, object]:
    """The route's attributes; ``weight`` (the link-bandwidth weight) only when the route carries one."""
    out: dict[str, object] = {
        "next_hop": attrs.next_hop,
        "as_path": list(attrs.as_path),
        "med": attrs.med,
        "communities": list(attrs.communities),
        "large_communities": list(attrs.large_communities),
    }
    if attrs.weight is not None:
        out["weight"] = attrs.weight
    return out


def attrs_from_dict(data: Mapping[str, Any]) -> RouteAttrs:
    """The inverse of :func:`attrs_to_dict` (extra keys are ignored)."""
    return RouteAttrs(
        data["next_hop"],
        tuple(data["as_path"]),
        data.get("med"),
        tuple(data.get("communities", ())),
        tuple(data.get("large_communities", ())),
        data.get("weight"),
    )


def change_to_dict(change: RouteChange) -> dict[str, object]:
    out: dict[str, object] = {
        "peer": change.peer,
        "kind": str(change.kind),
        "prefix": change.key.prefix,
        "path_id": change.key.path_id,
    }
    if change.attrs is not None:
        out.update(attrs_to_dict(change.attrs))
    out["why"] = change.why
    return out


def change_from_dict(data: Mapping[str, Any]) -> RouteChange:
    """The inverse of :func:`change_to_dict` (extra keys, e.g. a log event's, are ignored)."""
    kind = ChangeKind(data["kind"])
    attrs = None
    if kind is ChangeKind.ANNOUNCE:
        attrs = attrs_from_dict(data)
    return RouteChange(data["peer"], kind, RouteKey(data["prefix"], data.get("path_id", 0)), attrs, data.get("why", ""))


def rib_to_dict(rib: Rib) -> dict[str, list[dict[str, object]]]:
    return {
        peer: [
            {"prefix": k.prefix, "path_id": k.path_id, **attrs_to_dict(routes[k])}
            for k in sorted(routes, key=route_order)
        ]
        for peer, routes in rib.items()
    }


def plan_to_dict(p: Plan) -> dict[str, object]:
    """A plan as JSON-able data (routes sorted by prefix and path id)."""
    return {
        "desired": rib_to_dict(p.desired),
        "changes": [change_to_dict(c) for c in p.changes],
        "deferred": [change_to_dict(c) for c in p.deferred],
        "notes": list(p.notes),
        "change_times": list(p.change_times),
    }


def transition_to_dict(t: Transition) -> dict[str, object]:
    """A health change: the path, old and new health, and decide()'s reasons as text."""
    return {"path": str(t.key), "old": t.old.value, "new": t.new.value, "reasons": [r.text for r in t.reasons]}


# --------------------------------------------------------------------------------------------
# text


def weight_text(weight: int | None) -> list[str]:
    """The link-bandwidth weight as it stands among the communities: ``["weight:80"]``, or nothing."""
    return [] if weight is None else [f"weight:{weight}"]


def communities_text(attrs: RouteAttrs, empty: str = "-") -> str:
    """Standard then large communities, then the weight, space-separated (``empty`` when there are none)."""
    return " ".join([*attrs.communities, *attrs.large_communities, *weight_text(attrs.weight)]) or empty


def attrs_text(attrs: RouteAttrs) -> str:
    """``nh NEXT_HOP as-path A B [med M] [comm C,..] [lcomm L,..] [weight W]``."""
    text = f"nh {attrs.next_hop} as-path {' '.join(map(str, attrs.as_path))}"
    if attrs.med is not None:
        text += f" med {attrs.med}"
    if attrs.communities:
        text += f" comm {','.join(attrs.communities)}"
    if attrs.large_communities:
        text += f" lcomm {','.join(attrs.large_communities)}"
    if attrs.weight is not None:
        text += f" weight {attrs.weight}"
    return text


def change_text(change: RouteChange) -> str:
    """``PEER KIND PREFIX [id N] [ATTRS]``, the peer and kind padded so that a list of changes lines up."""
    text = f"{change.peer:<10} {change.kind.value:<8} {change.key.prefix}"
    if change.key.path_id:
        text += f" id {change.key.path_id}"
    if change.attrs is not None:
        text += f" {attrs_text(change.attrs)}"
    return text
