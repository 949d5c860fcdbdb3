"""The control API as the daemon runs it: the verbs' handlers over the loop's snapshot, and the socket's group."""

from __future__ import annotations

import grp
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from bgpctl import events
from bgpctl.control import overrides_store, protocol
from bgpctl.control.protocol import Code, ProtocolError
from bgpctl.control.server import Handler
from bgpctl.control.state import Snapshot, routes_result, status_result, unknown_peer
from bgpctl.core.controller import Controller
from bgpctl.core.overrides import OverrideRefused, Runtime, apply, status_row, to_json
from bgpctl.errors import BgpctlError
from bgpctl.errors import BgpctlError as _Err


class ControlSetupError(BgpctlError):
    """The control socket cannot be set up as the policy asks (exit code 1, nothing started)."""


def group_gid(name: str | None) -> int | None:
    """The gid of the policy's ``control.group`` (None: root only); ControlSetupError for an unknown group."""
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ControlSetupError(
            f"control.group '{name}' is no group on this host: create it (groupadd {name}) "
            "or remove control.group from the policy (the control socket is then root only)"
        ) from None


class OverrideDesk:
    """The override verbs on a running controller: check (pure :func:`bgpctl.core.overrides.apply`),
    persist (``overrides.json``, atomic), then hand the new set to the controller, record it and wake the
    loop, which plans at once. If the file cannot be written nothing changes and the verb is refused."""

    def __init__(
        self,
        controller: Controller,
        run_dir: Path,
        log: structlog.typing.FilteringBoundLogger,
        *,
        on_change: Callable[[Runtime], None] = lambda _r: None,
        on_event: Callable[[str, dict[str, Any]], None] = lambda _t, _o: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``on_event(type, override)``: told of every override set (override.set) and expired
        (override.expired), after it is logged (the daemon's hooks subscribe here)."""
        self.controller, self.run_dir, self.log = controller, run_dir, log
        self.on_change, self.on_event, self.clock = on_change, on_event, clock

    def load(self) -> Runtime:
        """At start: the persisted overrides (those expired meanwhile are dropped at the first step)."""
        runtime = overrides_store.load(self.run_dir)
        if runtime:
            self.controller.set_overrides(runtime)
            self.on_change(runtime)
            for o in runtime:
                self.log.warning(events.OVERRIDE_LOADED, **to_json(o))
        return runtime

    def change(self, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        now = self.clock()
        try:
            new, made, removed = apply(
                self.controller.policy,
                self.controller.health,
                self.controller.runtime,
                verb,
                args,
                by=args.get("by"),
                now=now,
            )
        except OverrideRefused as e:
            raise ProtocolError(Code.BAD_ARGS if e.unknown_name else Code.REFUSED, e.message, e.hint) from None
        try:
            overrides_store.save(self.run_dir, new)
        except (OSError, _Err) as e:
            raise ProtocolError(
                Code.REFUSED,
                f"{verb}: cannot write {self.run_dir / overrides_store.FILE_NAME}: {e}; nothing changed",
                "check the run directory (bgpctl status shows it)",
            ) from None
        self.controller.set_overrides(new)
        self.on_change(new)
        for o in removed:
            self.log.warning(events.OVERRIDE_REMOVED, **to_json(o), removed_by=args.get("by"), why=args.get("reason"))
        if made is not None:
            self.log.warning(events.OVERRIDE_SET, **to_json(made))
            self.on_event(events.OVERRIDE_SET, to_json(made))
        return {
            "verb": verb,
            "at": now,
            "set": to_json(made) if made is not None else None,
            "removed": [to_json(o) for o in removed],
            "overrides": [to_json(o) for o in new],
        }

    def expired(self, gone: Runtime) -> None:
        """The controller dropped ``gone`` at a step: log it and persist what is left."""
        if not gone:
            return
        for o in gone:
            self.log.warning(events.OVERRIDE_EXPIRED, **to_json(o))
            self.on_event(events.OVERRIDE_EXPIRED, to_json(o))
        try:
            overrides_store.save(self.run_dir, self.controller.runtime)
        except (OSError, _Err) as e:
            self.log.error(
                events.OVERRIDE_SAVE_FAILED, error=str(e), hint="expired overrides may come back at a restart"
            )


def override_handlers(desk: OverrideDesk) -> dict[str, Handler]:
    def make(verb: str) -> Handler:
        return lambda args: desk.change(verb, args)

    return {verb: make(verb) for verb in protocol.OVERRIDE_VERBS}


def runtime_rows(runtime: Runtime) -> tuple[dict[str, Any], ...]:
    return tuple(status_row(o) for o in runtime)


def handlers(snapshot: Callable[[], Snapshot], desk: OverrideDesk | None = None) -> dict[str, Handler]:
    """One handler per verb of :data:`bgpctl.control.protocol.VERBS`: the read-only ones pure functions
    of the snapshot, the override verbs through ``desk`` (without one they answer ``refused``)."""

    def status(args: Mapping[str, Any]) -> Mapping[str, Any]:
        return status_result(snapshot(), args.get("decisions", protocol.DEFAULT_DECISIONS))

    def routes(args: Mapping[str, Any]) -> Mapping[str, Any]:
        s = snapshot()
        peer = args.get("peer")
        if peer is not None and (why := unknown_peer(s, peer)) is not None:
            raise ProtocolError(Code.BAD_ARGS, why, "bgpctl status lists the peers")
        return routes_result(s, peer, args.get("prefix"))

    def verbs(args: Mapping[str, Any]) -> Mapping[str, Any]:
        return protocol.verbs_result()

    def no_desk(args: Mapping[str, Any]) -> Mapping[str, Any]:
        raise ProtocolError(Code.REFUSED, "this daemon takes no runtime overrides", "")

    changing = override_handlers(desk) if desk is not None else dict.fromkeys(protocol.OVERRIDE_VERBS, no_desk)
    return {"status": status, "routes": routes, "verbs": verbs, **changing}
