"""Property tests for plan(): the invariants of docs/design.md hold over random health histories.

Each example drives plan() through a random sequence of (time step, health map, overrides), feeding
every plan back as the next call's ``previous`` like the daemon does. The example count comes from
the hypothesis profile in tests/conftest.py (CI: 500 per property).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_network

from hypothesis import given
from hypothesis import strategies as st

from bgpctl.core.plan import apply_changes, plan
from bgpctl.core.types import ChangeKind, Health, PathHealth, PathKey, Plan, Rib, RouteAttrs, RouteKey
from bgpctl.policy.model import AddPath, Overrides, Policy
from tests.core.plans.strategies import health_for, overrides_for
from tests.core.plans.support import NO_ADD_PATH, TWO_PATHS, lab_policy

POLICIES: list[Policy] = [
    lab_policy(),
    lab_policy(TWO_PATHS),
    lab_policy(NO_ADD_PATH),
    lab_policy({"guards": {"max_route_changes_per_minute": 3}}),
    lab_policy({**TWO_PATHS, "guards": {"max_route_changes_per_minute": 5}}),
    lab_policy({**NO_ADD_PATH, "guards": {"max_route_changes_per_minute": 1}}),
    lab_policy({"guards": {"fail_static": False, "max_route_changes_per_minute": 4}}, drop=("signals",)),
    lab_policy({"services": {"media": {"mode": "active-standby", "order": ["usw2", "use1"]}}}),
]

DT = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 29.5, 30.0, 59.0, 59.5, 60.0]), st.floats(0, 45, allow_nan=False))
"""Seconds between plan() calls: often exactly at, or just inside, the rate limit's minute."""


@dataclass(frozen=True)
class Step:
    dt: float
    health: dict[PathKey, PathHealth]
    overrides: Overrides | None


@st.composite
def scenario(draw: st.DrawFn, policies: list[Policy] = POLICIES) -> tuple[Policy, list[Step]]:
    policy = draw(st.sampled_from(policies))
    steps = draw(
        st.lists(
            st.builds(Step, dt=DT, health=health_for(policy), overrides=overrides_for(policy)), min_size=1, max_size=12
        )
    )
    return policy, steps


def run(
    policy: Policy, steps: list[Step], previous: Plan | None = None, start: float = 1000.0
) -> Iterator[tuple[float, Step, Plan | None, Plan]]:
    now = start
    for step in steps:
        now += step.dt
        p = plan(policy, step.health, previous, now, step.overrides)
        yield now, step, previous, p
        previous = p


def _nonempty(rib: Rib) -> Rib:
    return {peer: routes for peer, routes in rib.items() if routes}


def _service_prefixes(policy: Policy) -> dict[str, set[str]]:
    return {name: {str(p) for p in s.prefixes} for name, s in policy.services.items()}


# ------------------------------------------------------------------------------------------
# allowlist


def _in(prefix: str, allow: list[IPv4Network | IPv6Network]) -> bool:
    """Containment by address range (independent of the planner's own check)."""
    net = ip_network(prefix)
    return any(
        net.version == a.version
        and int(a.network_address) <= int(net.network_address)
        and int(net.broadcast_address) <= int(a.broadcast_address)
        for a in allow
    )


networks = st.builds(
    lambda addr, plen: ip_network(f"{addr}/{plen}", strict=False), st.ip_addresses(v=4), st.integers(0, 32)
)


@st.composite
def hostile(draw: st.DrawFn) -> tuple[Policy, list[Step], Plan]:
    """A policy whose prefixes (bypassing validation) and allowlist are random, and a random previous plan."""
    base = draw(st.sampled_from(POLICIES))
    extra = draw(st.lists(networks, max_size=4))
    allow = draw(st.lists(networks, min_size=1, max_size=3))
    services = {
        name: s.model_copy(
            update={
                "prefixes": [*s.prefixes, *draw(st.lists(st.sampled_from(extra), max_size=2))] if extra else s.prefixes
            }
        )
        for name, s in base.services.items()
    }
    corporate = base.corporate
    if corporate is not None and extra:
        corporate = corporate.model_copy(update={"prefixes": [*corporate.prefixes, draw(st.sampled_from(extra))]})
    keep_original = draw(st.booleans())
    guards = base.guards.model_copy(update={"allowlist": ([*base.guards.allowlist] if keep_original else []) + allow})
    policy = base.model_copy(update={"services": services, "corporate": corporate, "guards": guards})
    prev_routes = draw(
        st.lists(st.tuples(st.sampled_from([p.name for p in base.peers]), networks, st.integers(0, 4)), max_size=6)
    )
    desired: Rib = {}
    for peer, net, pid in prev_routes:
        desired.setdefault(peer, {})[RouteKey(str(net), pid)] = RouteAttrs("198.18.1.11", (65000,))
    previous = Plan(desired=desired, changes=())
    _, steps = draw(scenario([base]))
    return policy, steps, previous


@given(hostile())
def test_nothing_outside_the_allowlist_is_ever_planned(case: tuple[Policy, list[Step], Plan]) -> None:
    policy, steps, previous = case
    allow = [ip_network(str(a)) for a in policy.guards.allowlist]
    for _, _, _, p in run(policy, steps, previous):
        for routes in p.desired.values():
            for key in routes:
                assert _in(key.prefix, allow), f"{key.prefix} planned outside {allow}"
        for c in (*p.changes, *p.deferred):
            if c.kind is ChangeKind.ANNOUNCE:
                assert _in(c.key.prefix, allow), f"{c.key.prefix} announced outside {allow}"


# ------------------------------------------------------------------------------------------
# fail-static


@given(scenario())
def test_with_every_path_of_a_service_down_the_last_plan_stays(case: tuple[Policy, list[Step]]) -> None:
    policy, steps = case
    prefixes = _service_prefixes(policy)
    corporate = policy.corporate
    assert corporate is not None
    for _, step, previous, p in run(policy, steps):
        if previous is None or not policy.guards.fail_static:
            continue
        dark = {
            name
            for name in policy.services
            if all(h.health in (Health.DOWN, Health.UNKNOWN) for k, h in step.health.items() if k.service == name)
        }
        held = set().union(*(prefixes[s] for s in dark))
        if corporate.follow_service in dark:
            held |= {str(x) for x in corporate.prefixes}
        for peer in set(p.desired) | set(previous.desired):
            now_routes = {k: a for k, a in p.desired.get(peer, {}).items() if k.prefix in held}
            before = {k: a for k, a in previous.desired.get(peer, {}).items() if k.prefix in held}
            assert now_routes == before
        assert not [c for c in (*p.changes, *p.deferred) if c.key.prefix in held]


@given(scenario())
def test_with_no_path_up_a_service_stays_on_the_degraded_paths_it_uses(case: tuple[Policy, list[Step]]) -> None:
    """Degraded-static (core/plan.py): no path of a service up, every path its routes used still DEGRADED or SUSPECT ->
    its prefixes' routes do not change (no move between paths that are all degraded: no flap when an
    impairment common to every path degrades them one after the other)."""
    policy, steps = case
    prefixes = _service_prefixes(policy)
    corporate = policy.corporate
    assert corporate is not None
    for _, step, previous, p in run(policy, steps):
        if previous is None:
            continue
        for name in policy.services:
            mine = {k: h.health for k, h in step.health.items() if k.service == name}
            was = previous.in_use.get((name, 4), frozenset())
            if (
                not was
                or Health.UP in mine.values()
                or any(mine.get(k) not in (Health.DEGRADED, Health.SUSPECT) for k in was)
            ):
                continue
            held = set(prefixes[name]) | (
                {str(x) for x in corporate.prefixes} if corporate.follow_service == name else set()
            )
            for peer in set(p.desired) | set(previous.desired):
                now_routes = {k: a for k, a in p.desired.get(peer, {}).items() if k.prefix in held}
                before = {k: a for k, a in previous.desired.get(peer, {}).items() if k.prefix in held}
                assert now_routes == before, f"{name}: routes to {peer} changed with no path up"
            assert p.in_use[(name, 4)] == was


@given(scenario())
def test_up_or_degraded_paths_are_never_withdrawn_with_add_path(case: tuple[Policy, list[Step]]) -> None:
    policy, steps = case
    ids = {
        i + 1: (r, path)
        for i, (r, path) in enumerate((r, path) for r, region in policy.regions.items() for path in region.paths)
    }
    edges = [peer.name for peer in policy.peers if peer.role.value == "edge" and peer.add_path is AddPath.SEND]
    owner = {str(pfx): name for name, s in policy.services.items() for pfx in s.prefixes}
    for _, step, _, p in run(policy, steps):
        for c in p.changes:
            if c.kind is ChangeKind.WITHDRAW and c.peer in edges:
                region, path = ids[c.key.path_id]
                health = step.health[PathKey(owner[c.key.prefix], region, path)].health
                assert health in (Health.DOWN, Health.UNKNOWN), f"{c} withdrawn while {health}"


# ------------------------------------------------------------------------------------------
# rate limit, bookkeeping


@given(scenario())
def test_the_route_change_rate_never_exceeds_the_limit(case: tuple[Policy, list[Step]]) -> None:
    policy, steps = case
    limit = policy.guards.max_route_changes_per_minute
    times: list[float] = []
    for now, _, _, p in run(policy, steps):
        times.extend([now] * len(p.changes))
    for i, start in enumerate(times):
        in_window = [t for t in times[i:] if t < start + 60.0]
        assert len(in_window) <= limit, f"{len(in_window)} changes in the minute from {start} (limit {limit})"


@given(scenario())
def test_desired_is_previous_plus_the_applied_changes(case: tuple[Policy, list[Step]]) -> None:
    policy, steps = case
    for _, _, previous, p in run(policy, steps):
        before = previous.desired if previous is not None else {}
        assert _nonempty(apply_changes(before, p.changes)) == _nonempty(p.desired)


@given(scenario())
def test_deferred_plus_applied_reach_the_target(case: tuple[Policy, list[Step]]) -> None:
    policy, steps = case
    unlimited = policy.model_copy(
        update={"guards": policy.guards.model_copy(update={"max_route_changes_per_minute": 100000})}
    )
    for now, step, previous, p in run(policy, steps):
        target = plan(unlimited, step.health, previous, now, step.overrides)
        assert _nonempty(apply_changes(p.desired, p.deferred)) == _nonempty(target.desired)
        assert [*p.changes, *p.deferred] == [*target.changes]


# ------------------------------------------------------------------------------------------
# make-before-break


def _pref(a: RouteAttrs) -> tuple[int, int]:
    return (len(a.as_path), a.med or 0)


@given(scenario())
def test_make_before_break_order(case: tuple[Policy, list[Step]]) -> None:
    """Per plan: new or better announcements, then de-preferences, then withdrawals (judged from attributes)."""
    policy, steps = case
    for _, _, previous, p in run(policy, steps):
        before = previous.desired if previous is not None else {}
        phases: list[int] = []
        for c in p.changes:
            if c.kind is ChangeKind.WITHDRAW:
                phases.append(2)
                continue
            assert c.attrs is not None
            old = before.get(c.peer, {}).get(c.key)
            phases.append(1 if old is not None and _pref(c.attrs) > _pref(old) else 0)
        assert phases == sorted(phases), [(c.kind.value, c.peer, c.key, c.why) for c in p.changes]


@given(scenario())
def test_same_inputs_again_change_nothing_more(case: tuple[Policy, list[Step]]) -> None:
    policy, steps = case
    for now, step, _, p in run(policy, steps):
        again = plan(policy, step.health, p, now + 61.0, step.overrides)
        if not p.deferred:
            assert again.changes == ()
            assert again.desired == p.desired


@given(scenario())
def test_add_path_ids_never_move_between_paths(case: tuple[Policy, list[Step]]) -> None:
    """A path id always carries the same path's next hop, whatever the health: ids never move."""
    policy, steps = case
    next_hops = {
        i + 1: str(path.next_hop)
        for i, path in enumerate(path for region in policy.regions.values() for path in region.paths.values())
    }
    edges = [peer.name for peer in policy.peers if peer.role.value == "edge" and peer.add_path is AddPath.SEND]
    for _, _, _, p in run(policy, steps):
        for edge in edges:
            for key, attrs in p.desired[edge].items():
                assert key.path_id in next_hops and attrs.next_hop == next_hops[key.path_id], (key, attrs)
