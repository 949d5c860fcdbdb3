"""The Grafana dashboard and the Prometheus rules against promtool and against the daemon's own registry.

* ``promtool check rules`` and ``promtool test rules`` (deploy/prometheus/bgpctl.rules.test.yml: synthetic
  series -> the alerts that must fire and those that must not);
* every PromQL expression of the dashboard (panel targets, the variables' ``label_values`` selectors)
  parsed by promtool (written into a temporary rules file);
* every metric name an expression of either uses exists in the daemon's registry (``Metrics()``, the
  only place the daemon registers metrics: checked here too), counting the sample suffixes its type
  exposes (``_total`` for a counter, ``_bucket``/``_count``/``_sum`` for a histogram), the rules' own
  recorded series, and the series Prometheus makes itself (``up``, ``ALERTS``). A misspelt name fails.

promtool comes from Debian's ``prometheus`` package (deploy/quickstart.sh installs it). Without it these
tests skip, except in CI (CI=true), where a missing promtool fails them.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from ruamel.yaml import YAML

from bgpctl.core.controller import Controller
from bgpctl.core.plan import path_states
from bgpctl.core.types import Sample
from bgpctl.daemon.sinks import Metrics, MetricsSink, export_routing_state
from tests import promtool as promtool_support
from tests.control.support import T0, lab_policy

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "deploy" / "prometheus" / "bgpctl.rules.yml"
RULES_TEST = REPO / "deploy" / "prometheus" / "bgpctl.rules.test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "bgpctl.json"

PROMETHEUS_MADE = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds", "scrape_samples_scraped"}
"""Series Prometheus itself makes for a target or for its alerts, not the daemon."""

GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}
"""Grafana's built-in interval variables, which PromQL cannot parse, as promtool-checkable durations."""

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


# --------------------------------------------------------------------------------------------
# promtool


@pytest.fixture(scope="module")
def promtool() -> str:
    return promtool_support.find()


def _run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return promtool_support.run(promtool, *args)


def test_promtool_checks_the_rules(promtool: str) -> None:
    proc = _run(promtool, "check", "rules", str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_promtool_unit_tests_of_the_rules_pass(promtool: str) -> None:
    proc = _run(promtool, "test", "rules", str(RULES_TEST))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout, proc.stdout


def test_the_rule_unit_tests_cover_the_agreed_alerts() -> None:
    tests = YAML(typ="safe").load(RULES_TEST.read_text())
    firing = {
        case["alertname"] for group in tests["tests"] for case in group.get("alert_rule_test", []) if case["exp_alerts"]
    }
    must = {
        "BgpctlSessionDown",
        "BgpctlRegionLost",
        "BgpctlReloadFailed",
        "BgpctlHookFailing",
        "BgpctlHookDropping",
        "BgpctlPathFlapping",
    }
    assert must <= firing, must - firing
    assert firing == {r["alert"] for r in _rules() if "alert" in r}, "every alert has a case that fires"


def test_promtool_parses_every_dashboard_expression(promtool: str, tmp_path: Path) -> None:
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:expr_{i}", "expr": grafana_free(e.expr)} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    proc = _run(promtool, "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in proc.stdout, proc.stdout


def test_promtool_fails_a_broken_dashboard_expression(promtool: str, tmp_path: Path) -> None:
    """The check above can fail: the same way, a panel expression missing a bracket is refused."""
    path = tmp_path / "dashboard.rules.yml"
    bad = 'sum by (peer) (increase(bgpctl_route_changes_total{instance=~"$instance"}[1m])'
    path.write_text(json.dumps({"groups": [{"name": "d", "rules": [{"record": "d:e", "expr": bad}]}]}))
    proc = _run(promtool, "check", "rules", str(path))
    assert proc.returncode != 0
    assert "parse error" in proc.stdout + proc.stderr


# --------------------------------------------------------------------------------------------
# the metric names


@dataclass(frozen=True)
class Expr:
    where: str
    expr: str


def _rules() -> list[dict[str, Any]]:
    doc = YAML(typ="safe").load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def rule_exprs() -> list[Expr]:
    return [Expr(f"rules: {r.get('alert') or r.get('record')}", r["expr"]) for r in _rules()]


def recorded_names() -> set[str]:
    return {r["record"] for r in _rules() if "record" in r}


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*?)\s*,\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", re.S)


def _walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _walk_panels(p.get("panels", []))


def dashboard_exprs(dash: dict[str, Any]) -> list[Expr]:
    """Every PromQL expression of the dashboard: panel targets, and the selector of each ``label_values``
    query variable."""
    out = [
        Expr(f"panel {p['title']!r} {t['refId']}", t["expr"])
        for p in _walk_panels(dash["panels"])
        for t in p.get("targets", [])
    ]
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = _LABEL_VALUES.match(query)
        assert m is not None, f"variable {v['name']}: only label_values(SELECTOR, LABEL) queries are checked: {query}"
        out.append(Expr(f"variable {v['name']}", m.group(1)))
    return out


def grafana_free(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    return expr


def registry_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry can expose (a labelled metric with no child yet included)."""
    return {f"{family.name}{suffix}" for family in registry.collect() for suffix in _SUFFIXES[family.type]}


_AGGREGATORS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
}
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "start", "end", "inf", "nan"}
_LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*=\s*"([^"]+)"')
_TOKEN = re.compile(r"(?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<number>[0-9][0-9A-Za-z_.]*)|(?P<other>\S)")


def metric_names(expr: str) -> set[str]:
    """The metric names a (promtool-valid) PromQL expression selects: identifiers that are not functions,
    aggregators, keywords, label names of ``by (...)``/``on (...)`` lists, nor inside label matchers,
    strings or ``[range]`` brackets; plus ``{__name__="..."}`` matchers."""
    names = set(_NAME_MATCHER.findall(expr))
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text)]
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        following = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "ident" and value.lower() in _LABEL_LISTS:
            if following == "(":  # skip the label list
                i = next(j for j in range(i + 1, len(tokens)) if tokens[j][1] == ")")
        elif kind == "ident" and following != "(" and value not in _AGGREGATORS and value.lower() not in _KEYWORDS:
            names.add(value)
        i += 1
    return names


def unknown_names(exprs: list[Expr], known: set[str]) -> list[str]:
    return [
        f"{e.where}: {name} is no metric of the daemon's registry: {e.expr}"
        for e in exprs
        for name in sorted(metric_names(grafana_free(e.expr)) - known)
    ]


def _known() -> set[str]:
    return registry_names(Metrics().registry) | recorded_names() | PROMETHEUS_MADE


def test_every_metric_the_rules_and_the_dashboard_use_exists_in_the_daemons_registry() -> None:
    exprs = rule_exprs() + dashboard_exprs(json.loads(DASHBOARD.read_text()))
    assert unknown_names(exprs, _known()) == []
    used = set().union(*(metric_names(grafana_free(e.expr)) for e in exprs))
    assert len(used & registry_names(Metrics().registry)) >= 20, sorted(used)  # the scan found names at all


def test_a_misspelt_metric_in_the_dashboard_fails_the_check() -> None:
    dash = json.loads(DASHBOARD.read_text())
    target = next(
        t
        for p in _walk_panels(dash["panels"])
        for t in p.get("targets", [])
        if "bgpctl_route_changes_total" in t["expr"]
    )
    target["expr"] = target["expr"].replace("bgpctl_route_changes_total", "bgpctl_route_change_total")
    problems = unknown_names(rule_exprs() + dashboard_exprs(dash), _known())
    assert len(problems) == 1 and "bgpctl_route_change_total is no metric" in problems[0], problems


def test_a_counter_without_its_total_suffix_fails_the_check() -> None:
    # bgpctl_path_transitions is the counter's family name; Prometheus only ever sees ..._total
    exprs = [Expr("rules: typo", "increase(bgpctl_path_transitions[5m]) > 0")]
    assert unknown_names(exprs, _known()) == [
        "rules: typo: bgpctl_path_transitions is no metric of the daemon's registry: "
        "increase(bgpctl_path_transitions[5m]) > 0"
    ]


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (peer, kind) (increase(bgpctl_route_changes_total{peer=~"$x"}[$__rate_interval]))',
            {"bgpctl_route_changes_total"},
        ),
        ("a_metric / on (job) group_left (region) b:rec:max", {"a_metric", "b:rec:max"}),
        ('max without (path) (x{state=~"up|down", path!="by"}) > bool 1', {"x"}),
        ('count(ALERTS{alertname=~"Bgpctl.*"}) or vector(0)', {"ALERTS"}),
        ('{__name__="bgpctl_fail_static"} offset 5m', {"bgpctl_fail_static"}),
        ("time() - max(ts_seconds > 0)", {"ts_seconds"}),
        ('label_replace(up, "a", "$1", "job", "(.*)")', {"up"}),
        ("rate(m_total[5m:1m]) * 1e3", {"m_total"}),
    ],
)
def test_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(grafana_free(expr)) == names


def test_the_daemon_registers_metrics_only_in_metrics() -> None:
    """The registry checked above is the whole of what the daemon exports: no prometheus_client metric is
    made anywhere in bgpctl but in ``Metrics`` (bgpctl/daemon/sinks.py)."""
    kinds = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}
    made = []
    for path in sorted((REPO / "bgpctl").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        imported = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus_client")
            for alias in node.names
            if alias.name in kinds
        }
        owner = {
            id(call): cls.name
            for cls in ast.walk(tree)
            if isinstance(cls, ast.ClassDef)
            for call in ast.walk(cls)
            if isinstance(call, ast.Call)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                via_module = isinstance(f, ast.Attribute) and getattr(f.value, "id", "") == "prometheus_client"
                if (name in imported or (via_module and name in kinds)) and owner.get(id(node)) != "Metrics":
                    made.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert made == []


def test_the_dashboard_is_importable_as_is() -> None:
    """Grafana's classic model: a Prometheus datasource variable every query goes through (so the import
    asks for the datasource), the instance/service/region/path variables, unique panel ids, no panel
    overlapping another."""
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 39 and dash["uid"] == "bgpctl"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"instance", "service", "region", "path"} <= set(variables)
    panels = list(_walk_panels(dash["panels"]))
    assert len({p["id"] for p in panels}) == len(panels)
    for p in panels:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"] and all(t["datasource"] == p["datasource"] for t in p["targets"]), p["title"]
        assert p.get("description"), f"panel {p['title']!r} says what it shows"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[x, y]!r}"
                cells[x, y] = p["title"]


DOC = REPO / "docs" / "observability.md"


def test_the_docs_list_every_metric_and_every_alert_has_its_runbook_section() -> None:
    doc = DOC.read_text()
    exposed = {
        f"{f.name}_total" if f.type == "counter" else f.name for f in Metrics().registry.collect()
    }  # what a scrape shows
    assert sorted(n for n in exposed if f"`{n}`" not in doc) == [], "add them to docs/observability.md (Metrics)"
    anchors = {
        re.sub(r"[^a-z0-9_-]", "", h.strip().lower().replace(" ", "-")) for h in re.findall(r"^#+ (.+)$", doc, re.M)
    }
    for rule in _rules():
        if "alert" not in rule:
            continue
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/observability.md#{rule['alert'].lower()}", url
        assert rule["alert"].lower() in anchors, f"docs/observability.md has no section ### {rule['alert']}"
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule.get("for"), f"{rule['alert']} has a for: duration"


# --------------------------------------------------------------------------------------------
# the rules on what the daemon's code exports


def _page(lost_region: str | None) -> str:
    """The metrics page after 6 s of probes (10 a second per path, ``lost_region``'s all lost) through the
    daemon's controller, its metrics sink and its routing-state export, every BGP session up."""
    policy, m = lab_policy(), Metrics()
    c, sink = Controller(policy), MetricsSink(m)
    for i in range(60):
        t = T0 + i * 0.1
        for k in c.keys:
            c.sent(k, i, t)
            c.add(k, Sample(i, t, None if k.region == lost_region else t + 0.012))
        step = c.step(t + 0.05)
        sink.measured(step.stats)
        for tr in step.transitions:
            sink.transition(tr)
        if step.plan is not None:
            sink.planned(step.plan, at=step.at, new_notes=step.plan.notes)
    assert c.last_plan is not None
    peers = [p.name for p in policy.peers]
    for peer in peers:
        m.session_up.labels(peer).set(1)
    export_routing_state(
        m,
        states=path_states(policy, c.health, c.overrides)[0],
        peers=peers,
        announced=c.last_plan.desired,
        policy_overrides=policy.overrides,
        runtime=c.runtime,
    )
    return generate_latest(m.registry).decode()


def test_no_alert_fires_on_a_healthy_daemons_page(promtool: str, tmp_path: Path) -> None:
    assert promtool_support.alerts_on_scrape(promtool, _page(None), [], tmp_path) == ""


def test_region_lost_fires_for_every_service_of_a_dead_region_on_the_daemons_page(
    promtool: str, tmp_path: Path
) -> None:
    lost = [
        {"alertname": "BgpctlRegionLost", "severity": "critical", "service": s, "region": "usw2"}
        for s in ("media", "signalling", "api")
    ]
    assert promtool_support.alerts_on_scrape(promtool, _page("usw2"), lost, tmp_path) == ""
    # and the check is not blind: the same page does not pass for use1
    wrong = [{**a, "region": "use1"} for a in lost]
    assert "BgpctlRegionLost" in promtool_support.alerts_on_scrape(promtool, _page("usw2"), wrong, tmp_path)


KNOWN_LINT = {
    "bgpctl_path_jitter_ms metric names should not contain abbreviated units",
    "bgpctl_path_rtt_p50_ms metric names should not contain abbreviated units",
    "bgpctl_path_rtt_p95_ms metric names should not contain abbreviated units",
}
"""promtool's lint of names that predate this check (renaming them would break dashboards and rules in use):
shrink, never grow."""


def test_promtool_lints_the_daemons_page_with_no_new_complaint(promtool: str) -> None:
    proc = subprocess.run(
        [promtool, "check", "metrics"], input=_page("usw2"), capture_output=True, text=True, timeout=60, check=False
    )
    complaints = {line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()}
    assert complaints == KNOWN_LINT, complaints - KNOWN_LINT
