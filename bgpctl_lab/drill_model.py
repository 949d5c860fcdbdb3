"""Failover drills as data: ``lab/drills/NAME.yaml``.

A drill starts the call meter, checks the steady state, injects one fault, waits for the
expected routing changes (each with a named budget), restores, and waits for the recovery.
The report says when each step held and what a call would have heard (the meter's gaps).

Expectations are JSON subsets of a vtysh ``... json`` output (see :mod:`bgpctl_lab.jsonmatch`),
so a drill checks each hop (TGW, then edge) and the meter checks the data path. A check's budget may
differ per lab mode (``budget_by_mode``: "on region 2 within 2 s" holds for the controller, while
plain BGP is given its hold time). ``watch`` counts next-hop changes at a node during the drill
(:mod:`bgpctl_lab.route_watch`), so a drill can demand "no route change" (``route_changes_max: 0``).
A drill without ``fault`` only measures (active-active).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bgpctl.errors import BgpctlError


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Mode = Literal["controller", "no-controller", "no-controller-bfd"]
EdgeVariant = Literal["frr", "bird", "bird-no-addpath"]  # bgpctl_lab.topology.EDGE_VARIANTS


class MeterSpec(_M):
    source: str = Field("agents", alias="from", description="node the stream starts from")
    to: str = Field(description="Connect endpoint address")
    port: int = 9000
    fine: bool = Field(True, description="2 ms spacing: resolves gaps to ~2 ms")
    rate: int = 50
    flows: Annotated[int, Field(ge=1, le=64)] = 4
    seconds: Annotated[float, Field(gt=0, le=600)] = 30

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Check(_M):
    """A vtysh JSON subset that must hold on one node within a named budget."""

    name: str
    node: str
    vtysh: str = Field(description="a vtysh command ending in 'json'")
    expect: Any
    budget_s: Annotated[float, Field(gt=0, le=600, description="named wait budget, seconds")]
    budget_by_mode: dict[Mode, Annotated[float, Field(gt=0, le=600)]] = Field(
        default_factory=dict, description="a different budget in these lab modes"
    )
    not_before_by_mode: dict[Mode, Annotated[float, Field(ge=0, le=600)]] = Field(
        default_factory=dict, description="in these modes, holding sooner is a violation (rise/dwell)"
    )
    expect_by_edge: dict[EdgeVariant, Any] = Field(
        default_factory=dict,
        description="a different expectation with this edge (`bgpctl lab up --edge`): e.g. one next hop "
        "where the edge keeps one path per prefix (bird-no-addpath)",
    )

    def expected(self, edge: str) -> Any:
        return self.expect_by_edge.get(edge, self.expect)  # type: ignore[call-overload]

    @model_validator(mode="after")
    def _json(self) -> Check:
        if not self.vtysh.rstrip().endswith("json"):
            raise ValueError(f"check '{self.name}': the vtysh command must end in 'json' (structured state only)")
        return self

    def budget(self, mode: str) -> float:
        for m, b in self.budget_by_mode.items():
            if m == mode:
                return b
        return self.budget_s

    def not_before(self, mode: str) -> float | None:
        for m, b in self.not_before_by_mode.items():
            if m == mode:
                return b
        return None

    @model_validator(mode="after")
    def _window(self) -> Check:
        for m, nb in self.not_before_by_mode.items():
            if nb >= self.budget(m):
                raise ValueError(
                    f"check '{self.name}': not_before_by_mode.{m} ({nb:g} s) must be less than "
                    f"its budget in that mode ({self.budget(m):g} s)"
                )
        return self


class LinkFault(_M):
    node: str
    iface: str
    state: Literal["up", "down"]


class ImpairFault(_M):
    node: str
    iface: str
    delay_ms: float = 0
    jitter_ms: float = 0
    loss_pct: float = 0
    duplicate_pct: float = 0
    reorder_pct: float = 0
    burst_ms: float = Field(0, description="peak of queueing-delay bursts (see Impairment)")
    burst_every_s: float = Field(5, description="mean time between bursts")
    clear: bool = Field(False, description="remove the impairment instead")


class FrrFault(_M):
    node: str
    action: Literal["stop", "start"]


class BgpClearFault(_M):
    node: str
    peer: str


class Action(_M):
    """Exactly one fault (or restore) action, at ``at_s`` seconds after the meter started."""

    at_s: Annotated[float, Field(ge=0)]
    link: LinkFault | None = None
    links: Annotated[list[LinkFault], Field(min_length=1)] | None = Field(
        None, description="several links at once (e.g. both regions down)"
    )
    impair: list[ImpairFault] | None = None
    frr: FrrFault | None = None
    bgp_clear: BgpClearFault | None = None

    @model_validator(mode="after")
    def _one(self) -> Action:
        given = [k for k in ("link", "links", "impair", "frr", "bgp_clear") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of link, links, impair, frr, bgp_clear (got {given or 'none'})")
        return self


class Bounds(_M):
    """Pass/fail bounds on what the call meter measured, per lab mode."""

    interruption_max_ms: float | None = Field(None, description="longest per-flow gap")
    lost_max: int | None = None
    min_regions: Annotated[int, Field(ge=1)] | None = Field(
        None, description="at least this many regions answered the meter's flows"
    )
    route_changes_max: Annotated[int, Field(ge=0)] | None = Field(
        None, description="next-hop changes seen by the drill's `watch` (needs `watch`)"
    )
    route_withdrawals_max: Annotated[int, Field(ge=0)] | None = Field(
        None, description="times a watched prefix lost every next hop (fail-static: 0; needs `watch`)"
    )
    down_max: Annotated[int, Field(ge=0)] | None = Field(
        None, description="the daemon's 'down' judgements during the drill (controller mode)"
    )
    suspect_max: Annotated[int, Field(ge=0)] | None = Field(
        None, description="the daemon's 'suspect' judgements during the drill (controller mode)"
    )


class Watch(_M):
    """Count next-hop changes of ``prefixes`` in ``node``'s kernel FIB, polled every ``interval_ms``."""

    node: str = "edge"
    prefixes: Annotated[list[str], Field(min_length=1)]
    interval_ms: Annotated[float, Field(ge=5, le=1000)] = 20

    @model_validator(mode="after")
    def _prefixes(self) -> Watch:
        for p in self.prefixes:
            try:
                ipaddress.ip_network(p)
            except ValueError as e:
                raise ValueError(f"watch.prefixes: {p!r} is not a prefix ({e})") from e
        return self


class Drill(_M):
    name: str
    description: str = ""
    meter: MeterSpec
    watch: Watch | None = None
    steady: list[Check] = Field(default_factory=list)
    fault: Action | None = Field(None, description="none: the drill only measures (e.g. active-active)")
    expect: list[Check] = Field(default_factory=list)
    restore: Action | None = None
    recover: list[Check] = Field(default_factory=list)
    bounds: dict[Mode, Bounds] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _timeline(self) -> Drill:
        if self.fault is None:
            if self.restore is not None or self.recover:
                raise ValueError("restore and recover need a fault")
            return self
        if self.restore is not None and self.restore.at_s <= self.fault.at_s:
            raise ValueError("restore.at_s must come after fault.at_s")
        if self.recover and self.restore is None:
            raise ValueError("recover checks need a restore")
        last = self.restore.at_s if self.restore else self.fault.at_s
        if last >= self.meter.seconds:
            raise ValueError(
                f"the meter runs {self.meter.seconds:g} s but the last action is at {last:g} s: "
                "lengthen meter.seconds so the meter sees the recovery"
            )
        return self

    @model_validator(mode="after")
    def _watched(self) -> Drill:
        for field in ("route_changes_max", "route_withdrawals_max"):
            needs = [m for m, b in self.bounds.items() if getattr(b, field) is not None]
            if needs and self.watch is None:
                raise ValueError(f"bounds.{needs[0]}.{field} needs a `watch` (node and prefixes to count)")
        return self


class DrillError(BgpctlError):
    """A drill file is invalid, or a drill step did not hold."""


def load_drill(name_or_path: str, drills: Path) -> Drill:
    """Drill ``name_or_path``: a path to a file, or the name of one in ``drills`` (a topology's
    ``lab/drills``, :func:`bgpctl_lab.topology.drills_dir`)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = drills / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in drills.glob("*.yaml"))
        raise DrillError(f"no drill '{name_or_path}' ({path} does not exist); known drills: {', '.join(known)}")
    try:
        data = YAML(typ="safe").load(path.read_text())
    except YAMLError as e:
        raise DrillError(f"{path}: not valid YAML: {e}") from e
    try:
        return Drill.model_validate(data)
    except ValidationError as e:
        raise DrillError(f"{path}: invalid drill: {describe_errors(e)}; see lab/drills/*.yaml for examples") from e


def describe_errors(e: ValidationError) -> str:
    """One line per problem, each naming its field by path (``expect[0].budget_s: ...``)."""
    parts = []
    for err in e.errors():
        where = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err["loc"]).lstrip(".")
        parts.append(f"{where or '(drill)'}: {err['msg']}")
    return "; ".join(parts)
