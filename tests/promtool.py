"""promtool for the tests (Debian's prometheus package), and bgpctl's alert rules evaluated on a real scrape.

:func:`find` skips a test when promtool is missing, except in CI (CI=true), where that is a failure.
:func:`alerts_on_scrape` turns a metrics page into constant promtool input series (with the ``job`` and
``instance`` labels a scrape adds) and checks, with ``promtool test rules``, that exactly the given alerts
fire after long enough for every ``for:``: the rules are then known to work on what the daemon exports,
not only on the synthetic series of deploy/prometheus/bgpctl.rules.test.yml.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "deploy" / "prometheus" / "bgpctl.rules.yml"
TIMEOUT_S = 60
SCRAPE_LABELS = {"job": "bgpctl", "instance": "cr:9477"}
EVAL_AFTER = "5m"
"""Longer than every ``for:`` of the alerts that can fire on a steady page (the series stay constant)."""


def find() -> str:
    found = shutil.which("promtool")
    if found is not None:
        return found
    why = "promtool not found: install Debian's prometheus package (deploy/quickstart.sh does)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; in CI a missing promtool is a failure, not a skip")
    pytest.skip(why)


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=TIMEOUT_S, check=False, cwd=REPO)


def _selector(name: str, labels: Mapping[str, str]) -> str:
    # PromQL string literals take JSON's escapes for the characters label values here can hold
    return name + "{" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def input_series(page: str) -> list[dict[str, str]]:
    """Every sample of a metrics page as a promtool input series, constant for 10 minutes."""
    return [
        {"series": _selector(s.name, {**s.labels, **SCRAPE_LABELS}), "values": f"{s.value!r}x40"}
        for family in text_string_to_metric_families(page)
        for s in family.samples
    ]


def alerts_on_scrape(promtool: str, page: str, firing: Sequence[Mapping[str, str]], work: Path) -> str:
    """'' when exactly ``firing`` (each an alert's labels: alertname, severity and the alert's own) fire on
    the page held steady; else promtool's account of what fired instead."""
    expected = [
        {"labels": _selector("ALERTS", {**a, **SCRAPE_LABELS, "alertstate": "firing"}), "value": 1} for a in firing
    ]
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": input_series(page),
                "promql_expr_test": [
                    {"expr": 'ALERTS{alertstate="firing"}', "eval_time": EVAL_AFTER, "exp_samples": expected}
                ],
            }
        ],
    }
    path = work / "scrape.rules.test.yml"
    path.write_text(json.dumps(test))  # JSON is YAML
    proc = run(promtool, "test", "rules", str(path))
    return "" if proc.returncode == 0 else (proc.stdout + proc.stderr)[-3000:]
