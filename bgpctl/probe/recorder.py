"""Record what the controller is fed as JSON lines, the format ``bgpctl replay`` reads
(:mod:`bgpctl.core.recording`: samples, sends, evaluation steps, a header with the probe schedule).

``bgpctl probe --record`` writes settled samples only; the daemon writes every input of its controller
in order, so that a replay reproduces its decisions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from bgpctl.core.overrides import Runtime
from bgpctl.core.recording import (
    Schedule,
    header_line,
    negotiated_line,
    overrides_line,
    sample_line,
    sent_line,
    session_line,
    signal_line,
    step_line,
)
from bgpctl.core.types import PathKey, Sample, SignalMark
from bgpctl.errors import ProbeError
from bgpctl.policy.model import Family


class Recorder:
    """Appends to a JSONL file. Use as a context manager; ``recorder(key, sample)`` records a sample."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self.written = 0

    def __enter__(self) -> Recorder:
        try:
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            raise ProbeError(
                f"cannot record samples to {self.path}: {e.strerror}; pick a writable file with --record"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, line: str) -> None:
        assert self._file is not None, "use the Recorder as a context manager"
        self._file.write(line)
        self.written += 1

    def header(self, paths: Mapping[PathKey, Schedule], *, steps: bool, negotiated: bool = False) -> None:
        self._write(header_line(paths, steps=steps, negotiated=negotiated))

    def negotiated(self, add_path: Mapping[str, frozenset[Family]]) -> None:
        self._write(negotiated_line(add_path))

    def overrides(self, runtime: Runtime) -> None:
        self._write(overrides_line(runtime))

    def session(self, peer: str, up: bool | None, at: float) -> None:
        self._write(session_line(peer, up, at))

    def signal(self, name: str, marks: tuple[SignalMark, ...], at: float) -> None:
        self._write(signal_line(name, marks, at))

    def __call__(self, key: PathKey, sample: Sample) -> None:
        self._write(sample_line(key, sample))

    def sent(self, key: PathKey, seq: int, at: float) -> None:
        self._write(sent_line(key, seq, at))

    def step(self, at: float) -> None:
        self._write(step_line(at))
