"""One exception root for everything bgpctl raises on purpose, and the exit codes of the CLI.

Every message says what went wrong *and what to do instead*: an operator reads these at 3 a.m.
The exit codes are the CLI's contract (docs/cli.md): 0 ok, 1 runtime failure, 2 usage error (click's
own: an unknown option, a missing argument), 3 refused input (a bad policy, topology, snapshot or recording).
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILURE = 1
"""Something went wrong while running: a lab that would not come up, a probe that got no answer, ..."""
EXIT_USAGE = 2
"""The command line itself is wrong (click's UsageError and BadParameter exit with this)."""
EXIT_REFUSED = 3
"""An input file was refused whole: nothing was done with it."""


class BgpctlError(Exception):
    """Root of every error bgpctl raises deliberately. The CLI prints it and exits with ``exit_code``."""

    exit_code = EXIT_FAILURE


class RefusedInput(BgpctlError):
    """An input (policy, topology, stats snapshot, recording, ...) was refused whole: exit code 3."""

    exit_code = EXIT_REFUSED


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


@dataclass(frozen=True)
class FileProblem(Problem):
    """A problem with the file as a whole (missing, unreadable, too big): rendered ``FILE: what (hint)``."""

    def render(self) -> str:
        return f"{self.file}: {self.message}" + (f" ({self.hint})" if self.hint else "")


class ProblemsError(RefusedInput):
    """An input file was refused; carries every problem found in one run, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(p.render() for p in problems))


class PolicyError(ProblemsError):
    """A policy file was refused. Carries every problem found in one run, not only the first."""


class LabError(BgpctlError):
    """The lab could not be brought up, changed or torn down."""


class ProbeError(BgpctlError):
    """A probe could not be set up or run."""


class SpeakerError(BgpctlError):
    """The ExaBGP bridge refused or failed a command."""
