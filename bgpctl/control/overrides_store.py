"""The runtime overrides on disk: ``overrides.json`` in the run directory, written atomically.

Written through :meth:`bgpctl.rundir.RunDir.write_private` (a fresh 0600 temporary file, fsynced, renamed
over the old one, no symlink followed) after every change and every expiry, read at start so that the
overrides survive a restart. A file that cannot be read whole is refused at start with one line naming the
file and the field: the daemon does not start without a drain the on-call engineer set (remove the file
to start without any runtime override).
"""

from __future__ import annotations

import json
from pathlib import Path

from bgpctl.core.overrides import Runtime, runtime_from_json, runtime_to_json
from bgpctl.errors import RefusedInput
from bgpctl.rundir import RunDir, RunDirError

FILE_NAME = "overrides.json"
MAX_BYTES = 1024 * 1024


class OverridesFileError(RefusedInput):
    """``overrides.json`` cannot be used (exit code 3 at start; nothing started)."""


def load(run_dir: Path) -> Runtime:
    """The persisted runtime overrides (``()`` when there is no file)."""
    where = run_dir / FILE_NAME
    hint = f"fix it or remove {where} (the daemon then starts without runtime overrides)"
    try:
        with RunDir.open(run_dir) as d:
            text = d.read_private(FILE_NAME, MAX_BYTES)
    except RunDirError as e:
        raise OverridesFileError(f"{e}") from None
    if text is None:
        return ()
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise OverridesFileError(f"{where}: not JSON ({e}): {hint}") from None
    try:
        return runtime_from_json(doc, str(where))
    except ValueError as e:
        raise OverridesFileError(f"{e}: {hint}") from None


def save(run_dir: Path, runtime: Runtime) -> None:
    """Replace the file with ``runtime`` (atomic: a reader sees the old or the new set, never half)."""
    with RunDir.open(run_dir) as d:
        d.write_private(FILE_NAME, json.dumps(runtime_to_json(runtime), indent=1) + "\n")
