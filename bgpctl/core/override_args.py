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
