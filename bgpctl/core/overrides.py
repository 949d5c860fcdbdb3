"""Runtime overrides (``bgpctl drain/undrain/pin/unpin/freeze/thaw``): pure values and rules, no I/O.

A runtime override is one :class:`RuntimeOverride` (kind, target, who asked, when, why, when it expires).
The daemon keeps a tuple of them in the :class:`~bgpctl.core.controller.Controller`; :func:`merged`
adds them to the policy file's ``overrides:`` so that plan() sees one :class:`Overrides` and applies the
same rules to both (make-before-break, fail-static, rate limit, allowlist). Changing the set is
:func:`apply` (a verb, its checked arguments, who, now -> the new tuple, or :class:`OverrideRefused`
saying why), expiry is :func:`expire` (now -> kept, expired). :func:`to_json` / :func:`from_json` are
the one shape of the persisted file (``overrides.json`` in the run directory), of the ``overrides``
lines of a recording and of ``status.overrides``.

**The return after a drain goes through the rise rules.** An ``undrain`` (and the expiry of a drain set
with ``--for``) does not hand the region its traffic back at once: each service the drain covered keeps
it as standby for that service's ``rise_s`` (its SLA class's hysteresis; ``min_dwell_s`` if longer), as
a recovering path is held back, and only then returns. The hold is an ordinary drain of that service
with ``returning=True`` and an expiry (:func:`returning_holds`), so it goes through plan() like any
drain, is persisted, survives a restart, shows in ``status`` and ends by expiry. A path that is not UP
when the hold ends comes back by its own health rules (rise_s of clean measurements, hold-down), as
every path does. ``undrain`` with ``now`` skips the holds (and ends holds already running).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from bgpctl.core.override_args import MAX_DURATION_S, drain_target, duration, name, weights
from bgpctl.core.plan import path_states
from bgpctl.core.types import PathHealth
from bgpctl.errors import RefusedInput
from bgpctl.policy.model import Drain, Mode, Overrides, PathState, Policy

Kind = Literal["drain", "pin", "freeze", "weight"]
KINDS: tuple[Kind, ...] = ("drain", "pin", "freeze", "weight")
MAX_OVERRIDES = 256


class OverrideRefused(RefusedInput):
    """An override request that would be wrong or dangerous (exit code 3); nothing changed."""

    def __init__(self, message: str, hint: str = "", *, unknown_name: bool = False) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint
        self.unknown_name = unknown_name  # a name the policy does not have (a bad argument, not a refusal)


@dataclass(frozen=True, slots=True)
class RuntimeOverride:
    kind: Kind
    region: str | None = None  # drain, pin
    path: str | None = None  # drain of one path
    service: str | None = None  # pin, weight; drain of one service
    by: Mapping[str, int] | None = None  # peer credentials: pid, uid, gid
    since: float = 0.0
    expires: float | None = None
    reason: str = ""
    returning: bool = False  # a drain kept after its undrain until the service's rise rules pass
    weights: Mapping[str, int] | None = None  # weight: region -> weight

    @property
    def target(self) -> str:
        if self.kind == "freeze":
            return "*"
        if self.kind == "pin":
            return f"{self.service}:{self.region}"
        if self.kind == "weight":
            return f"{self.service} " + " ".join(f"{r}={w}" for r, w in (self.weights or {}).items())
        where = self.region if self.path is None else f"{self.region}/{self.path}"
        return f"{where}" if self.service is None else f"{where} for {self.service}"

    def same_target(self, other: RuntimeOverride) -> bool:
        if self.kind != other.kind:
            return False
        if self.kind in ("pin", "weight"):
            return self.service == other.service
        return (self.region, self.path, self.service) == (other.region, other.path, other.service)

    def covers(self, hold: RuntimeOverride) -> bool:
        """This drain's target includes the returning ``hold`` (same region and path; every service, or its)."""
        return (
            self.kind == hold.kind == "drain"
            and hold.returning
            and (self.region, self.path) == (hold.region, hold.path)
            and self.service in (None, hold.service)
        )


Runtime = tuple[RuntimeOverride, ...]
__all__ = ["MAX_DURATION_S", "drain_target", "duration", "name", "weights"]  # the argument checkers, re-exported


# --------------------------------------------------------------------------------------------
# rules


def merged(policy_ov: Overrides, runtime: Sequence[RuntimeOverride]) -> Overrides:
    """The policy's overrides plus the runtime ones: what plan() applies. A runtime pin wins over the
    policy's pin of the same service; freeze holds if either says so."""
    if not runtime:
        return policy_ov
    drains = list(policy_ov.drain) + [
        Drain(region=o.region, path=o.path, service=o.service)
        for o in runtime
        if o.kind == "drain" and o.region is not None
    ]
    pins = dict(policy_ov.pin) | {o.service: o.region for o in runtime if o.kind == "pin"}
    freeze = policy_ov.freeze or any(o.kind == "freeze" for o in runtime)
    weighted = dict(policy_ov.weights) | {
        o.service: dict(o.weights) for o in runtime if o.kind == "weight" and o.service and o.weights
    }
    return Overrides.model_construct(drain=drains, pin=pins, freeze=freeze, weights=weighted)  # type: ignore[arg-type]


def expire(runtime: Runtime, now: float, policy: Policy | None = None) -> tuple[Runtime, Runtime]:
    """(kept, expired) at ``now``: an override expires when ``now`` reaches its ``expires``. With the
    ``policy``, an expired drain leaves its :func:`returning_holds` in ``kept`` (the region returns after
    the rise rules, as after an undrain)."""
    kept = tuple(o for o in runtime if o.expires is None or now < o.expires)
    gone = tuple(o for o in runtime if o.expires is not None and now >= o.expires)
    if policy is not None:
        for o in gone:
            if o.kind == "drain" and not o.returning:
                holds = returning_holds(policy, o, now=now, by=o.by, why=f"its drain expired ({o.reason})")
                kept = (*tuple(x for x in kept if not (x.returning and any(h.same_target(x) for h in holds))), *holds)
    return kept, gone


def return_hold_s(policy: Policy, service: str) -> float:
    """How long a service's paths stay standby after an undrain: the SLA class's ``rise_s`` (the clean run
    a recovering path needs), or ``min_dwell_s`` if that is longer."""
    h = policy.sla_classes[policy.services[service].sla].hysteresis
    return float(max(h.rise_s, h.min_dwell_s))


def drained_services(policy: Policy, o: RuntimeOverride) -> list[str]:
    """The services a drain affects: those measuring its region (only its service, if it names one)."""
    return [
        s
        for s, svc in policy.services.items()
        if o.region in svc.probe.targets and (o.service is None or o.service == s)
    ]


def returning_holds(
    policy: Policy, o: RuntimeOverride, *, now: float, by: Mapping[str, int] | None, why: str
) -> Runtime:
    """The holds that follow the end of drain ``o`` at ``now``: per service, a returning drain of the same
    region (and path) that expires after the service's :func:`return_hold_s`."""
    out = []
    for service in drained_services(policy, o):
        hold = return_hold_s(policy, service)
        if hold > 0:
            out.append(
                RuntimeOverride(
                    "drain",
                    region=o.region,
                    path=o.path,
                    service=service,
                    by=dict(by) if by is not None else None,
                    since=now,
                    expires=now + hold,
                    reason=f"returning after rise_s {hold:g} s: {why}"[:500],
                    returning=True,
                )
            )
    return tuple(out)


def next_expiry(runtime: Runtime) -> float | None:
    times = [o.expires for o in runtime if o.expires is not None]
    return min(times) if times else None


def _check_drain(policy: Policy, o: RuntimeOverride) -> None:
    assert o.region is not None
    if o.region not in policy.regions:
        raise OverrideRefused(
            f"region '{o.region}' is not in the policy", f"regions: {', '.join(policy.regions)}", unknown_name=True
        )
    if o.path is not None and o.path not in policy.regions[o.region].paths:
        raise OverrideRefused(
            f"region '{o.region}' has no path '{o.path}'",
            f"paths of {o.region}: {', '.join(policy.regions[o.region].paths)}",
            unknown_name=True,
        )
    if o.service is not None and o.service not in policy.services:
        raise OverrideRefused(
            f"service '{o.service}' is not in the policy", f"services: {', '.join(policy.services)}", unknown_name=True
        )


def _check_pin(policy: Policy, o: RuntimeOverride) -> None:
    assert o.service is not None and o.region is not None
    if o.service not in policy.services:
        raise OverrideRefused(
            f"service '{o.service}' is not in the policy", f"services: {', '.join(policy.services)}", unknown_name=True
        )
    if o.region not in policy.regions:
        raise OverrideRefused(
            f"region '{o.region}' is not in the policy", f"regions: {', '.join(policy.regions)}", unknown_name=True
        )


def _check_weight(policy: Policy, o: RuntimeOverride) -> None:
    """The rules of a service's ``weights`` in the policy (bgpctl.policy.xref), as refusals."""
    assert o.service is not None and o.weights is not None
    if o.service not in policy.services:
        raise OverrideRefused(
            f"service '{o.service}' is not in the policy", f"services: {', '.join(policy.services)}", unknown_name=True
        )
    if policy.services[o.service].mode is not Mode.ACTIVE_ACTIVE:
        raise OverrideRefused(
            f"service '{o.service}' is active-standby: weights are only for active-active services",
            "an active-standby service sends all its traffic to one region: use pin or drain to move it",
        )
    unknown = [r for r in o.weights if r not in policy.regions]
    if unknown:
        raise OverrideRefused(
            f"region '{unknown[0]}' is not in the policy", f"regions: {', '.join(policy.regions)}", unknown_name=True
        )
    missing = [r for r in policy.regions if r not in o.weights]
    if missing:
        raise OverrideRefused(
            f"the weights leave out {', '.join(missing)}",
            f"give every region a weight: {' '.join(f'{r}=N' for r in policy.regions)}",
            unknown_name=True,
        )


def check_names(policy: Policy, o: RuntimeOverride) -> None:
    """OverrideRefused (``unknown_name``) if ``o`` names a region, path or service ``policy`` does not have
    (a weight override also: that its service is active-active and it weighs every region)."""
    if o.kind == "drain":
        _check_drain(policy, o)
    elif o.kind == "pin":
        _check_pin(policy, o)
    elif o.kind == "weight":
        _check_weight(policy, o)


def preferred_left(
    policy: Policy, health: Mapping[Any, PathHealth], runtime: Runtime, candidate: RuntimeOverride
) -> list[str]:
    """The services that would have no preferred (up, undrained) path with ``candidate`` added, while
    they have one without it: the drain of the last healthy region."""
    before, _ = path_states(policy, health, merged(policy.overrides, runtime))
    after, _ = path_states(policy, health, merged(policy.overrides, (*runtime, candidate)))

    def served(states: Mapping[Any, PathState | None]) -> set[str]:
        return {k.service for k, s in states.items() if s is PathState.PREFERRED}

    return sorted(served(before) - served(after))


def apply(
    policy: Policy,
    health: Mapping[Any, PathHealth],
    runtime: Runtime,
    verb: str,
    args: Mapping[str, Any],
    *,
    by: Mapping[str, int] | None,
    now: float,
) -> tuple[Runtime, RuntimeOverride | None, Runtime]:
    """One verb on the runtime overrides: (new tuple, the override set or None, the ones removed).

    Setting an override on a target that already has one replaces it (a new reason or expiry); removing
    one that is not there is refused, so that a typo is not a silent success."""
    expires = now + args["for"] if args.get("for") is not None else None
    reason = str(args.get("reason", ""))
    if verb in ("drain", "undrain"):
        region, path = args["target"]
        o = RuntimeOverride("drain", region=region, path=path, service=args.get("service"))
    elif verb in ("pin", "unpin"):
        o = RuntimeOverride("pin", region=args.get("region"), service=args["service"])
    elif verb in ("freeze", "thaw"):
        o = RuntimeOverride("freeze")
    elif verb in ("weight", "unweight"):
        o = RuntimeOverride("weight", service=args["service"], weights=args.get("weights"))
    else:
        raise OverrideRefused(
            f"'{verb}' is not an override verb", "drain, undrain, pin, unpin, freeze, thaw, weight, unweight"
        )
    if verb == "undrain":
        return _undrain(
            policy, runtime, o, at_once=bool(args.get("now", False)), why=f"undrain ({reason})", by=by, now=now
        )
    if verb in ("unpin", "thaw", "unweight"):
        gone = tuple(x for x in runtime if x.same_target(o))
        if not gone:
            listed = ", ".join(x.target for x in runtime if x.kind == o.kind) or "none"
            raise OverrideRefused(
                f"no runtime {o.kind} of {o.target if verb not in ('unpin', 'unweight') else o.service} is in force",
                f"runtime {o.kind}s in force: {listed} (the policy file's own overrides change with the file)",
            )
        return tuple(x for x in runtime if not x.same_target(o)), None, gone
    check_names(policy, o)
    rest = tuple(x for x in runtime if not x.same_target(o) and not o.covers(x))
    if len(rest) >= MAX_OVERRIDES:
        raise OverrideRefused(f"{MAX_OVERRIDES} runtime overrides are in force", "remove some first")
    o = replace(o, by=dict(by) if by is not None else None, since=now, expires=expires, reason=reason)
    if o.kind == "drain" and not args.get("force", False):
        lost = preferred_left(policy, health, rest, o)
        if lost:
            raise OverrideRefused(
                f"drain of {o.target} refused: it would leave {', '.join(lost)} without a healthy undrained "
                "path (the last healthy region)",
                "add --force to drain it anyway; its routes stay announced, as standby",
            )
    return (*rest, o), o, ()


def _undrain(
    policy: Policy,
    runtime: Runtime,
    o: RuntimeOverride,
    *,
    at_once: bool,
    why: str,
    by: Mapping[str, int] | None,
    now: float,
) -> tuple[Runtime, RuntimeOverride | None, Runtime]:
    """End the drain of ``o``'s target: it is replaced by its :func:`returning_holds` (``at_once``: removed
    at once, and so are the holds of that target already running)."""
    drains = tuple(x for x in runtime if x.same_target(o) and not x.returning)
    holds = tuple(x for x in runtime if o.covers(x))
    if not drains and not (at_once and holds):
        listed = ", ".join(x.target for x in runtime if x.kind == "drain" and not x.returning) or "none"
        if holds:
            until = max(h.expires or now for h in holds)
            raise OverrideRefused(
                f"{o.target} is already returning after its undrain (until {until - now:.0f} s from now)",
                "undrain with now (bgpctl undrain --now) returns it at once, skipping the rise rules",
            )
        raise OverrideRefused(
            f"no runtime drain of {o.target} is in force",
            f"runtime drains in force: {listed} (the policy file's own overrides change with the file)",
        )
    rest = tuple(x for x in runtime if x not in drains and x not in holds)
    if at_once:
        return rest, None, (*drains, *holds)
    new_holds = tuple(h for d in drains for h in returning_holds(policy, d, now=now, by=by, why=why))
    return (*rest, *new_holds), None, drains


# --------------------------------------------------------------------------------------------
# one JSON shape: the persisted file, the recording's lines, status.overrides


def to_json(o: RuntimeOverride) -> dict[str, Any]:
    """The override's one JSON shape; ``weights`` only in a weight override's."""
    return _with_weights(
        o,
        {
            "kind": o.kind,
            "target": o.target,
            "region": o.region,
            "path": o.path,
            "service": o.service,
            "source": "runtime",
            "by": dict(o.by) if o.by is not None else None,
            "since": o.since,
            "expires": o.expires,
            "reason": o.reason,
            "returning": o.returning,
        },
    )


def _with_weights(o: RuntimeOverride, row: dict[str, Any]) -> dict[str, Any]:
    if o.kind == "weight":
        row["weights"] = dict(o.weights or {})
    return row


def status_row(o: RuntimeOverride) -> dict[str, Any]:
    """The ``status.overrides`` row (bgpctl/schemas/status.schema.json): :func:`to_json` without the target's
    parts (``target`` names them)."""
    return {k: v for k, v in to_json(o).items() if k not in ("region", "path", "service")}


def _opt_name(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    try:
        return name(value)
    except ValueError as e:
        raise ValueError(f"{where}: '{key}' {e}") from None


def _time(value: Any, key: str, where: str, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: '{key}' must be a finite number of seconds since the epoch")
    return float(value)


def from_json(obj: Any, where: str) -> RuntimeOverride:
    """One override from its JSON shape; ValueError naming ``where`` and the field."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: an override must be an object")
    kind = obj.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{where}: 'kind' must be one of {', '.join(KINDS)}")
    region, path, service = (_opt_name(obj, k, where) for k in ("region", "path", "service"))
    if kind == "drain" and region is None:
        raise ValueError(f"{where}: a drain needs 'region'")
    if kind == "pin" and (region is None or service is None):
        raise ValueError(f"{where}: a pin needs 'service' and 'region'")
    weighted: dict[str, int] | None = None
    if kind == "weight":
        if service is None:
            raise ValueError(f"{where}: a weight needs 'service' and 'weights'")
        try:
            weighted = weights(obj.get("weights"))
        except ValueError as e:
            raise ValueError(f"{where}: 'weights' {e}") from None
    elif "weights" in obj:
        raise ValueError(f"{where}: only a weight override has 'weights'")
    by = obj.get("by")
    if by is not None and (
        not isinstance(by, dict)
        or set(by) != {"pid", "uid", "gid"}
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in by.values())
    ):
        raise ValueError(f"{where}: 'by' must be null or {{pid, uid, gid}} integers")
    reason = obj.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 500 or not reason.isprintable():
        raise ValueError(f"{where}: 'reason' must be printable text of at most 500 characters")
    since = _time(obj.get("since"), "since", where, optional=False)
    assert since is not None
    returning = obj.get("returning", False)
    if not isinstance(returning, bool) or (returning and kind != "drain"):
        raise ValueError(f"{where}: 'returning' must be true or false (true only for a drain)")
    return RuntimeOverride(
        kind,
        region=region,
        path=path,
        service=service,
        by=by,
        since=since,
        expires=_time(obj.get("expires"), "expires", where, optional=True),
        reason=reason,
        returning=returning,
        weights=weighted,
    )


def runtime_from_json(doc: Any, where: str) -> Runtime:
    """The persisted document ``{"version": 1, "overrides": [...]}``; ValueError naming what is wrong."""
    if not isinstance(doc, dict) or doc.get("version") != 1 or not isinstance(doc.get("overrides"), list):
        raise ValueError(f'{where}: expected {{"version": 1, "overrides": [...]}}')
    items = doc["overrides"]
    if len(items) > MAX_OVERRIDES:
        raise ValueError(f"{where}: more than {MAX_OVERRIDES} overrides")
    return tuple(from_json(o, f"{where}: overrides[{i}]") for i, o in enumerate(items))


def runtime_to_json(runtime: Runtime) -> dict[str, Any]:
    return {"version": 1, "overrides": [to_json(o) for o in runtime]}
