"""Per-path time series of what the probes measured and how each path was judged: the data of a picture.

A :class:`SeriesBuilder` is fed settled probes (:class:`~bgpctl.core.types.Sample`) and health changes as
they happen; :meth:`SeriesBuilder.to_dicts` gives, per path, fixed-width bins on a timeline that starts at
a chosen zero:

* ``t``: the start of each bin (seconds since the zero), contiguous from the first to the last bin with
  a probe; ``bin_s`` its width.
* ``sent`` / ``lost``: probes sent in the bin (binned by their ``sent`` time) and how many of them were
  lost; ``loss_pct`` (null for a bin without probes).
* ``rtt_ms``: the mean round trip of the bin's answered probes (null when none was answered).
* ``health``: intervals ``{"health", "start", "end"}`` covering the timeline from ``start`` to ``end``:
  the health at ``start`` (the last change at or before it, else the initial health) and every change after.

Used by ``bgpctl replay`` (its ``series`` lines) and by the lab's drill report (its ``paths``), and drawn
by :mod:`bgpctl.render_plot`. A long recording never makes more than ``max_bins`` bins per path: when the
bins would span more, the width doubles and neighbouring bins merge (sums merge exactly; the mean RTT is
kept as a sum and a count).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from bgpctl.core.types import Sample

K = TypeVar("K", bound=Hashable)

DEFAULT_BIN_S = 0.5
MAX_BINS = 1200


@dataclass(slots=True)
class _Bin:
    sent: int = 0
    lost: int = 0
    rtt_sum_s: float = 0.0

    def merge(self, other: _Bin) -> None:
        self.sent += other.sent
        self.lost += other.lost
        self.rtt_sum_s += other.rtt_sum_s


@dataclass(slots=True)
class _Path:
    bins: dict[int, _Bin] = field(default_factory=dict)
    changes: list[tuple[float, str]] = field(default_factory=list)  # (at, new health), in time order


class SeriesBuilder(Generic[K]):
    """Bins probes per path from ``origin`` (the first sample's or change's time when None).

    A path is any hashable key (the replay uses PathKey, the drill report the path's text); the output
    names it by ``str(key)``."""

    def __init__(
        self,
        *,
        origin: float | None = None,
        bin_s: float = DEFAULT_BIN_S,
        max_bins: int = MAX_BINS,
        initial: Mapping[K, str] | None = None,
    ) -> None:
        if not bin_s > 0 or math.isinf(bin_s):
            raise ValueError(f"bin_s must be a positive number of seconds, not {bin_s!r}")
        if max_bins < 2:
            raise ValueError(f"max_bins must be at least 2, not {max_bins}")
        self.origin = origin
        self.bin_s = bin_s
        self.max_bins = max_bins
        self.initial: dict[K, str] = dict(initial or {})
        self._paths: dict[K, _Path] = {key: _Path() for key in self.initial}
        self._lo: int | None = None
        self._hi: int | None = None

    def _path(self, key: K) -> _Path:
        p = self._paths.get(key)
        if p is None:
            p = self._paths[key] = _Path()
        return p

    def add(self, key: K, sample: Sample) -> None:
        """A settled probe of path ``key`` (answered, or lost when ``received`` is None)."""
        # called for every probe of a replay: no allocation unless a bin or a path is new
        sent = sample.sent
        if self.origin is None:
            self.origin = sent
        i = math.floor((sent - self.origin) / self.bin_s)
        p = self._paths.get(key)
        if p is None:
            p = self._path(key)
        b = p.bins.get(i)
        if b is None:
            b = p.bins[i] = _Bin()
            self._lo = i if self._lo is None or i < self._lo else self._lo
            self._hi = i if self._hi is None or i > self._hi else self._hi
            if self._hi - self._lo >= self.max_bins:
                self._coarsen()
                b = p.bins[math.floor((sent - self.origin) / self.bin_s)]
        b.sent += 1
        if sample.received is None:
            b.lost += 1
        else:
            b.rtt_sum_s += sample.received - sent

    def health(self, key: K, at: float, new: str) -> None:
        """Path ``key`` was judged ``new`` at ``at`` (changes are given in time order)."""
        if self.origin is None:
            self.origin = at
        self._path(key).changes.append((at, new))

    def _coarsen(self) -> None:
        while self._lo is not None and self._hi is not None and self._hi - self._lo >= self.max_bins:
            self.bin_s *= 2
            self._lo, self._hi = self._lo // 2, self._hi // 2
            for p in self._paths.values():
                merged: dict[int, _Bin] = {}
                for i, b in p.bins.items():
                    merged.setdefault(i // 2, _Bin()).merge(b)
                p.bins = merged

    @property
    def paths(self) -> list[K]:
        """The paths seen (keys as given: a PathKey or its text), in the order of their text."""
        return sorted(self._paths, key=str)

    def to_dicts(self, zero: float, start: float, end: float) -> list[dict[str, Any]]:
        """Each path's series, times in seconds since ``zero``; health intervals cover ``start``..``end``
        (absolute times, as the samples')."""
        return [self._one(key, self._paths[key], zero, start, end) for key in self.paths]

    def _one(self, key: K, p: _Path, zero: float, start: float, end: float) -> dict[str, Any]:
        origin = zero if self.origin is None else self.origin
        t: list[float] = []
        sent: list[int] = []
        lost: list[int] = []
        loss: list[float | None] = []
        rtt: list[float | None] = []
        if self._lo is not None and self._hi is not None:
            for i in range(self._lo, self._hi + 1):
                b = p.bins.get(i, _Bin())
                t.append(round(origin + i * self.bin_s - zero, 6))
                sent.append(b.sent)
                lost.append(b.lost)
                loss.append(round(100.0 * b.lost / b.sent, 3) if b.sent else None)
                answered = b.sent - b.lost
                rtt.append(round(1000.0 * b.rtt_sum_s / answered, 3) if answered else None)
        return {
            "path": str(key),
            "bin_s": self.bin_s,
            "t": t,
            "sent": sent,
            "lost": lost,
            "loss_pct": loss,
            "rtt_ms": rtt,
            "health": health_intervals(self.initial.get(key, "unknown"), p.changes, zero, start, end),
        }


def health_intervals(
    initial: str, changes: Iterable[tuple[float, str]], zero: float, start: float, end: float
) -> list[dict[str, Any]]:
    """Intervals of one health covering ``start``..``end``, in seconds since ``zero``: the health at
    ``start`` (the last change at or before it, else ``initial``), then one interval per later change."""
    now = initial
    cuts: list[tuple[float, str]] = []
    for at, new in changes:
        if at <= start:
            now = new
        elif at < end:
            cuts.append((at, new))
    out: list[dict[str, Any]] = []
    at0 = start
    for at, new in cuts:
        if new == now:
            continue
        out.append({"health": now, "start": round(at0 - zero, 6), "end": round(at - zero, 6)})
        at0, now = at, new
    out.append({"health": now, "start": round(at0 - zero, 6), "end": round(max(end, at0) - zero, 6)})
    return out
