"""Hypothesis strategies over a policy's paths: any health for every path, any operator overrides
(plan properties, HA properties)."""

from __future__ import annotations

from hypothesis import strategies as st

from bgpctl.core.types import Health, PathHealth, PathKey
from bgpctl.policy.model import Drain, Overrides, Policy
from tests.core.plans.support import all_keys

HEALTHS = list(Health)


def overrides_for(policy: Policy) -> st.SearchStrategy[Overrides | None]:
    drains = [Drain(region=r) for r in policy.regions] + [
        Drain(region=r, path=p) for r, region in policy.regions.items() for p in region.paths
    ]
    pins = st.dictionaries(
        st.sampled_from(sorted(policy.services)), st.sampled_from(sorted(policy.regions)), max_size=2
    )
    some = st.builds(
        Overrides,
        drain=st.lists(st.sampled_from(drains), max_size=2, unique=True),
        pin=pins,
        freeze=st.sampled_from([False, False, False, True]),
    )
    return st.none() | some


def health_for(policy: Policy) -> st.SearchStrategy[dict[PathKey, PathHealth]]:
    keys = all_keys(policy)
    return st.lists(st.sampled_from(HEALTHS), min_size=len(keys), max_size=len(keys)).map(
        lambda hs: {k: PathHealth(h) for k, h in zip(keys, hs, strict=True)}
    )
