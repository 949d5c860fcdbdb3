"""plan() at the scale lab's medium size (bgpctl_lab/scale.py: 500 prefixes, 8 edge peers, 32 paths): a region
failure's withdrawals each name the path they stood for, and planning them is not quadratic in the prefixes
(a scan of every service's prefixes per withdrawal: 32 million string conversions and 125 s at the full size,
4 million here; the full size is bench/bench_scale.py's, docs/benchmarks.md "Scale")."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bgpctl.core.plan import plan
from bgpctl.core.types import ChangeKind, Health, PathHealth, PathKey, Plan
from bgpctl.policy.load import load_policy
from bgpctl.policy.model import Policy
from bgpctl.speaker import commands
from bgpctl_lab import scale

SIZE = scale.Size(prefixes=500, edges=8, services=8)  # bench_scale's "medium"
CPU_BOUND_S = 5.0  # CPU seconds (process time: a loaded machine does not count); ~0.3 s measured


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> Policy:
    d = tmp_path_factory.mktemp("scale-policy")
    scale.write(d, scale.render(SIZE))
    return load_policy(Path(d) / "policy.yaml")


def _health(policy: Policy, bad: Health | None) -> dict[PathKey, PathHealth]:
    keys = [PathKey(s, r, p) for s in policy.services for r, reg in policy.regions.items() for p in reg.paths]
    return {k: PathHealth(bad if bad is not None and k.region == "use1" else Health.UP) for k in keys}


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a few seconds; bounded by CPU time below, not by the wall clock of a loaded machine
def test_a_region_failure_at_scale_withdraws_every_use1_route_naming_its_path(medium: Policy) -> None:
    up = plan(medium, _health(medium, None), None, 0.0)
    suspect = plan(medium, _health(medium, Health.SUSPECT), up, 100.0)
    start = time.process_time()
    down: Plan = plan(medium, _health(medium, Health.DOWN), suspect, 101.0)
    cpu = time.process_time() - start
    edges = set(scale.edge_names(SIZE))
    withdrawals = [c for c in down.changes if c.kind is ChangeKind.WITHDRAW and c.peer in edges]
    assert len(withdrawals) == len(edges) * SIZE.prefixes * 2  # both use1 paths of every prefix, at every edge
    ids = {1: "a", 2: "b"}  # path ids of use1's paths (policy order)
    by_prefix = {str(p): name for name, s in medium.services.items() for p in s.prefixes}
    for c in withdrawals:
        assert c.why == f"{by_prefix[c.key.prefix]}/use1/{ids[c.key.path_id]} down: withdrawn", c
    # the agents' prefix to each use1 TGW follows the first service's path through it
    to_tgws = sorted((c.peer, c.why) for c in down.changes if c.peer not in edges)
    assert to_tgws == [(f"tgw-use1{x}", f"svc01/use1/{x} down: withdrawn") for x in "ab"]
    assert down.deferred == ()
    assert cpu < CPU_BOUND_S, f"the failover's plan took {cpu:.1f} CPU seconds"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_region_failure_at_scale_is_one_change_per_route_and_few_commands(medium: Policy) -> None:
    """Suspect and down in one evaluation: plan() emits only the final state of each route (the use1 routes
    are withdrawn, never de-preferred first); in two evaluations the de-preference and the withdrawal each
    go to ExaBGP as a few commands per edge (bgpctl.speaker.commands.batch), not one per route."""
    up = plan(medium, _health(medium, None), None, 0.0)
    direct = plan(medium, _health(medium, Health.DOWN), up, 100.0)
    routes = [(c.peer, c.key) for c in direct.changes]
    assert len(routes) == len(set(routes))  # one change per route
    edges = set(scale.edge_names(SIZE))
    use1 = {1, 2}  # path ids of use1's paths
    assert not [
        c for c in direct.changes if c.peer in edges and c.key.path_id in use1 and c.kind is ChangeKind.ANNOUNCE
    ]
    assert (
        len([c for c in direct.changes if c.kind is ChangeKind.WITHDRAW and c.peer in edges])
        == len(edges) * SIZE.prefixes * 2
    )

    suspect = plan(medium, _health(medium, Health.SUSPECT), up, 100.0)
    down = plan(medium, _health(medium, Health.DOWN), suspect, 101.0)
    for before, after in ((up, suspect), (suspect, down), (up, direct)):
        changes = commands.diff(medium, after.desired, before.desired)
        batched = commands.batch(medium, changes, before.desired)
        assert sorted(map(id, (c for cmd in batched for c in cmd.changes))) == sorted(map(id, changes))
        per_edge = [sum(1 for cmd in batched if cmd.peer == e) for e in sorted(edges)]
        # per edge: the use1 withdrawals (2 path ids) and the de-preferred or promoted routes (a few sets of
        # attributes per path id), each group of 500 prefixes in about 2 lines of at most 8,192 characters
        assert max(per_edge) <= 40, per_edge
        assert len(batched) * 100 < len(changes), (len(batched), len(changes))
