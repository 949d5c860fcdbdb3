"""What the drill report carries for a picture: per-path series and the meter's silences on the drill's timeline.

The drill's timeline starts when the call meter starts (``t0_unix``, realtime). In controller mode the
daemon on cr records every settled probe (``--record``, :mod:`bgpctl.core.recording`) and logs every
health change (``path.health``): :func:`path_series` bins the probes sent during the drill per path
(:class:`bgpctl.core.series.SeriesBuilder`) and lays the health over it, the health at the drill's start
being the last one the daemon logged before it. :func:`flow_gaps` moves the meter's per-flow silences
(seconds since its first send) onto the drill's timeline. Pure: the caller reads the files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from bgpctl.core.recording import Event, Settled
from bgpctl.core.series import SeriesBuilder
from bgpctl_lab.meter_report import MeterReport

SERIES_BIN_S = 0.25
"""Bin width of a drill's per-path series: a few probes of the slowest path (TCP every 200 ms) per bin."""


class FlowGap(BaseModel):
    """One silence of one call-meter flow, on the drill's timeline (seconds since the meter started)."""

    model_config = ConfigDict(frozen=True)

    flow: int
    start_s: float
    end_s: float
    ms: float


def flow_gaps(meter: MeterReport | None, t0_unix: float) -> list[FlowGap]:
    """Every flow's listed silences (``flows[].gaps``), in time order, on the drill's timeline."""
    if meter is None:
        return []
    shift = meter.started_unix - t0_unix
    gaps = [
        FlowGap(flow=f.flow, start_s=round(g.start_s + shift, 4), end_s=round(g.end_s + shift, 4), ms=round(g.ms, 3))
        for f in meter.flows
        for g in f.gaps
    ]
    return sorted(gaps, key=lambda g: (g.start_s, g.flow))


def health_before(log: Iterable[Mapping[str, Any]], before_unix: float) -> dict[str, str]:
    """Each path's health as the daemon last logged it (``path.health`` events) before ``before_unix``."""
    out: dict[str, str] = {}
    for ev in log:
        if ev.get("event") == "path.health" and ev["at_unix"] <= before_unix:
            out[str(ev.get("path"))] = str(ev.get("new"))
    return out


def path_series(
    recording: Iterable[Event],
    log: Iterable[Mapping[str, Any]],
    t0_unix: float,
    end_unix: float,
    bin_s: float = SERIES_BIN_S,
) -> list[dict[str, Any]]:
    """Per path: RTT, loss and health from ``t0_unix`` to ``end_unix`` (:mod:`bgpctl.core.series`), from the
    daemon's recording (its settled probes) and its log (``at_unix`` added, :func:`bgpctl_lab.drill.daemon_events`)."""
    events = list(log)
    series: SeriesBuilder[str] = SeriesBuilder(origin=t0_unix, bin_s=bin_s, initial=health_before(events, t0_unix))
    for ev in events:
        if ev.get("event") == "path.health" and t0_unix < ev["at_unix"] <= end_unix:
            series.health(str(ev.get("path")), ev["at_unix"], str(ev.get("new")))
    for rec in recording:
        if isinstance(rec, Settled) and t0_unix <= rec.sample.sent <= end_unix:
            series.add(str(rec.key), rec.sample)
    return series.to_dicts(t0_unix, t0_unix, end_unix)
