"""Per-path summaries for ``bgpctl probe``, laid out the way ``mtr --report`` does (pure)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from bgpctl.core.stats import PathWindow
from bgpctl.core.types import PathKey, PathStats, Sample
from bgpctl.probe.protocol import Counters, Problem


@dataclass(frozen=True, slots=True)
class PathSummary:
    key: PathKey
    kind: str
    sent: int
    lost: int
    last_ms: float | None
    avg_ms: float | None
    best_ms: float | None
    worst_ms: float | None
    stdev_ms: float | None
    stats: PathStats  # p50/p95, RFC 3550 jitter and MOS, from the core's PathWindow over every sample
    problems: dict[str, int]

    @property
    def loss_pct(self) -> float:
        return 100.0 * self.lost / self.sent if self.sent else 0.0


def summarize(key: PathKey, kind: str, samples: Sequence[Sample], counters: Counters) -> PathSummary:
    ordered = sorted(samples, key=lambda s: s.seq)
    rtts = [s.rtt * 1000.0 for s in ordered if s.rtt is not None]
    if ordered:
        span = ordered[-1].sent - min(s.sent for s in ordered)
        window = PathWindow(window_s=span + 1.0)
        for s in ordered:
            window.add(s)
        stats = window.stats(now=ordered[-1].sent + 0.5)
    else:
        stats = PathStats(
            samples=0, lost=0, consecutive_lost=0, rtt_p50_ms=None, rtt_p95_ms=None, jitter_ms=None, mos=None
        )
    problems = {p.value: counters[p.value] for p in Problem if counters[p.value]}
    return PathSummary(
        key=key,
        kind=kind,
        sent=len(ordered),
        lost=sum(1 for s in ordered if s.received is None),
        last_ms=rtts[-1] if rtts else None,
        avg_ms=statistics.fmean(rtts) if rtts else None,
        best_ms=min(rtts) if rtts else None,
        worst_ms=max(rtts) if rtts else None,
        stdev_ms=statistics.pstdev(rtts) if len(rtts) > 1 else (0.0 if rtts else None),
        stats=stats,
        problems=problems,
    )


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


HEADER = ("PATH", "KIND", "Loss%", "Snt", "Last", "Avg", "Best", "Wrst", "StDev", "p50", "p95", "Jttr", "MOS")


def render(rows: Sequence[PathSummary]) -> str:
    """mtr-style report: one line per path (RTT columns in ms), then any counted reply problems."""
    table = [HEADER]
    for r in rows:
        table.append(
            (
                str(r.key),
                r.kind,
                f"{r.loss_pct:.1f}%",
                str(r.sent),
                _ms(r.last_ms),
                _ms(r.avg_ms),
                _ms(r.best_ms),
                _ms(r.worst_ms),
                _ms(r.stdev_ms),
                _ms(r.stats.rtt_p50_ms),
                _ms(r.stats.rtt_p95_ms),
                _ms(r.stats.jitter_ms),
                "-" if r.stats.mos is None else f"{r.stats.mos:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    lines = [
        "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in table
    ]
    for r in rows:
        if r.problems:
            lines.append(f"{r.key}: " + ", ".join(f"{k} {v}" for k, v in sorted(r.problems.items())))
    return "\n".join(line.rstrip() for line in lines)
