"""A controller judged from real samples, its snapshot, and a control server running in a thread of its own.

The server is the daemon's (:class:`~bgpctl.control.server.ControlServer` with the daemon's handlers) in an
asyncio loop on a background thread, so that tests talk to it with the real blocking client and raw sockets.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import structlog

from bgpctl.control import protocol
from bgpctl.control.reload import PolicyDesk
from bgpctl.control.server import ControlServer, Dispatcher, Handler
from bgpctl.control.service import OverrideDesk, handlers
from bgpctl.control.state import DecisionLog, ExabgpView, SessionView, Snapshot
from bgpctl.core.controller import Controller
from bgpctl.core.types import PathKey, Sample
from bgpctl.policy.load import load_policy
from bgpctl.policy.model import Policy

REPO = Path(__file__).resolve().parents[2]
LAB_POLICY = REPO / "policies" / "lab.yaml"
T0 = 1_780_000_000.0


@cache
def lab_policy() -> Policy:
    return load_policy(LAB_POLICY)


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = protocol.schema(name)  # as installed: package data
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(name: str, data: Mapping[str, Any]) -> list[str]:
    """[] when ``data`` (after a JSON round trip) fits bgpctl/schemas/NAME.schema.json."""
    doc = json.loads(json.dumps(data))
    return [f"{e.json_path}: {e.message}" for e in validator(name).iter_errors(doc)]


@dataclass
class Judged:
    controller: Controller
    decisions: DecisionLog
    now: float


def judge(
    policy: Policy, seconds: float = 6.0, lost: Callable[[PathKey, float], bool] = lambda k, t: False, start: float = T0
) -> Judged:
    """A controller fed 10 probes a second per path (12 ms RTT; ``lost(key, t)`` drops some), stepped after each."""
    c, log = Controller(policy), DecisionLog()
    now = start
    for i in range(int(seconds * 10)):
        t = start + i * 0.1
        for k in c.keys:
            c.sent(k, i, t)
            c.add(k, Sample(i, t, None if lost(k, t) else t + 0.012))
        now = t + 0.05
        step = c.step(now)
        log.measured(step.stats)
        for tr in step.transitions:
            log.transition(tr)
        if step.plan is not None:
            log.planned(step.plan, at=step.at, new_notes=step.plan.notes)
    return Judged(c, log, now)


def snapshot(j: Judged, *, acked: bool = True, session: str = "up", **changes: Any) -> Snapshot:
    """The snapshot a daemon would keep for ``j``: every planned route acknowledged by ExaBGP."""
    policy = j.controller.policy
    desired = j.controller.last_plan.desired if j.controller.last_plan is not None else {}
    s = Snapshot(
        at=j.now,
        policy=policy,
        policy_file=str(LAB_POLICY),
        run_dir="/run/bgpctl-test",
        pid=4242,
        started_at=T0 - 1.0,
        rib_complete=True,
        health=j.controller.health,
        stats=j.decisions.stats,
        plan=j.controller.last_plan,
        announced={p: dict(r) for p, r in desired.items()} if acked else {},
        sessions={p.name: SessionView(session, T0) for p in policy.peers},
        exabgp=ExabgpView(pid=4243, starts=1, exits=(), api_connected=True),
        speaker_counters={"sent": 8},
        decisions=j.decisions.recent(),
    )
    return replace(s, **changes)


@dataclass
class Running:
    path: Path
    server: ControlServer
    loop: asyncio.AbstractEventLoop

    def raw(self, data: bytes, *, shut: bool = True, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        """Send ``data`` as is, read every answer line until the server closes (or the client half-closes)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout_s)
            s.connect(str(self.path))
            try:
                s.sendall(data)
                if shut:
                    s.shutdown(socket.SHUT_WR)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered (``busy``) and closed before reading: read what it said
            buf = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return [json.loads(line) for line in buf.splitlines() if line.strip()]

    def counters(self) -> dict[str, int]:
        return dict(self.server.counters)


@contextmanager
def serving(
    tmp: Path,
    state: Callable[[], Snapshot],
    *,
    extra: Mapping[str, Handler] | None = None,
    verbs: Mapping[str, protocol.Verb] | None = None,
    log: Any = None,
    desk: OverrideDesk | None = None,
    policy_desk: PolicyDesk | None = None,
    **server_kw: Any,
) -> Iterator[Running]:
    """A ControlServer on ``tmp``/control.sock with the daemon's handlers over ``state`` (the override verbs
    through ``desk``, when given), in its own thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="control-test-loop", daemon=True)
    thread.start()
    path = tmp / protocol.SOCKET_NAME
    logger = log if log is not None else structlog.wrap_logger(structlog.ReturnLogger())
    group_gid = server_kw.pop("group_gid", None)
    dispatcher_kw = server_kw.pop("dispatcher_kw", {})
    dispatcher_kw.setdefault("group_gid", group_gid)  # a test may let the socket's group in, yet not to change
    dispatcher = Dispatcher(
        {**handlers(state, desk, policy_desk), **(extra or {})}, logger, verbs=verbs, **dispatcher_kw
    )
    server = ControlServer(path, dispatcher, logger, group_gid=group_gid, **server_kw)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    try:
        yield Running(path, server, loop)
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def live_snapshot(j: Judged) -> Snapshot:
    """:func:`snapshot` of ``j`` with the controller's runtime overrides as the daemon shows them."""
    from bgpctl.control.service import runtime_rows  # noqa: PLC0415

    return snapshot(j, overrides=runtime_rows(j.controller.runtime), effective=j.controller.overrides)
