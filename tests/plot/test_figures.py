"""The figure builders, from small hand-made reports: what the picture shows is what the JSON says."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bgpctl.cli.main import cli
from bgpctl.render_plot import PlotError, check_target, replay_figure, save_png
from bgpctl_lab.drill import DrillReport
from bgpctl_lab.plot import drill_figure
from tests.plot.figure import PNG_MAGIC, gap_bars, health_bands, one_axes, path_axes, route_marks, vlines, ys


def _series(path: str, health: list[tuple[str, float, float]], rtt: float = 20.0) -> dict[str, Any]:
    t = [i * 0.5 for i in range(60)]
    return {
        "path": path,
        "bin_s": 0.5,
        "t": t,
        "sent": [10] * 60,
        "lost": [0] * 30 + [10] * 10 + [0] * 20,
        "loss_pct": [0.0] * 30 + [100.0] * 10 + [0.0] * 20,
        "rtt_ms": [rtt] * 30 + [None] * 10 + [rtt] * 20,
        "health": [{"health": h, "start": s, "end": e} for h, s, e in health],
    }


USE1_HEALTH = [("up", 0.0, 3.4), ("suspect", 3.4, 3.5), ("down", 3.5, 25.0), ("up", 25.0, 30.0)]
USW2_HEALTH = [("up", 0.0, 30.0)]


def drill_report() -> dict[str, Any]:
    """A drill report as the JSON file has it, cut down to what the picture reads."""
    return {
        "drill": "region-blackhole",
        "mode": "controller",
        "edge": "frr",
        "passed": True,
        "fault": {"at_s": 3.0, "applied_s": 3.01, "what": "link tgw-use1/eth2 down"},
        "restore": {"at_s": 15.0, "applied_s": 15.02, "what": "link tgw-use1/eth2 up"},
        "interruption_ms": 212.0,
        "meter": {"sent": 20000, "lost": 61, "settings": {"flows": 4}},
        "route_changes": 3,
        "route_moved_after_s": 0.41,
        "watch": {"node": "edge", "prefixes": ["203.0.113.0/26"], "interval_ms": 20},
        "route_timeline": [
            {"at_s": 3.42, "prefix": "203.0.113.0/26", "nexthops": ["198.18.1.12"]},
            {"at_s": 3.44, "prefix": "203.0.113.64/26", "nexthops": []},
            {"at_s": 27.1, "prefix": "203.0.113.0/26", "nexthops": ["198.18.1.11", "198.18.1.12"]},
        ],
        "flow_gaps": [
            {"flow": 1, "start_s": 3.05, "end_s": 3.26, "ms": 210.0},
            {"flow": 3, "start_s": 3.02, "end_s": 3.23, "ms": 212.0},
        ],
        "end_s": 41.3,
        "paths": [
            _series("media/use1/interconnect", USE1_HEALTH),
            _series("media/usw2/interconnect", USW2_HEALTH, rtt=70.0),
        ],
        "violations": [],
    }


def test_the_drill_figure_shows_what_the_report_says() -> None:
    report = drill_report()
    fig = drill_figure(report)
    axes = path_axes(fig)
    assert sorted(axes) == ["media/use1/interconnect", "media/usw2/interconnect"]  # one axes per path
    assert health_bands(axes["media/use1/interconnect"]) == USE1_HEALTH
    assert health_bands(axes["media/usw2/interconnect"]) == USW2_HEALTH
    marks = route_marks(fig)
    assert len(marks) == report["route_changes"] == len(report["route_timeline"])
    assert marks == [(c["at_s"], c["prefix"]) for c in report["route_timeline"]]
    assert gap_bars(fig) == [(3, 3.02, 3.23), (1, 3.05, 3.26)]
    lo, hi = one_axes(fig, "routes").get_xlim()
    assert lo <= 3.01 and hi >= 15.02 and hi >= report["end_s"]  # the time axis covers fault and restore
    assert set(vlines(fig, "fault")) == {3.01} and set(vlines(fig, "restore")) == {15.02}
    assert len(vlines(fig, "fault")) == len(fig.axes) - len(axes)  # on every axes but the loss twins
    title = fig.get_suptitle()
    assert "region-blackhole" in title and "PASSED" in title and "212 ms" in title and "61 of 20000" in title
    assert "0.41 s after the fault" in title and "3 route change(s)" in title


def test_the_rtt_and_loss_lines_are_the_series() -> None:
    fig = drill_figure(drill_report())
    ax = path_axes(fig)["media/usw2/interconnect"]
    (rtt,) = [line for line in ax.lines if line.get_gid() == "rtt"]
    rtt_ms = ys(rtt)
    assert rtt_ms[:30] == [70.0] * 30 and all(math.isnan(y) for y in rtt_ms[30:40])  # NaN where nothing was answered
    (loss,) = [line for ax in fig.axes if ax.get_gid() == "loss:media/usw2/interconnect" for line in ax.lines]
    assert ys(loss)[30:40] == [100.0] * 10


def test_a_drill_without_fault_or_paths_still_draws() -> None:
    """no-controller mode: no daemon, no per-path series; a drill that only measures has no fault."""
    report = drill_report() | {"fault": None, "restore": None, "paths": [], "route_timeline": [], "route_changes": 0}
    fig = drill_figure(report)
    assert path_axes(fig) == {} and route_marks(fig) == []
    assert vlines(fig, "fault") == [] and one_axes(fig, "routes").get_xlim()[1] >= 41.3


def replay_report() -> dict[str, Any]:
    change = {"peer": "edge", "kind": "withdraw", "prefix": "203.0.113.0/26", "path_id": 1, "why": "down"}
    return {
        "events": [
            {"at": 100.4, "t": 0.4, "transitions": [], "changes": [change | {"kind": "announce"}], "deferred": []},
            {
                "at": 120.3,
                "t": 20.3,
                "transitions": [],
                "changes": [change, change | {"peer": "tgw-use1", "path_id": 0}],
                "deferred": [],
            },
        ],
        "series": [_series("media/use1/interconnect", USE1_HEALTH)],
        "summary": {"samples": 3000, "duration_s": 30.2, "transitions": 4, "route_changes": 3, "exact": False},
    }


def test_the_replay_figure_marks_every_route_change_sent() -> None:
    report = replay_report()
    fig = replay_figure(report)
    assert list(path_axes(fig)) == ["media/use1/interconnect"]
    assert health_bands(path_axes(fig)["media/use1/interconnect"]) == USE1_HEALTH
    marks = route_marks(fig)
    assert len(marks) == report["summary"]["route_changes"]
    assert marks == [(0.4, "edge"), (20.3, "edge"), (20.3, "tgw-use1")]
    assert one_axes(fig, "routes").get_xlim() == (0.0, 30.2)
    assert "3000 samples over 30.2 s" in fig.get_suptitle() and "3 route change(s)" in fig.get_suptitle()
    assert not [ax for ax in fig.axes if ax.get_gid() == "meter"]  # a replay has no call meter
    (legend,) = fig.legends
    assert "fault" not in [t.get_text() for t in legend.get_texts()]  # nor a fault to explain


def test_the_png_is_written_whole(tmp_path: Path) -> None:
    out = tmp_path / "drill.png"
    save_png(drill_figure(drill_report()), out)
    data = out.read_bytes()
    assert data.startswith(PNG_MAGIC) and 20_000 < len(data) < 400_000
    assert [p.name for p in tmp_path.iterdir()] == ["drill.png"]  # no temporary file left


def test_a_picture_that_cannot_be_written_says_so(tmp_path: Path) -> None:
    with pytest.raises(PlotError, match=r"does not exist \(create it"):
        check_target(tmp_path / "nope" / "x.png")
    with pytest.raises(PlotError, match="is a directory"):
        check_target(tmp_path)
    with pytest.raises(PlotError, match="cannot write the picture"):
        save_png(drill_figure(drill_report()), tmp_path / "nope" / "x.png")


def test_without_matplotlib_the_message_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(PlotError, match=r"pip install 'bgpctl\[plot\]'"):
        drill_figure(drill_report())


README_REPORT = Path(__file__).resolve().parents[2] / "docs" / "img" / "drill-region-blackhole.json"


def test_the_readme_picture_is_drawn_from_a_real_drill_report() -> None:
    """docs/img/drill-region-blackhole.json is a lab run's report (controller mode): it is a DrillReport,
    and its picture shows what it says."""
    report = DrillReport.model_validate_json(README_REPORT.read_text()).model_dump(mode="json")
    fig = drill_figure(report)
    assert len(route_marks(fig)) == report["route_changes"] == 2
    axes = path_axes(fig)
    assert len(axes) == 6
    for series in report["paths"]:
        assert health_bands(axes[series["path"]]) == [
            (b["health"], round(b["start"], 6), round(b["end"], 6)) for b in series["health"]
        ]
    assert len(gap_bars(fig)) == len(report["flow_gaps"]) > 0
    assert one_axes(fig, "routes").get_xlim() == (0.0, report["end_s"])


def test_lab_drill_refuses_a_picture_it_could_not_write_before_touching_any_lab(tmp_path: Path) -> None:
    out = tmp_path / "missing" / "drill.png"
    result = CliRunner().invoke(cli, ["lab", "drill", "region-blackhole", "--lab", "plnone", "--plot", str(out)])
    assert result.exit_code == 1
    assert (
        result.stderr
        == f"bgpctl: --plot {out}: the directory {out.parent} does not exist (create it or name another file)\n"
    )
