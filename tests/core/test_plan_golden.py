"""Golden plan tests: tests/core/plans/<case>/input.yaml -> expected.json (BGPCTL_REGEN=1 rewrites).

input.yaml: ``policy`` (a file under policies/), optional ``patch`` (laid over it, lists replace) and
``steps``: each ``now``, either ``health`` (see support.health_map) or ``stats`` (PathStats fields per
"service/region/path", judged by decide() from the previous step's health), and optional
``overrides``; each step's plan is the ``previous`` of the next. expected.json holds every step's
health and plan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bgpctl.cli.policy_plan import read_snapshot
from bgpctl.core.decide import decide
from bgpctl.core.plan import plan
from bgpctl.core.types import PathHealth, PathKey, Plan
from bgpctl.policy.model import Overrides
from bgpctl.render import plan_to_dict
from tests.core.plans.support import CASES, health_map, lab_policy, read_yaml
from tests.golden import check_golden

CASE_DIRS = sorted(p.parent for p in CASES.glob("*/input.yaml"))


def run_case(case: Path) -> list[dict[str, Any]]:
    spec = read_yaml((case / "input.yaml").read_text())
    policy = lab_policy(spec.get("patch"), spec["policy"])
    previous: Plan | None = None
    health: dict[PathKey, PathHealth] = {}
    out: list[dict[str, Any]] = []
    for step in spec["steps"]:
        now = float(step["now"])
        overrides = Overrides.model_validate(step["overrides"]) if "overrides" in step else None
        if "stats" in step:
            stats = read_snapshot(json.dumps(step["stats"]), f"{case.name}/input.yaml", policy)
            health = decide(policy, stats, health, now).health
        else:
            health = health_map(policy, step["health"], now)
        previous = plan(policy, health, previous, now, overrides)
        out.append(
            {
                "now": step["now"],
                "health": {str(k): h.health.value for k, h in health.items()},
                "plan": plan_to_dict(previous),
            }
        )
    return out


def test_the_required_cases_exist() -> None:
    names = {c.name for c in CASE_DIRS}
    assert {
        "all-healthy-active-active",
        "active-standby",
        "region-down",
        "one-path-degraded",
        "all-down-fail-static",
        "drain",
        "pin",
        "freeze",
        "no-add-path-edge",
    } <= names


@pytest.mark.parametrize("case", CASE_DIRS, ids=[c.name for c in CASE_DIRS])
def test_golden_plan(case: Path) -> None:
    check_golden(case / "expected.json", json.dumps(run_case(case), indent=2) + "\n")
