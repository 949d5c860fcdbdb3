"""Pictures of a replay (and, through :mod:`bgpctl_lab.plot`, of a drill): matplotlib, Agg, no screen.

A figure is built by a pure function from the structured report the command already produces (the
replay's JSON lines gathered in :func:`replay_report`; the drill's JSON report), so a test can check
the figure against the JSON. Layout, on one time axis (seconds):

* one axes per path (gid ``path:<path>``): the mean RTT per bin (left axis, ms), the loss per bin (right
  axis, %, a twin axes with gid ``loss:<path>``), and the health as colour bands (``axvspan`` patches
  with gid ``health:<health>``), one band per interval of the series' ``health``;
* one axes of route changes (gid ``routes``), one row per prefix (drill: the edge's kernel FIB) or peer
  (replay: what bgpctl sent), one marker (a ``Line2D`` with gid ``route-change``) per change;
* for a drill, one axes of the call meter (gid ``meter``): each flow's silences as bars (a
  ``broken_barh`` collection per flow with gid ``gaps:<flow>``);
* the fault and restore as vertical lines (gid ``fault`` / ``restore``) across every axes;
* the report's key numbers in the title.

matplotlib is imported only here, and only when a picture is asked for (``bgpctl --help`` stays fast:
tests/cli/test_startup.py); without it the CLI says how to install it (``pip install 'bgpctl[plot]'``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bgpctl.errors import BgpctlError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOT_MISSING = "a picture needs matplotlib: pip install 'bgpctl[plot]'"

HEALTH_COLOURS = {
    "up": "#2ca02c",
    "degraded": "#ff7f0e",
    "suspect": "#e6c619",
    "down": "#d62728",
    "unknown": "#b0b0b0",
}
HEALTH_ALPHA = 0.22
WIDTH_IN = 11.0
PATH_HEIGHT_IN = 1.25
DPI = 90


class PlotError(BgpctlError):
    """A picture could not be made (matplotlib missing, the file not writable)."""


@dataclass(frozen=True, slots=True)
class Mark:
    """One route change: when, on which row (a prefix or a peer), and what (``kind``, a short ``label``)."""

    t: float
    row: str
    kind: str  # "announce", "withdraw", "nexthops" (the FIB's next hops changed), "gone" (no route)
    label: str = ""


@dataclass(frozen=True, slots=True)
class FlowGap:
    flow: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Timeline:
    """What one picture shows, already on its time axis (seconds)."""

    title: str  # may hold a line break
    x_end: float
    paths: Sequence[Mapping[str, Any]]  # bgpctl.core.series dicts
    marks: Sequence[Mark]
    marks_title: str
    flows: int = 0  # > 0: a meter axes with this many flows
    gaps: Sequence[FlowGap] = field(default_factory=tuple)
    fault: float | None = None
    restore: float | None = None


MARKERS = {"announce": "^", "withdraw": "v", "nexthops": "o", "gone": "X"}
LABELLED_MARKS_MAX = 24  # more marks than this: no text beside each (it would only be ink)


def _nan(values: Iterable[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def require_matplotlib() -> None:
    """Import matplotlib with the Agg backend; PlotError saying how to install it when it is missing."""
    try:
        import matplotlib  # noqa: PLC0415 (only when a picture is asked for)
    except ImportError as e:
        raise PlotError(PLOT_MISSING) from e
    matplotlib.use("Agg", force=False)


def timeline_figure(tl: Timeline) -> Figure:
    """The figure of ``tl`` (see the module's docstring for what each artist is and its gid)."""
    require_matplotlib()
    from matplotlib.figure import Figure  # noqa: PLC0415

    rows = len(tl.paths) + 1 + (1 if tl.flows else 0)
    ratios = [1.0] * len(tl.paths) + [_marks_ratio(tl.marks)] + ([max(0.8, tl.flows / 10)] if tl.flows else [])
    fig = Figure(figsize=(WIDTH_IN, max(3.0, PATH_HEIGHT_IN * sum(ratios) + 1.4)), dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": ratios})[:, 0]
    for ax, series in zip(axes, tl.paths, strict=False):
        _path_axes(ax, series)
    _marks_axes(axes[len(tl.paths)], tl.marks, tl.marks_title)
    if tl.flows:
        _meter_axes(axes[-1], tl.flows, tl.gaps)
    for ax in axes:
        for t, gid, colour in ((tl.fault, "fault", "#d62728"), (tl.restore, "restore", "#1f77b4")):
            if t is not None:
                ax.axvline(t, color=colour, linestyle="--", linewidth=1.2, gid=gid)
    axes[-1].set_xlim(0.0, tl.x_end)
    axes[-1].set_xlabel("seconds")
    fig.suptitle(tl.title, fontsize=10)
    handles = _legend(fault=tl.fault is not None, restore=tl.restore is not None)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    return fig


def _marks_ratio(marks: Sequence[Mark]) -> float:
    return max(0.7, 0.25 * len({m.row for m in marks}))


def _path_axes(ax: Axes, series: Mapping[str, Any]) -> None:
    path = str(series["path"])
    ax.set_gid(f"path:{path}")
    for band in series["health"]:
        ax.axvspan(
            band["start"],
            band["end"],
            facecolor=HEALTH_COLOURS.get(band["health"], HEALTH_COLOURS["unknown"]),
            alpha=HEALTH_ALPHA,
            linewidth=0,
            gid=f"health:{band['health']}",
        )
    t = list(series["t"])
    ax.plot(t, _nan(series["rtt_ms"]), drawstyle="steps-post", color="#1f3b73", linewidth=1.0, gid="rtt")
    ax.set_ylabel("RTT ms", fontsize=8)
    ax.set_title(path, fontsize=9, loc="left")
    ax.tick_params(labelsize=8)
    loss = ax.twinx()
    loss.set_gid(f"loss:{path}")
    loss.plot(t, _nan(series["loss_pct"]), drawstyle="steps-post", color="#c03030", linewidth=0.9, gid="loss")
    loss.set_ylim(0, 105)
    loss.set_ylabel("loss %", fontsize=8, color="#c03030")
    loss.tick_params(labelsize=8, colors="#c03030")


def _marks_axes(ax: Axes, marks: Sequence[Mark], title: str) -> None:
    ax.set_gid("routes")
    rows = sorted({m.row for m in marks})
    index = {r: i for i, r in enumerate(rows)}
    labelled = len(marks) <= LABELLED_MARKS_MAX
    for m in marks:
        y = index[m.row]
        ax.plot(
            [m.t],
            [y],
            marker=MARKERS.get(m.kind, "o"),
            linestyle="none",
            markersize=6,
            color="#d62728" if m.kind in ("withdraw", "gone") else "#333333",
            gid="route-change",
        )
        if labelled and m.label:
            ax.annotate(m.label, (m.t, y), xytext=(4, 3), textcoords="offset points", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_ylim(-0.7, max(0.7, len(rows) - 0.3))
    ax.set_title(f"{title}: {len(marks)} change(s)", fontsize=9, loc="left")
    ax.tick_params(labelsize=8)


def _meter_axes(ax: Axes, flows: int, gaps: Sequence[FlowGap]) -> None:
    ax.set_gid("meter")
    by_flow: dict[int, list[tuple[float, float]]] = {}
    for g in gaps:
        by_flow.setdefault(g.flow, []).append((g.start, g.end - g.start))
    for flow, bars in sorted(by_flow.items()):
        ax.broken_barh(bars, (flow - 0.4, 0.8), facecolors="#d62728", gid=f"gaps:{flow}")
    ax.set_ylim(-0.7, flows - 0.3)
    ax.set_yticks(range(flows), [str(f) for f in range(flows)], fontsize=7)
    ax.set_ylabel("flow", fontsize=8)
    ax.set_title(f"call meter: silences per flow ({len(gaps)})", fontsize=9, loc="left")
    ax.tick_params(labelsize=8)


def _legend(*, fault: bool, restore: bool) -> list[Any]:
    """The health colours and the lines; fault and restore only when the picture has them (not a replay)."""
    from matplotlib.lines import Line2D  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    return [
        *(Patch(facecolor=c, alpha=HEALTH_ALPHA * 2, label=h) for h, c in HEALTH_COLOURS.items()),
        Line2D([], [], color="#1f3b73", label="RTT"),
        Line2D([], [], color="#c03030", label="loss"),
        *([Line2D([], [], color="#d62728", linestyle="--", label="fault")] if fault else []),
        *([Line2D([], [], color="#1f77b4", linestyle="--", label="restore")] if restore else []),
    ]


def check_target(path: Path) -> None:
    """Before a long run: matplotlib is there and the picture's directory exists (PlotError otherwise)."""
    require_matplotlib()
    if path.is_dir():
        raise PlotError(f"--plot {path}: is a directory (name a file, e.g. {path / 'drill.png'})")
    if not path.parent.is_dir():
        raise PlotError(f"--plot {path}: the directory {path.parent} does not exist (create it or name another file)")


def save_png(fig: Figure, path: Path) -> None:
    """Write ``fig`` as a PNG (to a temporary name first, so a reader never sees half a file)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

    FigureCanvasAgg(fig)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png")
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise PlotError(f"{path}: cannot write the picture: {e.strerror or e} (check the directory)") from None


# --------------------------------------------------------------------------------------------
# replay


def replay_report(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The replay's JSON lines (``bgpctl replay --json``) gathered into one report: ``events``,
    ``series`` (one per path) and ``summary``."""
    report: dict[str, Any] = {"events": [], "series": [], "summary": {}}
    for obj in objects:
        if "summary" in obj:
            report["summary"] = obj["summary"]
        elif "series" in obj:
            report["series"].append(obj["series"])
        else:
            report["events"].append(obj)
    return report


def replay_title(summary: Mapping[str, Any]) -> str:
    return (
        f"replay ({'exact, daemon recording' if summary.get('exact') else 'fixed tick'}): "
        f"{summary['samples']} samples over {summary['duration_s']:.1f} s, "
        f"{summary['transitions']} health change(s), {summary['route_changes']} route change(s)"
        + (f", up to {summary['deferred_max']} deferred" if summary.get("deferred_max") else "")
    )


def replay_figure(report: Mapping[str, Any]) -> Figure:
    """The picture of a replay report (:func:`replay_report`): one mark per route change sent."""
    marks = [
        Mark(t=float(ev["t"]), row=str(c["peer"]), kind=str(c["kind"]), label=str(c["prefix"]))
        for ev in report["events"]
        for c in ev["changes"]
    ]
    summary = report["summary"]
    return timeline_figure(
        Timeline(
            title=replay_title(summary),
            x_end=max(float(summary["duration_s"]), max((m.t for m in marks), default=0.0)) or 1.0,
            paths=report["series"],
            marks=marks,
            marks_title="route changes sent, per peer",
        )
    )
