"""The picture of a drill (``bgpctl lab drill NAME --plot FILE.png``), built from its JSON report alone.

:func:`drill_figure` maps the report (:class:`bgpctl_lab.drill.DrillReport` as a dict, e.g. the JSON file
the drill wrote) onto :func:`bgpctl.render_plot.timeline_figure`: the per-path series (``paths``), one
mark per route change the watch saw at the edge (``route_timeline``), the call meter's per-flow silences
(``flow_gaps``), the fault and restore (``fault.applied_s``, ``restore.applied_s``), and the report's key
numbers in the title. Nothing is measured or recomputed here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bgpctl.render_plot import FlowGap, Mark, Timeline, timeline_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def drill_title(report: Mapping[str, Any]) -> str:
    """The drill's verdict, then its key numbers on a second line, as the summary states them."""
    head = f"drill {report['drill']} ({report['mode']}, edge {report.get('edge', 'frr')}): " + (
        "PASSED" if report["passed"] else "FAILED"
    )
    parts: list[str] = []
    meter = report.get("meter")
    if report.get("interruption_ms") is not None:
        parts.append(f"worst call silence {report['interruption_ms']:.0f} ms")
    if meter:
        parts.append(f"{meter['lost']} of {meter['sent']} packets lost")
    if report.get("route_moved_after_s") is not None:
        parts.append(f"edge moved {report['route_moved_after_s']:.2f} s after the fault")
    if report.get("route_changes") is not None:
        parts.append(f"{report['route_changes']} route change(s)")
    if report.get("violations"):
        parts.append(f"{len(report['violations'])} violation(s)")
    return head + ("\n" + ", ".join(parts) if parts else "")


def _marks(report: Mapping[str, Any]) -> list[Mark]:
    return [
        Mark(
            t=float(c["at_s"]),
            row=str(c["prefix"]),
            kind="nexthops" if c["nexthops"] else "gone",
            label=" ".join(c["nexthops"]) or "no route",
        )
        for c in report.get("route_timeline") or []
    ]


def drill_figure(report: Mapping[str, Any]) -> Figure:
    """The figure of one drill report (a dict: ``DrillReport.model_dump(mode="json")`` or its JSON file)."""
    fault = report["fault"]["applied_s"] if report.get("fault") else None
    restore = report["restore"]["applied_s"] if report.get("restore") else None
    marks = _marks(report)
    gaps = [FlowGap(flow=int(g["flow"]), start=float(g["start_s"]), end=float(g["end_s"])) for g in report["flow_gaps"]]
    meter = report.get("meter")
    watched = report["watch"]["node"] if report.get("watch") else "edge"
    x_end = max(
        [
            float(report.get("end_s") or 0.0),
            *(t for t in (fault, restore) if t is not None),
            *(m.t for m in marks),
            *(g.end for g in gaps),
        ]
    )
    return timeline_figure(
        Timeline(
            title=drill_title(report),
            x_end=x_end or 1.0,
            paths=report.get("paths") or [],
            marks=marks,
            marks_title=f"next hops in {watched}'s kernel FIB",
            flows=int(meter["settings"]["flows"]) if meter else 0,
            gaps=gaps,
            fault=fault,
            restore=restore,
        )
    )
