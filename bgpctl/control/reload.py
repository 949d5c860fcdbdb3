"""``bgpctl reload`` and SIGHUP on a running daemon: read the policy file again, check it as ``bgpctl policy
check`` does, refuse it whole or apply it as a diff (docs/control.md, "Reload").

:class:`PolicyDesk` holds what was loaded (file, sha256, mtime, when) and the last reload's outcome, for
``status``. A reload is refused (``refused``, nothing changed, the old policy keeps running) when the file
cannot be read or has any problem (the same ``FILE:LINE FIELD: what (hint)`` lines as ``policy check``),
when a change needs a restart (:func:`bgpctl.core.reload.restart_needed`), when a runtime override names
something the new policy does not have, or when the daemon cannot set up the new paths' probes. Every
outcome of a real reload is logged (``policy.reload``) and reported through ``on_result`` (the metrics);
a dry run only answers. One reload at a time: a second one waits for the first.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from bgpctl import events
from bgpctl.control.protocol import Code, ProtocolError
from bgpctl.core.controller import Controller
from bgpctl.core.reload import OVERRIDES_HINT, RESTART_HINT, PolicyDiff, diff, restart_needed, stale_overrides
from bgpctl.errors import BgpctlError, PolicyError, Problem
from bgpctl.policy.load import check_policy_text, read_policy_text
from bgpctl.policy.model import Policy
from bgpctl.render import change_to_dict

Result = Literal["applied", "unchanged", "refused"]
RESULTS: tuple[Result, ...] = ("applied", "unchanged", "refused")
FIX_HINT = "fix the file (bgpctl policy check FILE prints the same), then reload again"
MAX_LISTED = 20
"""At most this many problems or changes are listed in a refusal's message (all are logged)."""


@dataclass(frozen=True, slots=True)
class PolicySource:
    """A policy as the daemon read it: the file, the sha256 of its text, its mtime and when it was read."""

    file: str
    sha256: str
    mtime: float | None
    loaded_at: float

    def as_json(self) -> dict[str, Any]:
        return {"file": self.file, "sha256": self.sha256, "mtime": self.mtime, "loaded_at": self.loaded_at}


@dataclass(frozen=True, slots=True)
class Outcome:
    """The last reload (not a dry run): when, who asked and why, what came of it."""

    at: float
    result: Result
    by: Mapping[str, Any] | None
    reason: str
    sha256: str | None  # of the file as read (None: it could not be read)
    error: str | None  # refused: the first line of why

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "result": self.result,
            "by": dict(self.by) if self.by is not None else None,
            "reason": self.reason,
            "sha256": self.sha256,
            "error": self.error,
        }


class Refused(Exception):
    """Why a reload is refused: a message, its detail lines and what to do."""

    def __init__(self, message: str, lines: list[str], hint: str, sha256: str | None) -> None:
        super().__init__(message)
        self.message, self.lines, self.hint, self.sha256 = message, lines, hint, sha256

    def protocol_error(self) -> ProtocolError:
        shown = self.lines[:MAX_LISTED]
        extra = len(self.lines) - MAX_LISTED
        more = [f"... and {extra} more (see the daemon's log)"] if extra > 0 else []
        return ProtocolError(Code.REFUSED, "\n".join([self.message, *shown, *more]), self.hint)


def read_source(path: Path, clock: Callable[[], float] = time.time) -> tuple[str, PolicySource]:
    """The policy file's text and its :class:`PolicySource`; PolicyError if it cannot be read."""
    text = read_policy_text(path)
    try:
        mtime: float | None = os.stat(path).st_mtime
    except OSError:
        mtime = None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return text, PolicySource(str(path), digest, mtime, clock())


def refusal_of_problems(path: Path, problems: list[Problem], sha256: str | None) -> Refused:
    n = len(problems)
    return Refused(
        f"reload refused, the daemon keeps running the old policy: {n} problem{'s' if n != 1 else ''} in {path}:",
        [p.render() for p in problems],
        FIX_HINT,
        sha256,
    )


def check_candidate(
    path: Path, current: Controller, clock: Callable[[], float] = time.time
) -> tuple[Policy, PolicySource]:
    """Read and check the policy file against the running controller; :class:`Refused` saying why not."""
    sha256: str | None = None
    try:
        text, source = read_source(path, clock)
        sha256 = source.sha256
        checked = check_policy_text(text, str(path))
    except PolicyError as e:
        raise refusal_of_problems(path, e.problems, sha256) from None
    new = checked.policy
    restart = restart_needed(current.policy, new)
    if restart:
        raise Refused(
            f"reload refused, the daemon keeps running the old policy: {path} changes what only a restart applies "
            "(ExaBGP's configuration, the BGP sessions or the control socket):",
            restart,
            RESTART_HINT,
            sha256,
        )
    stale = stale_overrides(new, current.runtime)
    if stale:
        raise Refused(
            f"reload refused, the daemon keeps running the old policy: runtime overrides in force name what {path} "
            "no longer has:",
            stale,
            OVERRIDES_HINT,
            sha256,
        )
    return new, source


Apply = Callable[[Policy, PolicyDiff], Awaitable[None]]
"""The daemon's part of applying a checked policy: probes and policy routing for the new paths, the swap of
controller and speaker (:meth:`bgpctl.core.controller.Controller.reload`) and the loop's wake-up. Raises
BgpctlError or OSError before it changed anything if it cannot."""


class PolicyDesk:
    """Reloads of the running policy: check, answer or apply, log, count."""

    def __init__(
        self,
        controller: Controller,
        path: Path,
        source: PolicySource,
        log: structlog.typing.FilteringBoundLogger,
        *,
        apply: Apply,
        on_result: Callable[[Result, float], None] = lambda _r, _t: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.controller, self.path, self.source, self.log = controller, path, source, log
        self.apply, self.on_result, self.clock = apply, on_result, clock
        self.last: Outcome | None = None
        self._lock: asyncio.Lock | None = None

    def state(self) -> dict[str, Any]:
        """``status.policy``: what runs and the last reload."""
        return {**self.source.as_json(), "last_reload": self.last.as_json() if self.last is not None else None}

    async def reload(self, *, dry_run: bool, by: Mapping[str, Any] | None, reason: str) -> dict[str, Any]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            return await self._reload(dry_run=dry_run, by=by, reason=reason)

    async def _reload(self, *, dry_run: bool, by: Mapping[str, Any] | None, reason: str) -> dict[str, Any]:
        started = self.clock()
        try:
            new, source = check_candidate(self.path, self.controller, self.clock)
        except Refused as e:
            if not dry_run:
                self._refused(e, started, by, reason)
            raise e.protocol_error() from None
        preview = self.controller.preview(new, started)
        change = diff(self.controller.policy, new)  # the diff Controller.reload applies
        answer: dict[str, Any] = {
            "dry_run": dry_run,
            "at": started,
            "policy": source.as_json(),
            "previous": self.source.as_json(),
            "diff": change.as_json(),
            "changes": [change_to_dict(c) for c in preview.changes],
            "deferred": [change_to_dict(c) for c in preview.deferred],
            "notes": list(preview.notes),
        }
        if dry_run:
            return {**answer, "result": "unchanged" if change.unchanged else "applied"}
        if change.unchanged:
            self.source = source  # the same policy; the file may differ in comments or layout
            self._done("unchanged", at=started, by=by, reason=reason, sha256=source.sha256, answer=answer)
            return {**answer, "result": "unchanged"}
        try:
            await self.apply(new, change)
        except (BgpctlError, OSError) as e:
            refusal = Refused(
                "reload refused, the daemon keeps running the old policy: it could not be applied:",
                [str(e)],
                "check the new paths' probe_source, table and next_hop (bgpctl probe --show-pins) and the "
                "overrides in force (bgpctl status), then reload again",
                source.sha256,
            )
            self._refused(refusal, started, by, reason)
            raise refusal.protocol_error() from None
        self.source = source
        self._done("applied", at=started, by=by, reason=reason, sha256=source.sha256, answer=answer)
        return {**answer, "result": "applied"}

    def _done(
        self,
        result: Result,
        *,
        at: float,
        by: Mapping[str, Any] | None,
        reason: str,
        sha256: str,
        answer: Mapping[str, Any],
    ) -> None:
        self.last = Outcome(at, result, by, reason, sha256, None)
        self.log.warning(
            events.POLICY_RELOAD,
            result=result,
            file=str(self.path),
            sha256=sha256,
            by=by,
            why=reason,
            ms=round((self.clock() - at) * 1000, 1),
            **answer["diff"],
            route_changes=len(answer["changes"]),
            deferred=len(answer["deferred"]),
        )
        self.on_result(result, at)

    def _refused(self, e: Refused, at: float, by: Mapping[str, Any] | None, reason: str) -> None:
        self.last = Outcome(at, "refused", by, reason, e.sha256, e.lines[0] if e.lines else e.message)
        self.log.error(
            events.POLICY_RELOAD,
            result="refused",
            file=str(self.path),
            sha256=e.sha256,
            by=by,
            why=reason,
            error=e.message,
            problems=e.lines,
            hint=e.hint,
        )
        self.on_result("refused", at)
