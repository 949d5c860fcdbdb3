"""plan(): the pure step from path health to the BGP announcements each peer should hold.

``plan(policy, health, previous, now, overrides)`` reads no clock, no file and no socket; the same
inputs always give the same :class:`~bgpctl.core.types.Plan`.

Path state, per (service, region, path), from decide()'s health (a missing key is UNKNOWN):

* DOWN -> DOWN; DEGRADED and SUSPECT -> DEGRADED (de-preferred, never withdrawn: make-before-break);
  UNKNOWN -> no state at all: the path is not announced.
* UP -> PREFERRED or STANDBY. active-active: in every region, the UP path with the lowest
  ``priority`` (ties: the policy's path order) is PREFERRED, the other UP paths STANDBY.
  active-standby: only the best UP path of the first region of ``order`` that has one is
  PREFERRED (regions missing from ``order`` follow it, in the policy's region order).
* Weights (``services.X.weights``, or ``overrides.weights`` which replaces them per service): an
  active-active service's routes to the edge carry their region's weight (rendered by the speaker as
  the link-bandwidth extended community, so that the edge splits traffic in that ratio among the routes
  it installs together). A region of weight 0 is not PREFERRED while a region of weight above 0 has an
  UP path (its UP paths are STANDBY, as drained); its routes carry no weight. The share of a region
  whose path is not PREFERRED (degraded, down, drained) goes to the others by itself: the edge only
  splits among the routes it installs together, and plan() adds no state machine of its own.
* Overrides: ``drain(region[, path])`` makes an UP path STANDBY (never withdrawn; the other UP
  paths of the region compete without it). ``pin(service -> region)`` makes that region's best
  undrained UP path the only PREFERRED one of the service while the region has one; otherwise the
  normal rules apply and a note says so. ``freeze``: the desired RIB is the previous one, nothing
  changes (except the allowlist guard below), a note says so.

Routes:

* To every ``edge`` peer: every service prefix via every path that has a state, with
  next hop = the path's ``next_hop``, AS path = ``(local_as,) * (1 + prepend)``, MED, communities and
  large communities from ``actions[state].edge``; a ``withdraw`` action means no route.
* With ADD-PATH ``send`` or ``send/receive`` on the peer *and negotiated* in the prefix's family
  (``add_path``, below) every path gets its own path id: its 1-based position in the policy's
  region/path order, so ids never move with health. Without ADD-PATH the peer gets only the single
  best route per prefix (path id 0), ranked by state (preferred, standby, degraded, down), then
  AS-path length, then MED (missing = 0), then the policy's region/path order.
* ``add_path``: per peer, the families in which its session negotiated ADD-PATH with us sending (what
  the speaker read from the session's OPENs). A peer missing from it has negotiated nothing: a peer
  that does not accept several paths keeps only the last one sent per prefix, so several paths to it
  would leave it the standby or degraded one, and withdrawing one of them would withdraw the prefix.
  ``None`` means "as the policy configures" (offline planning: ``bgpctl policy plan``, golden plans).
  When a peer's ADD-PATH state changes (the daemon forgets it while the session is down, so this
  happens while no route reaches the peer, or as it comes up with ADD-PATH) its changes are not
  rate-limited: a RIB half in one mode and half in the other is the defect itself.
* To every ``transit-gateway`` peer: ``corporate.prefixes`` with next hop ``corporate.next_hop`` and
  ``actions[state].transit-gateway`` of the path(s) whose ``peer`` is that TGW, the state taken from
  ``corporate.follow_service``. Same ADD-PATH rule.
* A prefix goes only to peers that carry its address family.

HA (``policy.ha``, bgpctl/core/ha.py): on a secondary controller every route above is made worse by
``ha.secondary`` (more prepends, a higher MED, the transit gateways' communities replaced), so that peers
prefer every route of the primary (docs/ha.md).

Guards:

* Fail-static (``guards.fail_static``): when no path of a service is announceable (every path DOWN or
  UNKNOWN) and a previous plan exists, that service's prefixes keep exactly the previous plan's
  routes on every peer, and a note says so. The same for the corporate prefixes when
  ``follow_service`` has no announceable path. With ``fail_static: false`` the routes follow the
  down action (normally: withdrawn), with a note.
* Degraded-static: when no path of a service (per IP version) is UP and every path the previous plan's
  routes sent its traffic to (``Plan.in_use``: the preferred paths, or with none up the degraded ones) is
  still DEGRADED or SUSPECT, that service's prefixes (and the corporate prefixes that follow it) keep
  exactly the previous plan's routes, and a note says so. Moving between paths that are all degraded buys
  nothing, and an impairment common to every path (the controller's own probe sources) degrades them one
  after the other: without this rule the first to cross its threshold would move the service off it and
  the next one would move it back (a flap, docs/ha.md). A suspicion holds too: with every other path
  degraded, the move waits for the timeouts to confirm it (at most the probe's timeout more). A path in use
  confirmed DOWN, or any path UP again, ends the rule in that very call: the normal rules apply. So does
  the end of an HA hand-over (the previous routes carry its penalty).
* Allowlist: no route outside ``guards.allowlist`` is ever in the desired RIB or in an announcement,
  whatever the inputs (also policies built without validation, also a previous plan). A planned
  route outside it is dropped with a note; a previously announced one is withdrawn at once. Those
  guard withdrawals go first and are never deferred: the allowlist outranks the rate limit.

Changes: the difference between ``previous.desired`` and the new desired RIB, per peer, in
make-before-break order: first announcements that are new or at least as preferred as what they
replace (most preferred first), then announcements that de-prefer a route (prepend/MED), then
withdrawals. ``why`` names the path and state behind each change.

Rate limit: at most ``guards.max_route_changes_per_minute`` changes in any 60 s sliding window;
``Plan.change_times`` carries the times of the changes of the last minute from call to call. Over
budget, the changes are applied in the order above up to the budget and the rest go to
``deferred``; ``desired`` is then the previous desired RIB plus the applied changes only (it is
what the speaker will hold), so the next call plans the deferred ones again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from bgpctl.core import ha
from bgpctl.core.types import (
    MEASURED_V6,
    ChangeKind,
    Health,
    PathHealth,
    PathKey,
    Plan,
    Rib,
    RouteAttrs,
    RouteChange,
    RouteKey,
)
from bgpctl.policy.allowlist import Network, allowed, allowlist_networks, parse_network
from bgpctl.policy.model import (
    AddPath,
    Announce,
    Family,
    IPAddress,
    Mode,
    Overrides,
    PathState,
    Peer,
    PeerRole,
    Policy,
    Service,
)

RATE_WINDOW_S = 60.0
"""The rate limit's sliding window, seconds."""

STATE_RANK: dict[PathState, int] = {
    PathState.PREFERRED: 0,
    PathState.STANDBY: 1,
    PathState.DEGRADED: 2,
    PathState.DOWN: 3,
}
"""Lower is more preferred."""

_ADD_PATH_SENDS = frozenset({AddPath.SEND, AddPath.BOTH})
_ANNOUNCEABLE = frozenset({PathState.PREFERRED, PathState.STANDBY, PathState.DEGRADED})
_HELD = frozenset({Health.DEGRADED, Health.SUSPECT})
"""The health of a path in use that degraded-static keeps using while no path is up."""
_GROUP_MAKE, _GROUP_DEPREFER, _GROUP_WITHDRAW = 0, 1, 2


@dataclass(frozen=True, slots=True)
class RouteSource:
    """What a planned route stands for: one path of one service, in one state."""

    path: PathKey
    state: PathState


@dataclass(frozen=True, slots=True)
class Ideal:
    """The RIB the health asks for, before fail-static, the allowlist and the rate limit."""

    routes: Rib
    sources: dict[tuple[str, RouteKey], RouteSource]
    states: dict[PathKey, PathState | None]
    dark: frozenset[tuple[str, int]]  # (service, IP version) whose routes of that version have no announceable path
    notes: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# small helpers on the policy


def path_ids(policy: Policy) -> dict[tuple[str, str], int]:
    """(region, path) -> ADD-PATH path id: 1-based position in the policy's region/path order."""
    ids: dict[tuple[str, str], int] = {}
    for region_name, region in policy.regions.items():
        for path_name in region.paths:
            ids[(region_name, path_name)] = len(ids) + 1
    return ids


def region_order(policy: Policy, service: Service) -> list[str]:
    """Regions in preference order for active-standby: ``order`` first, then the rest as written."""
    listed = [r for r in service.order if r in policy.regions]
    return listed + [r for r in policy.regions if r not in listed]


def _service_paths(policy: Policy, service_name: str) -> list[PathKey]:
    return [PathKey(service_name, r, p) for r, region in policy.regions.items() for p in region.paths]


def health_key(policy: Policy, service_name: str, region: str, path: str, version: int) -> PathKey:
    """The measurement whose health a route of IP ``version`` through (region, path) follows for a service:
    for IPv6 routes in a dual-stack region (the service's probe target there has ``address_v6``), the
    path's IPv6 measurement; otherwise the path's own (a family without probes of its own shares them)."""
    service = policy.services.get(service_name)
    target = service.probe.targets.get(region) if service is not None else None
    if version == 6 and target is not None and target.address_v6 is not None:
        return PathKey(service_name, region, path, MEASURED_V6)
    return PathKey(service_name, region, path)


def _route_keys(policy: Policy, service_name: str, version: int) -> list[PathKey]:
    """The measurements a service's routes of IP ``version`` follow, one per path, in policy order."""
    return [
        health_key(policy, service_name, r, p, version) for r, region in policy.regions.items() for p in region.paths
    ]


def _measured_groups(policy: Policy, service_name: str) -> list[list[PathKey]]:
    """The keys of a service, per measured family: its paths, then (dual-stack) their IPv6 measurements.
    Each group picks its preferred paths on its own."""
    groups = [_service_paths(policy, service_name)]
    v6 = [k for k in _route_keys(policy, service_name, 6) if k.family]
    if v6:
        groups.append(v6)
    return groups


def _network(value: object) -> Network | None:
    return parse_network(str(value))


@lru_cache(maxsize=8192)
def route_order(key: RouteKey) -> tuple[int, int, int, str, int]:
    """Sort key for routes: by address family, network address, prefix length, then path id."""
    net = _network(key.prefix)
    if net is None:
        return (9, 0, 0, key.prefix, key.path_id)
    return (net.version, int(net.network_address), net.prefixlen, "", key.path_id)


def _carries(families: Iterable[Family], prefix: str) -> bool:
    net = _network(prefix)
    if net is None:  # let the allowlist guard drop it, with its note
        return True
    return Family.of(net) in families


def _find_peer(policy: Policy, name: str) -> Peer | None:
    for p in policy.peers:
        if p.name == name:
            return p
    return None


def _attrs(policy: Policy, action: Announce, next_hop: object, role: PeerRole, weight: int | None = None) -> RouteAttrs:
    attrs = RouteAttrs(
        next_hop=str(next_hop),
        as_path=(policy.speaker.local_as,) * (1 + action.prepend),
        med=action.med,
        communities=tuple(action.communities),
        large_communities=tuple(action.large_communities),
        weight=weight or None,
    )
    return ha.apply_role(policy, role, attrs)  # a secondary controller's routes are worse (docs/ha.md)


def service_weights(policy: Policy, name: str, overrides: Overrides | None = None) -> Mapping[str, int] | None:
    """The weights in force for service ``name``: the override's, else the service's own; None = equal."""
    ov = policy.overrides if overrides is None else overrides
    service = policy.services[name]
    if service.mode is not Mode.ACTIVE_ACTIVE:
        return None
    return ov.weights.get(name, service.weights)


def _preference(rank: int, attrs: RouteAttrs) -> tuple[int, int, int]:
    return (rank, len(attrs.as_path), attrs.med or 0)


# --------------------------------------------------------------------------------------------
# path states


def _drained(key: PathKey, overrides: Overrides) -> bool:
    return any(
        d.region == key.region and d.path in (None, key.path) and d.service in (None, key.service)
        for d in overrides.drain
    )


def _best(policy: Policy, keys: list[PathKey], ids: Mapping[tuple[str, str], int]) -> PathKey:
    return min(keys, key=lambda k: (policy.regions[k.region].paths[k.path].priority, ids[(k.region, k.path)]))


def _preferred(
    policy: Policy,
    name: str,
    service: Service,
    candidates: list[PathKey],
    *,
    overrides: Overrides,
    ids: Mapping[tuple[str, str], int],
    notes: list[str],
) -> list[PathKey]:
    pin = overrides.pin.get(name)
    if pin is not None:
        pinned = [k for k in candidates if k.region == pin]
        if pinned:
            notes.append(f"pin: {name} is preferred only in {pin}")
            return [_best(policy, pinned, ids)]
        notes.append(f"pin: {name} -> {pin} has no undrained up path there; the normal rules apply")
    if service.mode is Mode.ACTIVE_ACTIVE:
        chosen: list[PathKey] = []
        for region in policy.regions:
            group = [k for k in candidates if k.region == region]
            if group:
                chosen.append(_best(policy, group, ids))
        weights = service_weights(policy, name, overrides)
        weighted = [k for k in chosen if weights is None or weights.get(k.region, 0) > 0]
        if weighted and len(weighted) < len(chosen):
            notes.append(
                f"weights: {name}: weight 0 in {', '.join(k.region for k in chosen if k not in weighted)}: standby"
            )
        return weighted or chosen
    for region in region_order(policy, service):
        group = [k for k in candidates if k.region == region]
        if group:
            return [_best(policy, group, ids)]
    return []


def _weight_notes(policy: Policy, ov: Overrides) -> list[str]:
    """What plan() says of ``overrides.weights``: each service's split, or why it is ignored."""
    notes: list[str] = []
    for svc_name, weights in ov.weights.items():
        svc = policy.services.get(svc_name)
        if svc is None or svc.mode is not Mode.ACTIVE_ACTIVE:
            notes.append(f"weights: service {svc_name} is not an active-active service of the policy; ignored")
        else:
            notes.append(f"weights: {svc_name} split {' '.join(f'{r}={w}' for r, w in weights.items())}")
    return notes


def path_states(
    policy: Policy, health: Mapping[PathKey, PathHealth], overrides: Overrides | None = None
) -> tuple[dict[PathKey, PathState | None], list[str]]:
    """The state of every (service, region, path) of the policy; None = not announced (UNKNOWN)."""
    ov = policy.overrides if overrides is None else overrides
    ids = path_ids(policy)
    notes: list[str] = []
    for d in ov.drain:
        where = (d.region if d.path is None else f"{d.region}/{d.path}") + (
            "" if d.service is None else f" for {d.service}"
        )
        if (
            d.region not in policy.regions
            or (d.path is not None and d.path not in policy.regions[d.region].paths)
            or (d.service is not None and d.service not in policy.services)
        ):
            notes.append(f"drain: {where} is not in the policy; ignored")
        else:
            notes.append(f"drain: up paths of {where} are standby")
    for svc_name in ov.pin:
        if svc_name not in policy.services:
            notes.append(f"pin: service {svc_name} is not in the policy; ignored")
    notes += _weight_notes(policy, ov)
    states: dict[PathKey, PathState | None] = {}
    for name, service in policy.services.items():
        for keys in _measured_groups(policy, name):
            candidates = _judged(keys, health, ov, states)
            for k in _preferred(policy, name, service, candidates, overrides=ov, ids=ids, notes=notes):
                states[k] = PathState.PREFERRED
    return states, list(dict.fromkeys(notes))  # a pin's note once, not once per measured family


def _judged(
    keys: list[PathKey], health: Mapping[PathKey, PathHealth], ov: Overrides, states: dict[PathKey, PathState | None]
) -> list[PathKey]:
    """Set the state of ``keys`` from their health (UP: STANDBY for now); the undrained UP ones compete."""
    candidates: list[PathKey] = []
    for k in keys:
        h = health.get(k, PathHealth()).health
        if h is Health.DOWN:
            states[k] = PathState.DOWN
        elif h is Health.DEGRADED or h is Health.SUSPECT:
            states[k] = PathState.DEGRADED
        elif h is Health.UP:
            states[k] = PathState.STANDBY
            if not _drained(k, ov):
                candidates.append(k)
        else:
            states[k] = None
    return candidates


# --------------------------------------------------------------------------------------------
# the ideal RIB


@dataclass(frozen=True, slots=True)
class _Candidate:
    prefix: str
    path_id: int
    attrs: RouteAttrs
    source: RouteSource

    def rank(self) -> tuple[int, int, int, int]:
        return (*_preference(STATE_RANK[self.source.state], self.attrs), self.path_id)


class _Memo:
    """What one plan computes again and again at scale, computed once (1,000 prefixes x 16 edge peers x 4
    paths: bench/bench_scale.py ``commands``): a route's attributes per (state, role, next hop, weight), a
    prefix's text, the state rank behind a route's attributes, a withdrawal's reason per set of paths."""

    def __init__(self) -> None:
        self._attrs: dict[tuple[PathState, PeerRole, str, int | None], RouteAttrs] = {}
        self._text: dict[object, str] = {}
        self._rank: dict[tuple[PeerRole, RouteAttrs], int | None] = {}
        self._why: dict[tuple[PeerRole, tuple[PathKey, ...]], str] = {}
        self._sources: dict[tuple[str | None, RouteKey], tuple[PathKey, ...]] = {}

    def attrs(
        self,
        policy: Policy,
        state: PathState,
        action: Announce,
        *,
        next_hop: object,
        role: PeerRole,
        weight: int | None,
    ) -> RouteAttrs:
        k = (state, role, str(next_hop), weight)
        if k not in self._attrs:
            self._attrs[k] = _attrs(policy, action, next_hop, role, weight)
        return self._attrs[k]

    def text(self, prefix: object) -> str:
        if prefix not in self._text:
            self._text[prefix] = str(prefix)
        return self._text[prefix]

    def rank(self, policy: Policy, role: PeerRole, attrs: RouteAttrs) -> int | None:
        k = (role, attrs)
        if k not in self._rank:
            self._rank[k] = _infer_rank(policy, role, attrs)
        return self._rank[k]

    def sources(self, peer: Peer, key: RouteKey, make: Callable[[], tuple[PathKey, ...]]) -> tuple[PathKey, ...]:
        """The paths a withdrawn route stood for: the same for every edge peer, per peer for the others."""
        k = (None if peer.role is PeerRole.EDGE else peer.name, key)
        if k not in self._sources:
            self._sources[k] = make()
        return self._sources[k]

    def why(self, role: PeerRole, sources: tuple[PathKey, ...], make: Callable[[], str]) -> str:
        k = (role, sources)
        if k not in self._why:
            self._why[k] = make()
        return self._why[k]


def _no_next_hop(where: str, prefix: Network, notes: list[str]) -> None:
    notes.append(
        f"{prefix}: {where} has no IPv{prefix.version} next hop; not planned through it (policy check refuses this)"
    )


def _candidate(
    policy: Policy,
    role: PeerRole,
    prefix: Network,
    *,
    key: PathKey,
    states: Mapping[PathKey, PathState | None],
    next_hop: IPAddress | None,
    next_hop_of: str,
    path_id: int,
    weight: int | None,
    notes: list[str],
    memo: _Memo,
) -> _Candidate | None:
    """One route of ``prefix`` for a peer of ``role`` via the path judged under ``key``: None when the path is
    not judged yet, its state's action for that role withdraws, or there is no next hop of the prefix's family
    (said once in ``notes``)."""
    state = states.get(key)
    if state is None:
        return None
    action = policy.actions.get(state, role)
    if not isinstance(action, Announce):
        return None
    if next_hop is None:
        _no_next_hop(next_hop_of, prefix, notes)
        return None
    attrs = memo.attrs(policy, state, action, next_hop=next_hop, role=role, weight=weight)
    return _Candidate(memo.text(prefix), path_id, attrs, RouteSource(key, state))


def _edge_candidates(
    policy: Policy,
    families: frozenset[Family],
    states: Mapping[PathKey, PathState | None],
    ids: Mapping[tuple[str, str], int],
    *,
    overrides: Overrides,
    notes: list[str],
    memo: _Memo,
) -> list[_Candidate]:
    """The routes an edge peer carrying ``families`` could get: the same for every such peer."""
    out: list[_Candidate] = []
    for name, service in policy.services.items():
        weights = service_weights(policy, name, overrides)
        for prefix in service.prefixes:
            if not _carries(families, memo.text(prefix)):
                continue
            for region_name, region in policy.regions.items():
                for path_name, path in region.paths.items():
                    c = _candidate(
                        policy,
                        PeerRole.EDGE,
                        prefix,
                        key=health_key(policy, name, region_name, path_name, prefix.version),
                        states=states,
                        next_hop=path.next_hop_for(prefix.version),
                        next_hop_of=f"path {region_name}/{path_name}",
                        path_id=ids[(region_name, path_name)],
                        weight=weights.get(region_name) if weights is not None else None,
                        notes=notes,
                        memo=memo,
                    )
                    if c is not None:
                        out.append(c)
    return out


def _tgw_candidates(
    policy: Policy,
    peer: Peer,
    states: Mapping[PathKey, PathState | None],
    ids: Mapping[tuple[str, str], int],
    *,
    notes: list[str],
    memo: _Memo,
) -> list[_Candidate]:
    corporate = policy.corporate
    if corporate is None:
        return []
    out: list[_Candidate] = []
    for prefix in corporate.prefixes:
        if not _carries(peer.families, str(prefix)):
            continue
        for region_name, region in policy.regions.items():
            for path_name, path in region.paths.items():
                if path.peer_for(prefix.version) != peer.name:
                    continue
                c = _candidate(
                    policy,
                    PeerRole.TRANSIT_GATEWAY,
                    prefix,
                    key=health_key(policy, corporate.follow_service, region_name, path_name, prefix.version),
                    states=states,
                    next_hop=corporate.next_hop_for(prefix.version),
                    next_hop_of="corporate",
                    path_id=ids[(region_name, path_name)],
                    weight=None,
                    notes=notes,
                    memo=memo,
                )
                if c is not None:
                    out.append(c)
    return out


AddPathState = Mapping[str, frozenset[Family]]
"""Per peer name, the families in which the session negotiated ADD-PATH with us sending."""


def sends_add_path(peer: Peer, add_path: AddPathState | None, prefix: str) -> bool:
    """Does ``peer`` get one route per path for ``prefix`` (else: the single best, path id 0)?"""
    if peer.add_path not in _ADD_PATH_SENDS:
        return False
    if add_path is None:
        return True
    net = _network(prefix)
    return net is not None and Family.of(net) in add_path.get(peer.name, frozenset())


def ideal_rib(
    policy: Policy,
    health: Mapping[PathKey, PathHealth],
    overrides: Overrides | None = None,
    add_path: AddPathState | None = None,
) -> Ideal:
    """The routes the health asks for, per peer, with the path and state behind each one."""
    ov = policy.overrides if overrides is None else overrides
    states, notes = path_states(policy, health, ov)
    ids = path_ids(policy)
    routes: Rib = {}
    sources: dict[tuple[str, RouteKey], RouteSource] = {}
    memo = _Memo()
    edge: dict[frozenset[Family], list[_Candidate]] = {}  # every edge peer of the same families: the same
    for peer in policy.peers:
        if peer.role is PeerRole.EDGE:
            families = frozenset(peer.families)
            if families not in edge:
                edge[families] = _edge_candidates(policy, families, states, ids, overrides=ov, notes=notes, memo=memo)
            candidates = edge[families]
        else:
            candidates = _tgw_candidates(policy, peer, states, ids, notes=notes, memo=memo)
        best: dict[RouteKey, _Candidate] = {}
        for c in candidates:
            key = RouteKey(c.prefix, c.path_id if sends_add_path(peer, add_path, c.prefix) else 0)
            if key not in best or c.rank() < best[key].rank():
                best[key] = c
        routes[peer.name] = {k: best[k].attrs for k in sorted(best, key=route_order)}
        for k, c in best.items():
            sources[(peer.name, k)] = c.source
    dark = frozenset(
        (name, version)
        for name in policy.services
        for version in (4, 6)
        if not any(states.get(k) in _ANNOUNCEABLE for k in _route_keys(policy, name, version))
    )
    return Ideal(routes, sources, states, dark, tuple(dict.fromkeys(notes)))


# --------------------------------------------------------------------------------------------
# fail-static, allowlist


def _fit_add_path(
    policy: Policy, peer: Peer, routes: Mapping[RouteKey, RouteAttrs], add_path: AddPathState | None
) -> dict[RouteKey, RouteAttrs]:
    """``routes`` for a peer that may no longer take several paths per prefix: where it does not, the
    most preferred of a prefix's routes, as path id 0 (ranked as the planner ranks: state, AS path, MED,
    path id)."""
    out: dict[RouteKey, RouteAttrs] = {}
    single: dict[str, tuple[tuple[int, int, int, int], RouteAttrs]] = {}
    for k, a in routes.items():
        if k.path_id == 0 or sends_add_path(peer, add_path, k.prefix):
            out[k] = a
            continue
        rank = _infer_rank(policy, peer.role, a)
        order = (*_preference(rank if rank is not None else len(STATE_RANK), a), k.path_id)
        if k.prefix not in single or order < single[k.prefix][0]:
            single[k.prefix] = (order, a)
    for prefix, (_order, a) in single.items():
        out.setdefault(RouteKey(prefix, 0), a)
    return out


def _dark_prefixes(
    ideal: Ideal, service: str, what: str, prefixes: Iterable[object], per_family: str
) -> list[tuple[str, set[str]]]:
    """Of ``prefixes`` (following ``service``), those whose family has no announceable path: all of them as
    ``what``, or per family (``per_family`` with ``{v}`` the IP version) when only one family is dark
    (dual-stack: each family judged apart)."""
    by_version: dict[int, set[str]] = {}
    for p in prefixes:
        net = _network(p)
        if net is not None:
            by_version.setdefault(net.version, set()).add(str(p))
    dark = [v for v in sorted(by_version) if (service, v) in ideal.dark]
    if not dark:
        return []
    if len(dark) == len(by_version):
        return [(what, {p for v in dark for p in by_version[v]})]
    return [(per_family.replace("{v}", str(v)), by_version[v]) for v in dark]


def _keep(policy: Policy, previous: Rib, target: Rib, prefixes: set[str], add_path: AddPathState | None) -> int:
    """Replace, in ``target``, every route of ``prefixes`` by the previous ones (one per prefix, path id 0, to a
    peer that no longer takes several), on the policy's peers only; how many routes were kept."""
    kept = 0
    for peer in policy.peers:
        routes = {k: a for k, a in target.get(peer.name, {}).items() if k.prefix not in prefixes}
        for k, a in _fit_add_path(policy, peer, previous.get(peer.name, {}), add_path).items():
            if k.prefix in prefixes:
                routes[k] = a
                kept += 1
        target[peer.name] = routes
    return kept


def _fail_static(
    policy: Policy,
    ideal: Ideal,
    previous: Rib | None,
    target: Rib,
    notes: list[str],
    *,
    add_path: AddPathState | None = None,
) -> None:
    """Replace, in ``target``, the routes of services without an announceable path by the previous ones
    (one per prefix, path id 0, to a peer that no longer takes several).

    Only on the policy's peers: routes to a peer the policy no longer has are withdrawn, not kept.
    """
    held: list[tuple[str, set[str]]] = []
    for name in sorted(policy.services):
        held.extend(
            _dark_prefixes(
                ideal,
                name,
                f"service {name}",
                policy.services[name].prefixes,
                f"service {name} (IPv{{v}})",
            )
        )
    corporate = policy.corporate
    if corporate is not None:
        what = f"the corporate prefixes (they follow {corporate.follow_service})"
        if corporate.follow_service not in policy.services:
            held.append((what, {str(p) for p in corporate.prefixes}))
        else:
            follow = corporate.follow_service
            held.extend(
                _dark_prefixes(
                    ideal,
                    follow,
                    what,
                    corporate.prefixes,
                    f"the IPv{{v}} corporate prefixes (they follow {follow})",
                )
            )
    for what, prefixes in held:
        if not policy.guards.fail_static:
            notes.append(
                f"fail-static is off: {what}: no path is up or degraded; the routes follow the down/unknown actions"
            )
            continue
        kept = _keep(policy, previous, target, prefixes, add_path) if previous is not None else 0
        if kept:
            notes.append(f"fail-static: {what}: no path is up or degraded; kept {kept} previous route(s)")
        else:
            notes.append(f"fail-static: {what}: no path is up or degraded, and no previous route to keep")


def _in_use(policy: Policy, states: Mapping[PathKey, PathState | None]) -> dict[tuple[str, int], frozenset[PathKey]]:
    """Per (service, IP version): the paths its routes send traffic to: the preferred ones, or with none
    preferred (no path up) the degraded ones; empty when none is announceable."""
    out: dict[tuple[str, int], frozenset[PathKey]] = {}
    for name in policy.services:
        for version in (4, 6):
            keys = _route_keys(policy, name, version)
            best = [k for k in keys if states.get(k) is PathState.PREFERRED] or [
                k for k in keys if states.get(k) is PathState.DEGRADED
            ]
            out[(name, version)] = frozenset(best)
    return out


def _degraded_static(
    policy: Policy,
    ideal: Ideal,
    health: Mapping[PathKey, PathHealth],
    previous: Plan,
    *,
    base: Rib,
    target: Rib,
    notes: list[str],
    add_path: AddPathState | None,
) -> dict[tuple[str, int], frozenset[PathKey]]:
    """Degraded-static: a service (per IP version) with no path up keeps the previous plan's routes while
    every path they sent traffic to (``Plan.in_use``) is still DEGRADED or SUSPECT. Moving between paths that
    are all degraded buys nothing, and an impairment common to every path (the controller's own probe
    sources, docs/ha.md) degrades them one after the other: without this rule the first to cross its
    threshold would move the service off it, and the next one would move it back. A suspicion (a run of
    probes unanswered past the RTO, not timed out yet) holds too: on a lossy path such runs come by chance,
    and with every other path degraded there is nothing better to move to before the timeouts confirm it
    (the lab's HA drill flapped on one: usw2 in use and degraded, suspect for 0.12 s, spread media over both
    regions, then down). A path in use confirmed DOWN (or UNKNOWN) ends the rule at once, and so does any
    path up again: the normal rules apply. Returns ``in_use`` for the new plan: the kept paths where routes
    were kept."""
    in_use = _in_use(policy, ideal.states)
    corporate = policy.corporate
    for (name, version), was in previous.in_use.items():
        if name not in policy.services or not was or (name, version) in ideal.dark:
            continue
        keys = _route_keys(policy, name, version)
        if any(ideal.states.get(k) in (PathState.PREFERRED, PathState.STANDBY) for k in keys):
            continue
        if set(was) - set(keys) or any(health.get(k, PathHealth()).health not in _HELD for k in was):
            continue
        prefixes = {str(p) for p in policy.services[name].prefixes if _version(p) == version}
        if corporate is not None and corporate.follow_service == name:
            prefixes |= {str(p) for p in corporate.prefixes if _version(p) == version}
        if not prefixes:
            continue
        kept = _keep(policy, base, target, prefixes, add_path)
        in_use[(name, version)] = was
        paths = ", ".join(
            f"{k.region}/{k.path} ({health[k].health.value})" for k in sorted(was, key=lambda k: (k.region, k.path))
        )
        notes.append(
            f"degraded-static: service {name} (IPv{version}): no path is up; kept {kept} previous route(s), "
            f"still via {paths}: a move between degraded paths buys nothing"
        )
    return in_use


def _version(prefix: object) -> int | None:
    net = _network(prefix)
    return net.version if net is not None else None


def _allowed_memo(allowlist: list[Network]) -> Callable[[str], bool]:
    """:func:`allowed` against ``allowlist``, answered once per prefix (every peer holds the same prefixes)."""
    seen: dict[str, bool] = {}

    def check(prefix: str) -> bool:
        if prefix not in seen:
            seen[prefix] = allowed(prefix, allowlist)
        return seen[prefix]

    return check


def _drop_outside(target: Rib, allowed_prefix: Callable[[str], bool], notes: list[str]) -> Rib:
    out: Rib = {}
    for peer_name, routes in target.items():
        kept: dict[RouteKey, RouteAttrs] = {}
        for k, a in routes.items():
            if allowed_prefix(k.prefix):
                kept[k] = a
            else:
                notes.append(f"allowlist: {k.prefix} to {peer_name} is outside guards.allowlist; not planned")
        out[peer_name] = kept
    return out


def _handed_over(policy: Policy, target: Rib, notes: list[str]) -> Rib:
    """``target`` with every route made worse than the other controller's (HA hand-over, docs/ha.md)."""
    roles = {p.name: p.role for p in policy.peers}
    notes.append(
        "ha: every path was judged down: this controller hands over (its routes made worse than the other "
        "controller's) until no path is down"
    )
    return {
        peer: {k: ha.hand_over(policy, roles.get(peer, PeerRole.EDGE), a) for k, a in routes.items()}
        for peer, routes in target.items()
    }


# --------------------------------------------------------------------------------------------
# changes


def _infer_rank(policy: Policy, role: PeerRole, attrs: RouteAttrs) -> int | None:
    """The state rank whose action produces ``attrs`` (routes of an earlier plan carry no state)."""
    for state, rank in STATE_RANK.items():
        action = policy.actions.get(state, role)
        if isinstance(action, Announce) and _attrs(policy, action, attrs.next_hop, role, attrs.weight) == attrs:
            return rank
    return None


def _state_text(state: PathState | None, policy: Policy, role: PeerRole) -> str:
    if state is None:
        return "unknown: not announced"
    if state is PathState.DOWN:
        return "down: withdrawn"
    if not isinstance(policy.actions.get(state, role), Announce):
        return f"{state}: the policy's action is withdraw"
    return f"{state}, yet not planned for this peer"


@dataclass(frozen=True, slots=True)
class _PolicyIndex:
    """What a withdrawal's reason looks up, built once per plan: with 1,000 prefixes a lookup per
    withdrawal over every service's prefixes made a region failure's plan quadratic (32,000 withdrawals x
    1,000 prefixes: 125 s, bench/bench_scale.py)."""

    ids: Mapping[tuple[str, str], int]
    by_id: Mapping[int, tuple[str, str]]
    services_of: Mapping[str, tuple[str, ...]]  # prefix (as written by str()) -> services announcing it
    corporate: frozenset[str]

    @classmethod
    def of(cls, policy: Policy) -> _PolicyIndex:
        ids = path_ids(policy)
        services_of: dict[str, list[str]] = {}
        for name, service in policy.services.items():
            for prefix in dict.fromkeys(str(p) for p in service.prefixes):
                services_of.setdefault(prefix, []).append(name)
        corporate = policy.corporate
        return cls(
            ids=ids,
            by_id={i: rp for rp, i in ids.items()},
            services_of={k: tuple(v) for k, v in services_of.items()},
            corporate=frozenset(str(p) for p in corporate.prefixes) if corporate is not None else frozenset(),
        )


def _sources_of(policy: Policy, peer: Peer, key: RouteKey, index: _PolicyIndex) -> list[PathKey]:
    """The paths a route to ``peer`` could have stood for, from its prefix and path id."""
    out: list[PathKey] = []
    net = _network(key.prefix)
    version = net.version if net is not None else 4
    if peer.role is PeerRole.EDGE:
        for name in index.services_of.get(key.prefix, ()):
            if key.path_id in index.by_id:
                out.append(health_key(policy, name, *index.by_id[key.path_id], version))
            else:
                out.extend(_route_keys(policy, name, version))
        return out
    corporate = policy.corporate
    if corporate is None or key.prefix not in index.corporate:
        return out
    for (region_name, path_name), i in index.ids.items():
        if policy.regions[region_name].paths[path_name].peer_for(version) == peer.name and key.path_id in (0, i):
            out.append(health_key(policy, corporate.follow_service, region_name, path_name, version))
    return out


def _withdraw_why(
    policy: Policy,
    ideal: Ideal | None,
    peer_name: str,
    key: RouteKey,
    add_path_state: AddPathState | None,
    *,
    index: _PolicyIndex,
    memo: _Memo,
) -> str:
    peer = _find_peer(policy, peer_name)
    if peer is None:
        return f"peer {peer_name} is no longer in the policy"
    sources = memo.sources(peer, key, lambda: tuple(_sources_of(policy, peer, key, index)))
    if not sources:
        return f"{key.prefix} is no longer announced to {peer_name} by the policy"
    add_path = sends_add_path(peer, add_path_state, key.prefix)
    if add_path and key.path_id == 0:
        return f"ADD-PATH is on towards {peer_name} now: {key.prefix} goes out once per path"
    if not add_path and key.path_id != 0:
        if peer.add_path in _ADD_PATH_SENDS:
            return (
                f"ADD-PATH is not negotiated with {peer_name} (session down, or the peer does not accept "
                f"several paths): {key.prefix} goes out once, path id 0"
            )
        return f"ADD-PATH is off towards {peer_name} now: {key.prefix} goes out once, path id 0"
    if add_path and key.path_id not in index.by_id:
        return f"path id {key.path_id} is no path of the policy any more"
    if ideal is None:
        return "withdrawn"
    states = ideal.states
    return memo.why(
        peer.role,
        sources,
        lambda: "; ".join(f"{pk} {_state_text(states.get(pk), policy, peer.role)}" for pk in sources),
    )


@dataclass(frozen=True, slots=True)
class _Ordered:
    group: int
    sort: tuple[object, ...]
    change: RouteChange


def _diff(
    policy: Policy, ideal: Ideal | None, base: Rib, target: Rib, add_path: AddPathState | None
) -> list[RouteChange]:
    peer_index = {p.name: i for i, p in enumerate(policy.peers)}
    index = _PolicyIndex.of(policy)
    memo = _Memo()
    peers = sorted(set(base) | set(target), key=lambda n: (peer_index.get(n, len(peer_index)), n))
    out: list[_Ordered] = []
    for peer_name in peers:
        old = base.get(peer_name, {})
        new = target.get(peer_name, {})
        pi = peer_index.get(peer_name, len(peer_index))
        peer = _find_peer(policy, peer_name)
        # only the routes that changed are sorted (a region failure at scale changes a part of each peer's RIB)
        for key in sorted((k for k, a in new.items() if old.get(k) != a), key=route_order):
            attrs = new[key]
            source = ideal.sources.get((peer_name, key)) if ideal is not None else None
            new_rank = STATE_RANK[source.state] if source is not None else None
            why = f"{source.path} {source.state}" if source is not None else "kept from the previous plan"
            pref_new = _preference(new_rank if new_rank is not None else 0, attrs)
            if key not in old:
                group = _GROUP_MAKE
            else:
                was = old[key]
                old_rank = memo.rank(policy, peer.role, was) if peer is not None else None
                rank_for_old = old_rank if old_rank is not None else (new_rank if new_rank is not None else 0)
                pref_old = _preference(rank_for_old, was)
                if new_rank is None:
                    pref_new = _preference(rank_for_old, attrs)
                group = _GROUP_MAKE if pref_new <= pref_old else _GROUP_DEPREFER
                if group == _GROUP_DEPREFER:
                    why += " (de-preferred)"
            # new or better routes: most preferred first; de-preferences: in peer/prefix order
            sort: tuple[object, ...] = (pref_new if group == _GROUP_MAKE else (), pi, route_order(key))
            out.append(_Ordered(group, sort, RouteChange(peer_name, ChangeKind.ANNOUNCE, key, attrs, why)))
        for key in sorted((k for k in old if k not in new), key=route_order):
            out.append(
                _Ordered(
                    _GROUP_WITHDRAW,
                    ((), pi, route_order(key)),
                    RouteChange(
                        peer_name,
                        ChangeKind.WITHDRAW,
                        key,
                        None,
                        _withdraw_why(policy, ideal, peer_name, key, add_path, index=index, memo=memo),
                    ),
                )
            )
    out.sort(key=lambda o: (o.group, o.sort))
    return [o.change for o in out]


def apply_changes(rib: Rib, changes: Iterable[RouteChange]) -> Rib:
    """``rib`` with ``changes`` applied, as a new RIB (the input is not modified)."""
    out: Rib = {peer: dict(routes) for peer, routes in rib.items()}
    for c in changes:
        routes = out.setdefault(c.peer, {})
        if c.kind is ChangeKind.WITHDRAW:
            routes.pop(c.key, None)
        elif c.attrs is not None:
            routes[c.key] = c.attrs
    return out


def _normalized(policy: Policy, rib: Rib) -> Rib:
    """Policy peers first (each present, maybe empty), then other peers that still hold routes; keys sorted."""
    out: Rib = {p.name: {k: rib[p.name][k] for k in sorted(rib.get(p.name, {}), key=route_order)} for p in policy.peers}
    for peer_name in sorted(set(rib) - set(out)):
        if rib[peer_name]:
            out[peer_name] = {k: rib[peer_name][k] for k in sorted(rib[peer_name], key=route_order)}
    return out


# --------------------------------------------------------------------------------------------
# plan


def _mode_switched(policy: Policy, base: Rib, add_path: AddPathState | None) -> frozenset[str]:
    """Peers holding a route whose path id does not fit their ADD-PATH state now (the state changed)."""
    out: set[str] = set()
    for peer in policy.peers:
        for key in base.get(peer.name, {}):
            if sends_add_path(peer, add_path, key.prefix) != (key.path_id != 0):
                out.add(peer.name)
                break
    return frozenset(out)


def plan(
    policy: Policy,
    health: Mapping[PathKey, PathHealth],
    previous: Plan | None,
    now: float,
    overrides: Overrides | None = None,
    *,
    add_path: AddPathState | None = None,
    held_back: bool = False,
) -> Plan:
    """The desired RIB for ``health`` and the ordered, rate-limited changes from ``previous``.

    ``held_back``: this controller of an HA pair hands over (:func:`bgpctl.core.ha.held_back`): every route
    it plans, also those fail-static keeps, carries :func:`bgpctl.core.ha.hand_over`.

    ``overrides`` None means ``policy.overrides``; ``add_path`` None means every peer negotiated what the
    policy configures (offline planning; the daemon always passes what the sessions negotiated). See the
    module docstring for the rules.
    """
    ov = policy.overrides if overrides is None else overrides
    allowed_prefix = _allowed_memo(allowlist_networks(policy))
    prev_rib: Rib = previous.desired if previous is not None else {}
    recent = tuple(t for t in (previous.change_times if previous is not None else ()) if t > now - RATE_WINDOW_S)
    notes: list[str] = []

    # Guard: whatever was announced outside the allowlist goes now, before anything else.
    guard: list[RouteChange] = []
    for peer_name in sorted(prev_rib):
        for key in sorted(prev_rib[peer_name], key=route_order):
            if not allowed_prefix(key.prefix):
                guard.append(
                    RouteChange(
                        peer_name,
                        ChangeKind.WITHDRAW,
                        key,
                        None,
                        f"{key.prefix} is outside guards.allowlist: withdrawn at once",
                    )
                )
    base = apply_changes(prev_rib, guard)

    ideal: Ideal | None
    in_use: Mapping[tuple[str, int], frozenset[PathKey]]
    if ov.freeze:
        ideal = None
        target: Rib = {peer: dict(routes) for peer, routes in base.items()}
        notes.append("freeze: the routes stay as they are; nothing new is planned")
        in_use = previous.in_use if previous is not None else {}
    else:
        ideal = ideal_rib(policy, health, ov, add_path)
        notes.extend(ideal.notes)
        target = {peer: dict(routes) for peer, routes in ideal.routes.items()}
        _fail_static(policy, ideal, base if previous is not None else None, target, notes, add_path=add_path)
        # a controller that stops handing over plans afresh: the previous routes carry the hand-over penalty
        if previous is not None and not (previous.held_back and not held_back):
            in_use = _degraded_static(
                policy, ideal, health, previous, base=base, target=target, notes=notes, add_path=add_path
            )
        else:
            in_use = _in_use(policy, ideal.states)
        if held_back:
            target = _handed_over(policy, target, notes)
    target = _drop_outside(target, allowed_prefix, notes)

    ordered = _diff(policy, ideal, base, target, add_path)
    # a peer whose ADD-PATH state changed gets all its changes now: half one mode, half the other is the defect
    switched = _mode_switched(policy, base, add_path) if not ov.freeze else frozenset()
    forced = [c for c in ordered if c.peer in switched]
    limited = [c for c in ordered if c.peer not in switched]
    budget = max(0, policy.guards.max_route_changes_per_minute - len(recent) - len(guard) - len(forced))
    applied, deferred = forced + limited[:budget], limited[budget:]
    if switched:
        notes.append(
            f"ADD-PATH changed towards {', '.join(sorted(switched))}: "
            f"{len(forced)} change(s) made at once, outside the rate limit"
        )
    if deferred:
        notes.append(
            f"rate limit: {len(deferred)} change(s) deferred "
            f"(max {policy.guards.max_route_changes_per_minute} per minute)"
        )
    desired = _normalized(policy, apply_changes(base, applied))
    changes = (*guard, *applied)
    return Plan(
        desired=desired,
        changes=tuple(changes),
        deferred=tuple(deferred),
        notes=tuple(notes),
        change_times=recent + (now,) * len(changes),
        held_back=held_back and not ov.freeze,
        in_use=in_use,
    )
