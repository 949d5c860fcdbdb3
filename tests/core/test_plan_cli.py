"""``bgpctl policy plan``: tables and JSON for the lab policy, with and without a stats snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bgpctl.cli.main import cli
from bgpctl.errors import EXIT_REFUSED
from tests.core.plans.support import POLICIES

LAB = str(POLICIES / "lab.yaml")
SNAPSHOT = str(POLICIES / "examples" / "lab-snapshot.json")


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _routes(report: dict[str, Any], peer: str) -> list[tuple[str, int, str, int, int | None, str | None]]:
    return [
        (r["prefix"], r["path_id"], r["next_hop"], len(r["as_path"]), r["med"], r["state"])
        for r in report["peers"][peer]["routes"]
    ]


def test_without_stats_every_path_is_up() -> None:
    code, out, err = _invoke("policy", "plan", LAB, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert {p["health"] for p in report["paths"]} == {"up"}
    assert _routes(report, "edge") == [
        ("203.0.113.0/26", 1, "198.18.1.11", 1, 0, "preferred"),
        ("203.0.113.0/26", 2, "198.18.1.12", 1, 0, "preferred"),
        ("203.0.113.64/26", 1, "198.18.1.11", 1, 0, "preferred"),
        ("203.0.113.64/26", 2, "198.18.1.12", 1, 0, "preferred"),
        ("203.0.113.128/26", 1, "198.18.1.11", 1, 0, "preferred"),
        ("203.0.113.128/26", 2, "198.18.1.12", 2, 100, "standby"),
    ]
    assert _routes(report, "tgw-use1") == [("192.0.2.0/24", 0, "198.18.1.1", 1, None, "preferred")]
    assert report["peers"]["tgw-use1"]["routes"][0]["communities"] == ["7224:7300"]


def test_the_example_snapshot_is_judged_by_decide() -> None:
    code, out, err = _invoke("policy", "plan", LAB, "--stats", SNAPSHOT, "--json")
    assert code == 0, err
    report = json.loads(out)
    health = {p["path"]: (p["health"], p["state"]) for p in report["paths"]}
    assert health == {
        "media/use1/interconnect": ("degraded", "degraded"),
        "media/usw2/interconnect": ("up", "preferred"),
        "signalling/use1/interconnect": ("up", "preferred"),
        "signalling/usw2/interconnect": ("up", "preferred"),
        "api/use1/interconnect": ("down", "down"),
        "api/usw2/interconnect": ("up", "preferred"),
    }
    assert ("203.0.113.0/26", 1, "198.18.1.11", 4, 500, "degraded") in _routes(report, "edge")
    assert all(r[0] != "203.0.113.128/26" or r[1] == 2 for r in _routes(report, "edge"))  # api/use1 withdrawn
    assert _routes(report, "tgw-use1") == [("192.0.2.0/24", 0, "198.18.1.1", 4, None, "degraded")]


def test_table_output() -> None:
    code, out, err = _invoke("policy", "plan", LAB, "--stats", SNAPSHOT)
    assert code == 0, err
    lines = out.splitlines()
    assert "peer edge (edge, AS65010, ADD-PATH send):" in lines
    header = lines[lines.index("peer edge (edge, AS65010, ADD-PATH send):") + 1].split()
    assert header == ["PREFIX", "PATH", "ID", "NEXT", "HOP", "AS", "PATH", "MED", "COMMUNITIES", "STATE"]
    row = lines[lines.index("peer edge (edge, AS65010, ADD-PATH send):") + 2].split()
    assert row == [
        "203.0.113.0/26",
        "1",
        "198.18.1.11",
        "65000",
        "65000",
        "65000",
        "65000",
        "500",
        "-",
        "degraded",
        "(media/use1/interconnect)",
    ]
    assert any(line.split()[:3] == ["api/use1/interconnect", "down", "down"] for line in lines)


@pytest.mark.parametrize(
    ("snapshot", "message"),
    [
        ({"media/eu1/interconnect": {"samples": 1, "lost": 0, "consecutive_lost": 0}}, "is not a path the policy"),
        ({"media/use1/interconnect": {"samples": 1, "lost": 0}}, "'consecutive_lost' is a required property"),
        (
            {"media/use1/interconnect": {"samples": 1, "lost": 0, "consecutive_lost": 0, "rtt": 5}},
            "Additional properties are not allowed",
        ),
        ({"media-use1": {"samples": 1, "lost": 0, "consecutive_lost": 0}}, "does not match"),
        ({"media/use1/interconnect": {"samples": 1, "lost": 3, "consecutive_lost": 0}}, "cannot exceed samples"),
    ],
)
def test_bad_snapshots_are_refused(tmp_path: Path, snapshot: dict[str, Any], message: str) -> None:
    f = tmp_path / "snap.json"
    f.write_text(json.dumps(snapshot))
    code, out, err = _invoke("policy", "plan", LAB, "--stats", str(f))
    assert code == EXIT_REFUSED
    assert f"{f}" in err and message in err
    assert out == ""


def test_a_bad_policy_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        (POLICIES / "lab.yaml")
        .read_text()
        .replace("max_route_changes_per_minute: 60", "max_route_changes_per_minute: 0")
    )
    code, _, err = _invoke("policy", "plan", str(f))
    assert code == EXIT_REFUSED
    assert "guards.max_route_changes_per_minute" in err
