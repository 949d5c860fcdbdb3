"""Record settled samples as JSON Lines, the format ``bgpctl replay`` reads.

One object per line, one line per settled sample, in the order they settled::

    {"service": "media", "region": "use1", "path": "interconnect", "seq": 17,
     "sent": 1795680000.123456, "received": 1795680000.1237}      # received: null when lost

``sent``/``received`` are CLOCK_REALTIME seconds (see :mod:`bgpctl.probe.sockopt`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from bgpctl.core.types import PathKey, Sample
from bgpctl.errors import ProbeError


def sample_record(key: PathKey, sample: Sample) -> dict[str, Any]:
    return {"service": key.service, "region": key.region, "path": key.path, "seq": sample.seq,
            "sent": sample.sent, "received": sample.received}


def parse_record(line: str) -> tuple[PathKey, Sample]:
    """Pure inverse of :func:`sample_record` for one JSONL line (raises ValueError/KeyError if bad)."""
    obj = json.loads(line)
    received = obj["received"]
    return (PathKey(str(obj["service"]), str(obj["region"]), str(obj["path"])),
            Sample(int(obj["seq"]), float(obj["sent"]), None if received is None else float(received)))


def read_records(path: str | os.PathLike[str]) -> Iterator[tuple[PathKey, Sample]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield parse_record(line)


class Recorder:
    """A sample sink that appends to a JSONL file. Use as a context manager; ``recorder(key, sample)``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self.written = 0

    def __enter__(self) -> Recorder:
        try:
            self._file = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            raise ProbeError(f"cannot record samples to {self.path}: {e.strerror}; "
                             f"pick a writable file with --record") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __call__(self, key: PathKey, sample: Sample) -> None:
        assert self._file is not None, "use the Recorder as a context manager"
        self._file.write(json.dumps(sample_record(key, sample), separators=(",", ":")) + "\n")
        self.written += 1
