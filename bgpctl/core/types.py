"""Value types that flow through the pure core: samples -> stats -> health -> routes.

Everything here is immutable and free of I/O, so decide() and plan() can be property-tested.
Times are seconds as floats on one monotonic clock chosen by the caller.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

MEASURED_V6 = "ipv6"
"""``PathKey.family`` of a dual-stack path's IPv6 measurement (see :class:`PathKey`)."""


class PathKey(NamedTuple):
    """One measured path of one service: (service, region, path[, family]).

    ``family`` is empty for the path as its target's ``address`` measures it (IPv4 or IPv6: whatever that
    address is), and :data:`MEASURED_V6` for the IPv6 measurement of a dual-stack path (the target's
    ``address_v6`` from the path's ``probe_source_v6``), judged apart: an IPv6 path can be down while IPv4
    on the same link is up. Keys without a family print and parse as before (``service/region/path``).
    """

    service: str
    region: str
    path: str
    family: str = ""

    def __str__(self) -> str:
        base = f"{self.service}/{self.region}/{self.path}"
        return f"{base}/{self.family}" if self.family else base

    @property
    def labels(self) -> tuple[str, str, str]:
        """(service, region, path) as metric labels: an IPv6 measurement's path label is ``PATH/ipv6``."""
        return (self.service, self.region, f"{self.path}/{self.family}" if self.family else self.path)


@dataclass(frozen=True, slots=True)
class Sample:
    """One probe: sent at ``sent`` (seconds), answered at ``received`` or lost (None)."""

    seq: int
    sent: float
    received: float | None

    @property
    def rtt(self) -> float | None:
        return None if self.received is None else self.received - self.sent


@dataclass(frozen=True, slots=True)
class PathStats:
    """What a window of samples says about one path. ``None`` where there is nothing to say."""

    samples: int  # settled samples in the window (answered, or lost past the timeout)
    lost: int
    consecutive_lost: int  # lost probes since the last answer, counted up to now
    rtt_p50_ms: float | None
    rtt_p95_ms: float | None
    jitter_ms: float | None  # RFC 3550 interarrival jitter over the window
    mos: float | None  # ITU-T G.107 E-model estimate, see bgpctl.core.mos
    overdue: int = 0  # probes sent after the last answer, still unanswered past the adaptive RTO
    rto_ms: float | None = None  # the adaptive RTO that made them overdue (see PathWindow.sent)
    loss_pct_low: float | None = None  # lower confidence bound of the loss (see bgpctl.core.stats)
    mos_high: float | None = None  # the MOS at loss_pct_low: the best the window is compatible with
    last_rtt_ms: float | None = None  # RTT of the newest answered probe (highest sequence number)
    holes: int = 0  # probes before the last answer still unanswered past the adaptive RTO (not timed out)

    @property
    def unanswered(self) -> int:
        """Probes in a row with no answer: timed out (consecutive_lost) plus overdue ones."""
        return self.consecutive_lost + self.overdue

    @property
    def loss_pct(self) -> float | None:
        return None if self.samples == 0 else 100.0 * self.lost / self.samples


class Health(enum.StrEnum):
    """decide()'s verdict on one path. UNKNOWN until there is enough data to judge.

    SUSPECT: the last probes are unanswered past the adaptive RTO, but not (yet) past their timeout.
    plan() de-prefers a suspect path like a degraded one (make-before-break, never withdrawn); an
    answer clears the suspicion at once, a run of timeouts confirms DOWN (see bgpctl.core.decide).
    """

    UNKNOWN = "unknown"
    UP = "up"
    DEGRADED = "degraded"
    SUSPECT = "suspect"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a state changed: which measurement crossed which threshold."""

    metric: str  # "consecutive_lost", "loss_pct", "rtt_ms", "jitter_ms", "mos", "rise", "hold_down", ...
    value: float | None
    threshold: float | None
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class PathHealth:
    """The state decide() keeps per path between calls."""

    health: Health = Health.UNKNOWN
    since: float = 0.0  # when this health was entered
    clean_since: float | None = None  # since when measurements are good enough to improve
    down_until: float = 0.0  # hold-down: not better than DOWN before this time
    reasons: tuple[Reason, ...] = ()
    clean_level: Health | None = None  # the better level that clean_since vouches for (see core.decide)
    beneath: PathHealth | None = None  # SUSPECT only: the judgement the suspicion overlays (see core.decide)


@dataclass(frozen=True, slots=True)
class Transition:
    """One health change, for logs, metrics and replay timelines."""

    key: PathKey
    at: float
    old: Health
    new: Health
    reasons: tuple[Reason, ...]


@dataclass(frozen=True, slots=True)
class SignalMark:
    """What an outside signal says of a region (``path`` None: every path of it) or of one path: DEGRADED or
    DOWN, with the signal's own reason (see :mod:`bgpctl.signals` and decide()'s rule 0b)."""

    signal: str  # the name of the signal in the policy's ``signals`` section
    region: str
    path: str | None
    health: Health  # Health.DEGRADED or Health.DOWN
    reason: str

    @property
    def target(self) -> str:
        return f"region {self.region}" if self.path is None else f"path {self.region}/{self.path}"

    def __str__(self) -> str:
        return f"signal {self.signal}: {self.target} {self.health.value}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Decision:
    """decide()'s output: the new health of every path and the changes since the last call."""

    health: dict[PathKey, PathHealth]
    transitions: tuple[Transition, ...] = ()


# --------------------------------------------------------------------------------------------
# routes


@dataclass(frozen=True, slots=True, order=True)
class RouteKey:
    """A route as BGP identifies it towards one peer: prefix + ADD-PATH path id (0 without ADD-PATH)."""

    prefix: str
    path_id: int = 0


@dataclass(frozen=True, slots=True)
class RouteAttrs:
    next_hop: str
    as_path: tuple[int, ...]
    med: int | None = None
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    weight: int | None = None  # the region's weight: the link-bandwidth extended community (edge routes only)


class ChangeKind(enum.StrEnum):
    ANNOUNCE = "announce"  # new route, or new attributes for an existing one
    WITHDRAW = "withdraw"


@dataclass(frozen=True, slots=True)
class RouteChange:
    peer: str
    kind: ChangeKind
    key: RouteKey
    attrs: RouteAttrs | None  # None for withdraw
    why: str = ""


Rib = dict[str, dict[RouteKey, RouteAttrs]]
"""peer name -> routes announced (or to be announced) to that peer."""


@dataclass(frozen=True, slots=True)
class Plan:
    """plan()'s output: the RIB wanted now and the ordered changes that get there from the last one."""

    desired: Rib
    changes: tuple[RouteChange, ...]  # make-before-break order: announcements first, withdrawals last
    deferred: tuple[RouteChange, ...] = ()  # held back by the route-change rate limit
    notes: tuple[str, ...] = ()  # fail-static kept, freeze, overrides applied, ...
    change_times: tuple[float, ...] = field(default_factory=tuple)  # for the rate limit's sliding minute
    held_back: bool = False  # HA: planned handing over (bgpctl.core.ha.held_back): every route made worse
    # per (service, IP version): the paths its routes send traffic to (the preferred ones; with none up, the
    # degraded ones, or those whose routes degraded-static keeps); what the next plan's degraded-static reads
    in_use: Mapping[tuple[str, int], frozenset[PathKey]] = field(default_factory=dict)
