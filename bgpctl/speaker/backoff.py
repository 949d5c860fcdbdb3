"""Exponential backoff with jitter, as a pure function of the attempt number and a random draw."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 0.5
    factor: float = 2.0
    maximum_s: float = 30.0
    jitter: float = 0.2  # +/- this fraction of the delay
    reset_after_s: float = 60.0  # a child that ran this long starts again from ``initial_s``

    def delay(self, attempt: int, draw: float) -> float:
        """Delay before retry number ``attempt`` (1-based); ``draw`` is uniform in [0, 1)."""
        base = min(self.maximum_s, self.initial_s * self.factor ** max(0, attempt - 1))
        return max(0.0, base * (1.0 + self.jitter * (2.0 * draw - 1.0)))
