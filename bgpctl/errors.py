"""One exception root for everything bgpctl raises on purpose.

Every message says what went wrong *and what to do instead*: an operator reads these at 3 a.m.
"""

from __future__ import annotations

from dataclasses import dataclass


class BgpctlError(Exception):
    """Root of every error bgpctl raises deliberately. The CLI prints it and exits non-zero."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One problem found in an input file: where, which field, what, and a hint."""

    file: str
    line: int | None
    path: str
    message: str
    hint: str = ""

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        field = f" {self.path}:" if self.path else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{field} {self.message}{hint}"


class PolicyError(BgpctlError):
    """A policy file was refused. Carries every problem found in one run, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))


class LabError(BgpctlError):
    """The lab could not be brought up, changed or torn down."""


class ProbeError(BgpctlError):
    """A probe could not be set up or run."""


class SpeakerError(BgpctlError):
    """The ExaBGP bridge refused or failed a command."""
