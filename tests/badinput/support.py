"""What every bad-input case checks: the real CLI refuses with exit 3, one error line of the surface's shape,
no traceback, nothing on stdout, and nothing written next to the input."""

from __future__ import annotations

import os
import re
from pathlib import Path

from click.testing import CliRunner

from bgpctl.cli.main import cli
from bgpctl.errors import EXIT_REFUSED

REPO = Path(__file__).resolve().parent.parent.parent
LAB_POLICY = REPO / "policies" / "lab.yaml"
BASE_POLICY = REPO / "tests" / "policy" / "good" / "base.yaml"


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under ``root``: (size, mtime_ns), to prove a refused input wrote nothing."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def refused(args: list[str], watch: Path, shape: str) -> str:
    """Run ``bgpctl ARGS``; assert it is refused as described above and the one line matches ``shape``
    (a regular expression, full match). Returns the line."""
    before = tree(watch)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == EXIT_REFUSED, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(shape, lines[0]), (shape, lines[0])
    assert tree(watch) == before, "a refused input changed files next to it"
    return lines[0]
