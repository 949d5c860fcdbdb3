"""The control API as the daemon runs it: the verbs' handlers over the loop's snapshot, and the socket's group."""

from __future__ import annotations

import grp
from collections.abc import Callable, Mapping
from typing import Any

from bgpctl.control import protocol
from bgpctl.control.protocol import Code, ProtocolError
from bgpctl.control.server import Handler
from bgpctl.control.state import Snapshot, routes_result, status_result, unknown_peer
from bgpctl.errors import BgpctlError


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


def handlers(snapshot: Callable[[], Snapshot]) -> dict[str, Handler]:
    """One handler per verb of :data:`bgpctl.control.protocol.VERBS`, each a pure function of the snapshot."""

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

    return {"status": status, "routes": routes, "verbs": verbs}
