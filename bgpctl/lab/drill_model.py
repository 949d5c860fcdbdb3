"""Failover drills as data: ``lab/drills/NAME.yaml``.

A drill starts the call meter, checks the steady state, injects one fault, waits for the
expected routing changes (each with a named budget), restores, and waits for the recovery.
The report says when each step held and what a call would have heard (the meter's gaps).

Expectations are JSON subsets of a vtysh ``... json`` output (see :mod:`bgpctl.lab.jsonmatch`),
so a drill checks each hop (TGW, then edge) and the meter checks the data path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bgpctl.errors import BgpctlError


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    budget_s: Annotated[float, Field(gt=0, le=600)]

    @model_validator(mode="after")
    def _json(self) -> Check:
        if not self.vtysh.rstrip().endswith("json"):
            raise ValueError(f"check '{self.name}': the vtysh command must end in 'json' (structured state only)")
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
    impair: list[ImpairFault] | None = None
    frr: FrrFault | None = None
    bgp_clear: BgpClearFault | None = None

    @model_validator(mode="after")
    def _one(self) -> Action:
        given = [k for k in ("link", "impair", "frr", "bgp_clear") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of link, impair, frr, bgp_clear (got {given or 'none'})")
        return self


class Bounds(_M):
    """Pass/fail bounds on what the call meter measured, per lab mode."""

    interruption_max_ms: float | None = Field(None, description="longest per-flow gap")
    lost_max: int | None = None


class Drill(_M):
    name: str
    description: str = ""
    meter: MeterSpec
    steady: list[Check] = Field(default_factory=list)
    fault: Action
    expect: list[Check] = Field(default_factory=list)
    restore: Action | None = None
    recover: list[Check] = Field(default_factory=list)
    bounds: dict[Literal["controller", "no-controller", "no-controller-bfd"], Bounds] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _timeline(self) -> Drill:
        if self.restore is not None and self.restore.at_s <= self.fault.at_s:
            raise ValueError("restore.at_s must come after fault.at_s")
        last = self.restore.at_s if self.restore else self.fault.at_s
        if last >= self.meter.seconds:
            raise ValueError(f"the meter runs {self.meter.seconds:g} s but the last action is at {last:g} s: "
                             "lengthen meter.seconds so the meter sees the recovery")
        return self


class DrillError(BgpctlError):
    """A drill file is invalid, or a drill step did not hold."""


def drills_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "lab" / "drills"


def load_drill(name_or_path: str) -> Drill:
    path = Path(name_or_path)
    if not path.suffix:
        path = drills_dir() / f"{name_or_path}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in drills_dir().glob("*.yaml"))
        raise DrillError(f"no drill '{name_or_path}' ({path} does not exist); known drills: {', '.join(known)}")
    try:
        data = YAML(typ="safe").load(path.read_text())
    except YAMLError as e:
        raise DrillError(f"{path}: not valid YAML: {e}") from e
    try:
        return Drill.model_validate(data)
    except ValueError as e:
        raise DrillError(f"{path}: {e}") from e
