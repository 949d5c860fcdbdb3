"""The decide() tests' pinned SLA classes (policies/lab.yaml with the voice and api classes these tests are
written against: tuning the lab policy must not move them) and named window statistics."""

from __future__ import annotations

from typing import Any

from bgpctl.core.mos import estimate_mos
from bgpctl.core.types import PathStats

PINNED: dict[str, Any] = {
    "sla_classes": {
        "voice": {
            "degraded": {"rtt_ms": 150, "jitter_ms": 30, "loss_pct": 1, "mos_below": 4.0},
            "down": {"rtt_ms": 400, "jitter_ms": 80, "loss_pct": 10, "mos_below": 3.1},
            "hysteresis": {
                "down_after_lost": 5,
                "window_s": 5,
                "min_samples": 20,
                "rise_s": 10,
                "recovery_margin_pct": 20,
                "hold_down_s": 15,
                "min_dwell_s": 5,
            },
        },
        "api": {
            "degraded": {"rtt_ms": 300, "loss_pct": 2},
            "down": {"rtt_ms": 1000, "loss_pct": 20},
            "hysteresis": {
                "down_after_lost": 3,
                "window_s": 10,
                "min_samples": 10,
                "rise_s": 20,
                "recovery_margin_pct": 20,
                "hold_down_s": 30,
                "min_dwell_s": 10,
            },
        },
    }
}


def win(
    loss: float = 0.0,
    p95: float = 20.0,
    jitter: float = 2.0,
    samples: int = 1000,
    consecutive: int = 0,
    mos: float | None = None,
    p50: float = 15.0,
) -> PathStats:
    """Window statistics; ``loss`` in percent of ``samples`` (must be a whole number of samples)."""
    lost = round(loss * samples / 100)
    assert abs(lost - loss * samples / 100) < 1e-9, "pick samples so that loss is whole samples"
    if mos is None:
        mos = estimate_mos(p50 if lost < samples else 0.0, jitter, loss)
    return PathStats(
        samples=samples,
        lost=lost,
        consecutive_lost=consecutive,
        rtt_p50_ms=p50 if lost < samples else None,
        rtt_p95_ms=p95 if lost < samples else None,
        jitter_ms=jitter if lost < samples else None,
        mos=mos,
    )


GOOD = win()


DEGR = win(loss=2)  # loss 2 % > degraded 1 %


DEAD_SOFT = win(loss=12)  # loss 12 % > down 10 %


BAND = win(loss=0.9)  # under degraded 1 % but above its recovery bound 0.8 %


EDGE_CLEAN = win(loss=0.8)  # exactly on the recovery bound: clean


HALF = win(loss=5)  # clears the down thresholds with margin (5 <= 8 %), not the degraded ones


BLACKHOLE = win(loss=0.5, consecutive=5)  # 5 lost in a row: hard failure


NOISE = win(loss=1.0, p95=150.0, jitter=30.0, mos=4.0)  # every metric exactly on its degraded threshold
