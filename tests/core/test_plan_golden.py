"""Golden plan tests: tests/core/plans/<case>/input.yaml -> expected.json (BGPCTL_REGEN=1 rewrites).

input.yaml: ``policy`` (a file under policies/), optional ``patch`` (laid over it, lists replace) and
``steps``: each ``now``, ``health`` (see support.health_map) and optional ``overrides``; each step's
plan is the ``previous`` of the next. expected.json holds every step's plan.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bgpctl.core.plan import plan, plan_to_dict
from bgpctl.core.types import Plan
from bgpctl.policy.model import Overrides
from tests.core.plans.support import CASES, health_map, lab_policy, read_yaml
from tests.golden import check_golden

CASE_DIRS = sorted(p.parent for p in CASES.glob("*/input.yaml"))


def run_case(case: Path) -> list[dict[str, Any]]:
    spec = read_yaml((case / "input.yaml").read_text())
    policy = lab_policy(spec.get("patch"), spec["policy"])
    previous: Plan | None = None
    out: list[dict[str, Any]] = []
    for step in spec["steps"]:
        overrides = Overrides.model_validate(step["overrides"]) if "overrides" in step else None
        previous = plan(policy, health_map(policy, step["health"], step["now"]), previous, float(step["now"]),
                        overrides)
        out.append({"now": step["now"], "plan": plan_to_dict(previous)})
    return out


def test_the_required_cases_exist() -> None:
    names = {c.name for c in CASE_DIRS}
    assert {"all-healthy-active-active", "active-standby", "region-down", "one-path-degraded",
            "all-down-fail-static", "drain", "pin", "freeze", "no-add-path-edge"} <= names


@pytest.mark.parametrize("case", CASE_DIRS, ids=[c.name for c in CASE_DIRS])
def test_golden_plan(case: Path) -> None:
    check_golden(case / "expected.json", json.dumps(run_case(case), indent=2) + "\n")
