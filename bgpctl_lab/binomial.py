"""Exact binomial bounds for lab tests that count random outcomes (loss, duplication, the flows a weighted
ECMP split sends each way): one place, so that every such test uses the same α and the same arithmetic."""

from __future__ import annotations

import math

ALPHA = 1e-6
"""The chance, per check, that a correct system falls outside its interval: one failure in a million runs."""


def binomial_interval(n: int, p: float, alpha: float = ALPHA) -> tuple[int, int]:
    """[lo, hi] with P(X < lo) <= alpha/2 and P(X > hi) <= alpha/2 for X ~ Binomial(n, p), exactly."""
    if not 0 < p < 1:
        raise ValueError(f"p={p}: give 0 < p < 1 (a certain outcome needs no interval)")

    def pmf(k: int) -> float:
        return math.exp(
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * math.log(p)
            + (n - k) * math.log1p(-p)
        )

    lo, acc = 0, 0.0
    while acc + pmf(lo) <= alpha / 2:
        acc += pmf(lo)
        lo += 1
    hi, acc = n, 0.0
    while acc + pmf(hi) <= alpha / 2:
        acc += pmf(hi)
        hi -= 1
    return lo, hi
