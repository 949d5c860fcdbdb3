"""Golden files: compare output with a stored expectation; BGPCTL_REGEN=1 rewrites the expectations.

Regenerate with ``BGPCTL_REGEN=1 pytest tests/...`` and review the diff in git before committing.
"""

from __future__ import annotations

import os
from pathlib import Path

REGEN = os.environ.get("BGPCTL_REGEN") == "1"


def check_golden(expected_file: Path, actual: str) -> None:
    if REGEN:
        expected_file.write_text(actual)
        return
    if not expected_file.exists():
        raise AssertionError(f"{expected_file} is missing: run with BGPCTL_REGEN=1 to create it, then review it")
    expected = expected_file.read_text()
    assert actual == expected, (
        f"output differs from {expected_file} (BGPCTL_REGEN=1 rewrites it):\n"
        f"--- expected\n{expected}\n--- actual\n{actual}"
    )
