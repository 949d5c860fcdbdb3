"""The arguments of the override verbs, checked the same way by the CLI and the daemon.

Light on purpose (no pydantic): ``bgpctl drain --help`` and the control protocol import it.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_DURATION_S = 30 * 86400.0
"""The longest ``--for``: an override meant to be forgotten should still end."""
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_DURATION = re.compile(r"(?:(\d{1,6})d)?(?:(\d{1,6})h)?(?:(\d{1,6})m)?(?:(\d{1,7})s)?")


def name(value: Any, what: str = "name") -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"must be a {what} (lower case letters, digits, '-' and '_', at most 32)")
    return value


def drain_target(value: Any) -> tuple[str, str | None]:
    """``REGION`` or ``REGION/PATH``."""
    if not isinstance(value, str):
        raise ValueError("must be REGION or REGION/PATH, like use1 or use1/dx")
    region, sep, path = value.partition("/")
    try:
        return name(region, "region name"), (name(path, "path name") if sep else None)
    except ValueError:
        raise ValueError("must be REGION or REGION/PATH, like use1 or use1/dx") from None


MAX_WEIGHT = 1000  # bgpctl.policy.model.MAX_WEIGHT (checked equal in tests; this module stays light)
_WEIGHT = re.compile(r"([a-z0-9][a-z0-9_-]{0,31})=([0-9]{1,4})")


def weights(value: Any) -> dict[str, int]:
    """Region weights: an object ``{"use1": 80, "usw2": 20}`` (the control protocol) or a list of
    ``REGION=WEIGHT`` words (the command line); each weight 0-1000, not all 0, each region once."""
    example = "like use1=80 usw2=20 (weights 0-1000, relative)"
    pairs: list[tuple[Any, Any]]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        pairs = []
        for word in value:
            m = _WEIGHT.fullmatch(word)
            if m is None:
                raise ValueError(f"'{word[:40]}' is not REGION=WEIGHT, {example}")
            pairs.append((m.group(1), int(m.group(2))))
    else:
        raise ValueError(f"must give each region's weight, {example}")
    if not pairs:
        raise ValueError(f"must give each region's weight, {example}")
    out: dict[str, int] = {}
    for raw, weight in pairs:
        region = name(raw, "region name")
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
            raise ValueError(f"weight of {region} must be a whole number 0-{MAX_WEIGHT}")
        if region in out:
            raise ValueError(f"gives region {region} twice")
        out[region] = weight
    if not any(out.values()):
        raise ValueError("gives every region weight 0: give at least one region a weight above 0")
    return out


def duration(value: Any) -> float:
    """Seconds: a positive number, or text like ``90s``, ``15m``, ``2h30m``, ``1d`` (at most 30 days)."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like 90s, 15m, 2h or 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value and (m := _DURATION.fullmatch(value)) and any(m.groups()):
        d, h, mi, s = (int(g) if g else 0 for g in m.groups())
        seconds = float(((d * 24 + h) * 60 + mi) * 60 + s)
    else:
        raise ValueError("must be a duration like 90s, 15m, 2h30m or 1d")
    if not math.isfinite(seconds) or not 1 <= seconds <= MAX_DURATION_S:
        raise ValueError(f"must be between 1 s and {MAX_DURATION_S / 86400:g} days")
    return seconds
