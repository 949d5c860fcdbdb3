"""Failover drills as data: ``lab/drills/NAME.yaml``.

A drill starts the call meter, checks the steady state, injects one fault, waits for the
expected routing changes (each with a named budget), restores, and waits for the recovery.
The report says when each step held and what a call would have heard (the meter's gaps).

Expectations are JSON subsets of a vtysh ``... json`` output (see :mod:`bgpctl_lab.jsonmatch`),
so a drill checks each hop (TGW, then edge) and the meter checks the data path. A check's budget may
differ per lab mode (``budget_by_mode``: "on region 2 within 2 s" holds for the controller, while
plain BGP is given its hold time). The ``expect`` checks' budgets count from the moment the fault took
effect: for impairments when the first was in force (starting a delayer takes a moment, over a second on a
loaded host), else when it was applied; the ``recover`` checks' from the restore. ``watch`` counts next-hop
changes at a node during the drill (:mod:`bgpctl_lab.route_watch`), so a drill can demand "no route change"
(``route_changes_max: 0``), also per prefix (``route_changes_max_by_prefix``: the IPv4 prefixes 0 while the IPv6
one moves; the watch reads the IPv4 and IPv6 tables as its prefixes are). A ``blackhole`` fault may drop one IP
family only (``family: ipv6``). A drill without ``fault`` only measures (active-active).

Operations drills (controller mode only, ``modes: [controller]``): an action may be a request to the
daemon's control API (``control: {verb: drain, args: {...}}``, sent with :mod:`bgpctl.control.client` and
checked against the verb's arguments when the drill loads), or something done to the daemon itself
(``daemon: {action: restart | kill-9 | signal}``: SIGTERM and start again as ``systemctl restart`` does,
SIGKILL with the lab's systemd-like ``supervisor`` restarting it, or one signal). A check may ask the
daemon instead of FRR (``control: {verb: status}``, ``expect`` a JSON subset of the answer): that is how
"an override set before the restart is still in force after it" is checked. ``setup`` actions run before
the steady-state checks (so those check their effect) and ``cleanup`` actions after everything, also
when a step failed.

Reload drills: ``policy: {file: policies/NAME.yaml}`` replaces the daemon's policy file (the copy `lab up`
installed in cr's node directory, lab/services.yaml) with a file named relative to the drill file, and
``policy: {original: true}`` puts the installed one back; ``control: {verb: reload}`` then applies it. A
control action may expect a refusal (``refused: {match: REGEX}``: the daemon must refuse, and its message
must contain a match, e.g. the broken file's ``policy.yaml:LINE FIELD``). ``sessions`` reads the BGP
sessions of a peer (cr) on FRR nodes at the meter's start and end (established/dropped counters, UPDATEs
received), so a drill can demand "no session reset" and "at most N UPDATEs" (``session_resets_max``,
``updates_max``).

HA drills (the HA lab, ``containerlab-ha.yml``; docs/ha.md): ``daemon`` names the node of the daemon the drill
operates, asks and reads the log of (``cr1``, ``cr2``; default ``cr``), and each daemon or control action and
control check may name another (``node``); ``before`` are timed actions ahead of the fault (the primary's host
cut off 5 s before a region fails; the restore undoes them); an impairment may hit only UDP packets to one port
(``udp_dport``: 862, one controller's STAMP probes); ``flaps_max`` bounds how often a watched prefix went back,
between the fault and the restore, to next hops it already had since the fault.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bgpctl.control import protocol
from bgpctl.errors import BgpctlError
from bgpctl_lab.meter import MAX_FLOWS


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
    flows: Annotated[int, Field(ge=1, le=MAX_FLOWS)] = 4
    seconds: Annotated[float, Field(gt=0, le=600)] = 30

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


READ_VERBS = tuple(v for v, verb in protocol.VERBS.items() if not verb.changes_state)


def _checked_args(verb: str, args: dict[str, Any], reason_needed: bool) -> None:
    """``args`` as the daemon would check them (ValueError with its message), so a drill with a bad request
    is refused when it loads, not half-way through."""
    if verb not in protocol.VERBS:
        raise ValueError(f"unknown control verb {verb!r}; verbs: {', '.join(sorted(protocol.VERBS))}")
    known = protocol.VERBS[verb]
    if reason_needed and known.changes_state and "reason" not in args:
        raise ValueError(f"control {verb}: give args.reason (the daemon logs why)")
    try:
        protocol.check_args(known, args)
    except protocol.ProtocolError as e:
        raise ValueError(f"control {e.message}" + (f" ({e.hint})" if e.hint else "")) from None


class ControlQuery(_M):
    """A read-only request to the daemon's control API, for a check (``status``, ``routes``)."""

    verb: str = Field(description=f"one of {', '.join(READ_VERBS)}")
    args: dict[str, Any] = Field(default_factory=dict)
    node: str | None = Field(None, description="the node whose daemon is asked (default: the drill's `daemon`)")

    @model_validator(mode="after")
    def _verb(self) -> ControlQuery:
        if self.verb not in READ_VERBS:
            raise ValueError(f"a check asks with a read-only verb ({', '.join(READ_VERBS)}), not {self.verb!r}")
        _checked_args(self.verb, self.args, reason_needed=False)
        return self


class Check(_M):
    """A JSON subset that must hold within a named budget: of a vtysh command's output on one node, or of
    the daemon's answer to a control request (``control``)."""

    name: str
    node: str | None = Field(None, description="the node of a vtysh check")
    vtysh: str | None = Field(None, description="a vtysh command ending in 'json'")
    control: ControlQuery | None = Field(None, description="ask the daemon instead (controller mode)")
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
        if (self.vtysh is None) == (self.control is None):
            raise ValueError(f"check '{self.name}': give exactly one of vtysh (with node) or control")
        if self.vtysh is not None:
            if self.node is None:
                raise ValueError(f"check '{self.name}': a vtysh check needs the node to ask")
            if not self.vtysh.rstrip().endswith("json"):
                raise ValueError(f"check '{self.name}': the vtysh command must end in 'json' (structured state only)")
        elif self.node is not None:
            raise ValueError(f"check '{self.name}': a control check asks the daemon, not a node: remove node")
        return self

    @property
    def where(self) -> str:
        """The node asked, or ``daemon`` for a control check."""
        return self.node if self.node is not None else "daemon"

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
    udp_dport: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        None, description="only UDP packets to this port (e.g. 862: the STAMP probes of the node's controller)"
    )
    clear: bool = Field(False, description="remove the impairment instead")


class BlackholeFault(_M):
    """Drop every packet in and out of ``iface`` while its link and every BGP session stay up; with ``family``
    only IPv4 or only IPv6 (:func:`bgpctl_lab.nft.render_blackhole`): one family breaks, the other goes on."""

    node: str
    iface: str
    state: Literal["on", "off"]
    family: Literal["all", "ipv4", "ipv6"] = "all"


class FrrFault(_M):
    node: str
    action: Literal["stop", "start"]


class BgpClearFault(_M):
    node: str
    peer: str


class Refusal(_M):
    """The daemon must refuse the request, with a message that contains a match of ``match`` (re.search)."""

    match: str = Field(min_length=1, description="a regular expression the refusal's message must contain")

    @field_validator("match")
    @classmethod
    def _regex(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"not a regular expression: {e}") from None
        return v

    def problem(self, message: str) -> str | None:
        """None when ``message`` is the refusal expected, else what is wrong."""
        if re.search(self.match, message):
            return None
        return f"the refusal does not match {self.match!r}: {message!r}"


class ControlOp(_M):
    """A request to the daemon's control API (:func:`bgpctl.control.client.call`), e.g. a drain."""

    verb: str
    args: dict[str, Any] = Field(default_factory=dict, description="the verb's arguments; reason for a change")
    refused_ok: bool = Field(False, description="a refusal is fine (a cleanup that undoes what may already be undone)")
    refused: Refusal | None = Field(None, description="the daemon must refuse it, saying this (a broken reload)")
    node: str | None = Field(None, description="the node whose daemon is asked (default: the drill's `daemon`)")

    @model_validator(mode="after")
    def _args(self) -> ControlOp:
        _checked_args(self.verb, self.args, reason_needed=True)
        if self.refused is not None and self.refused_ok:
            raise ValueError("give refused (a refusal is expected) or refused_ok (either is fine), not both")
        return self


class PolicyOp(_M):
    """Replace the daemon's policy file (cr's ``{node_dir}/policy.yaml``, lab/services.yaml ``install``) before a
    ``control: {verb: reload}``: with ``file`` (relative to the drill file's directory), or with the file
    ``lab up`` installed (``original: true``)."""

    file: str | None = Field(None, description="a policy file, relative to the drill file")
    original: bool = Field(False, description="the policy `lab up` installed (policies/lab.yaml)")

    @field_validator("file")
    @classmethod
    def _file(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return None
        base = (info.context or {}).get("drill_dir")
        path = Path(v) if base is None or Path(v).is_absolute() else Path(base) / v
        if not path.is_file():
            raise ValueError(f"{path} is not a file: name a policy file relative to the drill file")
        return str(path.resolve())

    @model_validator(mode="after")
    def _one(self) -> PolicyOp:
        if (self.file is not None) == self.original:
            raise ValueError("give file (a policy to reload) or original: true (the one `lab up` installed)")
        return self


DaemonSignal = Literal["HUP", "TERM", "USR1", "USR2"]


class DaemonOp(_M):
    """Something done to the daemon process (controller mode).

    * ``restart``: SIGTERM, wait until it (and its ExaBGP) exited, start it again (``systemctl restart``);
    * ``kill-9``: SIGKILL; the drill's ``supervisor`` starts it again (systemd's ``Restart=always``);
    * ``signal``: send ``signal`` (with a supervisor, TERM is a stop that the supervisor restarts)."""

    action: Literal["restart", "kill-9", "signal"]
    signal: DaemonSignal | None = None
    node: str | None = Field(None, description="the node whose daemon (default: the drill's `daemon`; HA: cr1, cr2)")
    grace_s: Annotated[float, Field(gt=0, le=60)] = Field(
        15, description="restart: how long the daemon may take to stop before it is killed"
    )

    @model_validator(mode="after")
    def _signal(self) -> DaemonOp:
        if (self.action == "signal") != (self.signal is not None):
            raise ValueError("daemon: give signal with action 'signal' (and only then)")
        return self


OPS = ("link", "links", "impair", "blackhole", "frr", "bgp_clear", "control", "daemon", "policy")


class Op(_M):
    """Exactly one thing done to the lab: a fault, a restore, a control request or a daemon operation."""

    link: LinkFault | None = None
    links: Annotated[list[LinkFault], Field(min_length=1)] | None = Field(
        None, description="several links at once (e.g. both regions down)"
    )
    impair: list[ImpairFault] | None = None
    blackhole: BlackholeFault | None = None
    frr: FrrFault | None = None
    bgp_clear: BgpClearFault | None = None
    control: ControlOp | None = None
    daemon: DaemonOp | None = None
    policy: PolicyOp | None = None

    @model_validator(mode="after")
    def _one(self) -> Op:
        given = [k for k in OPS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(OPS)} (got {given or 'none'})")
        return self

    @property
    def operates(self) -> bool:
        """It talks to the daemon or acts on it (or its policy file): controller mode only."""
        return self.control is not None or self.daemon is not None or self.policy is not None


class Action(Op):
    """One :class:`Op` at ``at_s`` seconds after the meter started (the fault, the restore)."""

    at_s: Annotated[float, Field(ge=0)]


class Supervisor(_M):
    """Run the daemon under a systemd-like supervisor for the drill (``Restart=always``, ``RestartSec``):
    what brings it back after ``kill -9``. The lab's plain daemon is back after the drill."""

    restart_sec: Annotated[float, Field(ge=0, le=30)] = 0.5
    node: str | None = Field(None, description="the node whose daemon is supervised (default: the drill's `daemon`)")


class Bounds(_M):
    """Pass/fail bounds on what the call meter measured, per lab mode."""

    interruption_max_ms: float | None = Field(None, description="longest per-flow gap")
    lost_max: int | None = None
    lost_per_flow_max: Annotated[int, Field(ge=0)] | None = Field(
        None, description="packets any one flow (one call) may lose"
    )
    min_regions: Annotated[int, Field(ge=1)] | None = Field(
        None, description="at least this many regions answered the meter's flows"
    )
    route_changes_max: Annotated[int, Field(ge=0)] | None = Field(
        None, description="next-hop changes seen by the drill's `watch` (needs `watch`)"
    )
    route_withdrawals_max: Annotated[int, Field(ge=0)] | None = Field(
        None, description="times a watched prefix lost every next hop (fail-static: 0; needs `watch`)"
    )
    flaps_max: Annotated[int, Field(ge=0)] | None = Field(
        None,
        description="times a watched prefix went back, between the fault and the restore, to next hops it had "
        "already had since the fault (A -> B -> A: one flap; needs `watch`)",
    )
    route_changes_max_by_prefix: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        description="next-hop changes of each named prefix alone (each one of the `watch` prefixes): e.g. 0 for "
        "the IPv4 prefixes when only IPv6 breaks",
    )
    down_max: Annotated[int, Field(ge=0)] | None = Field(
        None, description="the daemon's 'down' judgements during the drill (controller mode)"
    )
    suspect_max: Annotated[int, Field(ge=0)] | None = Field(
        None, description="the daemon's 'suspect' judgements during the drill (controller mode)"
    )
    session_resets_max: Annotated[int, Field(ge=0)] | None = Field(
        None, description="BGP session resets seen by the drill's `sessions` (needs `sessions`)"
    )
    updates_max: Annotated[int, Field(ge=0)] | None = Field(
        None, description="UPDATE messages the `sessions` nodes received from the peer, all together (needs `sessions`)"
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


class Sessions(_M):
    """Read the BGP session with ``peer`` on each FRR node of ``nodes`` (``show bgp neighbors PEER json``) at
    the meter's start and end: connections established and dropped (a reset moves them) and UPDATEs received."""

    nodes: Annotated[list[str], Field(min_length=1)]
    peer: str = Field(description="the address of the speaker whose sessions are read (cr: 198.18.1.2)")

    @field_validator("peer")
    @classmethod
    def _peer(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_address(v))
        except ValueError as e:
            raise ValueError(f"{v!r} is not an IP address ({e})") from None


class Drill(_M):
    name: str
    description: str = ""
    modes: list[Mode] | None = Field(None, description="the lab modes it runs in (default: every mode)")
    daemon: str = Field(
        "cr",
        description="the node of the controller-mode daemon the drill asks, operates and reads the log of "
        "(the HA lab, containerlab-ha.yml: cr1 or cr2); the lab must have it",
    )
    supervisor: Supervisor | None = None
    meter: MeterSpec
    watch: Watch | None = None
    sessions: Sessions | None = None
    setup: list[Op] = Field(default_factory=list, description="done before the steady-state checks")
    steady: list[Check] = Field(default_factory=list)
    before: list[Action] = Field(
        default_factory=list,
        description="actions on the drill's timeline before the fault (e.g. the primary controller's host cut off "
        "5 s before a region fails); the restore undoes them",
    )
    fault: Action | None = Field(None, description="none: the drill only measures (e.g. active-active)")
    expect: list[Check] = Field(default_factory=list)
    restore: Action | None = None
    recover: list[Check] = Field(default_factory=list)
    cleanup: list[Op] = Field(default_factory=list, description="done at the end, also after a failed step")
    bounds: dict[Mode, Bounds] = Field(default_factory=dict)

    def ops(self) -> list[tuple[str, Op]]:
        """Every operation with where it is (``setup[0]``, ``fault``, ...)."""
        out: list[tuple[str, Op]] = [(f"setup[{i}]", o) for i, o in enumerate(self.setup)]
        out += [(f"before[{i}]", o) for i, o in enumerate(self.before)]
        out += [(k, o) for k, o in (("fault", self.fault), ("restore", self.restore)) if o is not None]
        return out + [(f"cleanup[{i}]", o) for i, o in enumerate(self.cleanup)]

    def operates(self) -> bool:
        """It talks to the daemon or acts on it (an action, a control check, a supervisor)."""
        checks = (c for phase in (self.steady, self.expect, self.recover) for c in phase)
        return self.supervisor is not None or any(o.operates for _, o in self.ops()) or any(c.control for c in checks)

    @model_validator(mode="after")
    def _controller_only(self) -> Drill:
        asks = [
            f"{phase}[{i}]"
            for phase in ("steady", "expect", "recover")
            for i, c in enumerate(getattr(self, phase))
            if c.control
        ]
        operating = [where for where, o in self.ops() if o.operates] + asks
        if (operating or self.supervisor) and self.modes != ["controller"]:
            what = operating[0] if operating else "supervisor"
            raise ValueError(
                f"{what} needs the daemon: add `modes: [controller]` (the drill runs in controller mode only)"
            )
        for where, o in self.ops():
            if o.daemon is not None and o.daemon.action == "kill-9" and self.supervisor is None:
                raise ValueError(f"{where}: kill-9 needs a `supervisor` to start the daemon again (Restart=always)")
            if o.daemon is not None and o.daemon.signal == "TERM" and self.supervisor is None:
                raise ValueError(
                    f"{where}: signal TERM stops the daemon for good without a `supervisor`: use action restart"
                )
        return self

    @model_validator(mode="after")
    def _timeline(self) -> Drill:
        if self.fault is None:
            if self.restore is not None or self.recover or self.before:
                raise ValueError("before, restore and recover need a fault")
            return self
        if self.restore is not None and self.restore.at_s <= self.fault.at_s:
            raise ValueError("restore.at_s must come after fault.at_s")
        for i, b in enumerate(self.before):
            if b.at_s >= self.fault.at_s or (i and b.at_s < self.before[i - 1].at_s):
                raise ValueError(f"before[{i}].at_s must come before fault.at_s, in order")
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
        for field in ("route_changes_max", "route_withdrawals_max", "flaps_max", "route_changes_max_by_prefix"):
            needs = [m for m, b in self.bounds.items() if getattr(b, field) not in (None, {})]
            if needs and self.watch is None:
                raise ValueError(f"bounds.{needs[0]}.{field} needs a `watch` (node and prefixes to count)")
        watched = {str(ipaddress.ip_network(p)) for p in self.watch.prefixes} if self.watch else set()
        for m, b in self.bounds.items():
            for p in b.route_changes_max_by_prefix:
                try:
                    net = str(ipaddress.ip_network(p))
                except ValueError as e:
                    raise ValueError(f"bounds.{m}.route_changes_max_by_prefix: {p!r} is not a prefix ({e})") from e
                if net not in watched:
                    raise ValueError(
                        f"bounds.{m}.route_changes_max_by_prefix: {p} is not one of watch.prefixes "
                        f"({', '.join(self.watch.prefixes) if self.watch else 'none'})"
                    )
        for field in ("session_resets_max", "updates_max"):
            needs = [m for m, b in self.bounds.items() if getattr(b, field) is not None]
            if needs and self.sessions is None:
                raise ValueError(f"bounds.{needs[0]}.{field} needs `sessions` (the nodes and the peer to read)")
        for where, o in self.ops():
            if o.control is not None and o.control.refused is not None and not where.startswith(("fault", "restore")):
                raise ValueError(f"{where}.control.refused: only the fault or the restore may expect a refusal")
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
        return Drill.model_validate(data, context={"drill_dir": path.parent})
    except ValidationError as e:
        raise DrillError(f"{path}: invalid drill: {describe_errors(e)}; see lab/drills/*.yaml for examples") from e


def describe_errors(e: ValidationError) -> str:
    """One line per problem, each naming its field by path (``expect[0].budget_s: ...``)."""
    parts = []
    for err in e.errors():
        where = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err["loc"]).lstrip(".")
        parts.append(f"{where or '(drill)'}: {err['msg']}")
    return "; ".join(parts)
