"""Reading a bgpctl figure back: its axes, marks, bands and bars by the gids bgpctl.render_plot gives them.

Tests check what a picture shows against the JSON it was drawn from through these (the matplotlib
objects), never through pixels.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def xs(line: Line2D) -> list[float]:
    return [float(x) for x in np.asarray(line.get_xdata(), dtype=float)]


def ys(line: Line2D) -> list[float]:
    return [float(y) for y in np.asarray(line.get_ydata(), dtype=float)]


def path_axes(fig: Figure) -> dict[str, Axes]:
    """The per-path axes, by path."""
    out = {}
    for ax in fig.axes:
        gid = ax.get_gid() or ""
        if gid.startswith("path:"):
            out[gid[len("path:") :]] = ax
    return out


def one_axes(fig: Figure, gid: str) -> Axes:
    (ax,) = [ax for ax in fig.axes if ax.get_gid() == gid]
    return ax


def route_marks(fig: Figure) -> list[tuple[float, str]]:
    """(time, row label) of each route-change mark."""
    ax = one_axes(fig, "routes")
    labels = {round(t): lab.get_text() for t, lab in zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)}
    out = []
    for line in ax.lines:
        if line.get_gid() == "route-change":
            (x,), (y,) = xs(line), ys(line)
            out.append((x, labels[round(y)]))
    return sorted(out)


def health_bands(ax: Axes) -> list[tuple[str, float, float]]:
    """(health, start, end) of each colour band of a path's axes, in time order."""
    out = []
    for p in ax.patches:
        gid = p.get_gid() or ""
        if gid.startswith("health:"):
            assert isinstance(p, Rectangle)
            out.append((gid[len("health:") :], round(p.get_x(), 6), round(p.get_x() + p.get_width(), 6)))
    return sorted(out, key=lambda b: b[1])


def gap_bars(fig: Figure) -> list[tuple[int, float, float]]:
    """(flow, start, end) of each silence bar of the meter's axes."""
    out = []
    for c in one_axes(fig, "meter").collections:
        gid = c.get_gid() or ""
        if gid.startswith("gaps:"):
            assert isinstance(c, PolyCollection)
            for path in c.get_paths():
                x = np.asarray(path.vertices, dtype=float)[:, 0]
                out.append((int(gid[len("gaps:") :]), round(float(x.min()), 6), round(float(x.max()), 6)))
    return sorted(out, key=lambda g: (g[1], g[0]))


def vlines(fig: Figure, gid: str) -> list[float]:
    """The x of every vertical line with ``gid`` (fault, restore) across the figure."""
    return [xs(line)[0] for ax in fig.axes for line in ax.lines if line.get_gid() == gid]
