"""The speaker: the only part of bgpctl that talks to ExaBGP.

What the daemon uses::

    speaker = Speaker(policy, run_dir, log)
    await speaker.start()                  # render config (0600), listen, start ExaBGP as our child
    result = await speaker.sync(desired)   # send only the difference; returns once ExaBGP acked it
    speaker.sessions()                     # {peer name: SessionState value: idle, connected, up, down}
    speaker.announced()                    # Rib acknowledged by ExaBGP, for peers whose session is up
    speaker.add_path_send()                # {peer name: families ADD-PATH send was negotiated for}
    await speaker.stop(withdraw=False)     # keep routes (graceful restart) or withdraw them first

State kept here (one place):

* ``desired``: the last RIB given to :meth:`Speaker.sync` (validated against the allowlist first).
* ``held``: per peer, what ExaBGP holds in its adj-rib-out for that peer, as acknowledged with ``done``.
  It belongs to one ExaBGP process: cleared when ExaBGP (or its relay) goes away. ExaBGP accepts
  routes for a neighbour whose session is down and sends them when it comes up, so commands go to
  ExaBGP whatever the session state; :meth:`announced` shows only peers whose session is up.
* session states from ExaBGP's ``neighbor-changes`` events.
* what each session negotiated (ExaBGP's ``negotiated`` message, written once both OPENs are in): the
  families in which the peer accepts several paths per prefix (ADD-PATH send). Never assumed: empty
  until the session's OPENs are seen, and again when it goes down or ExaBGP goes away, so a peer that
  comes back without ADD-PATH is never sent several paths it would collapse into the last one.
  ``on_negotiated`` (set by the daemon) is called whenever that changes, to re-plan. Also the families
  the session negotiated (MP-BGP, e.g. ipv6-unicast over an IPv4 session): ExaBGP silently drops the routes
  of a family that is not (``Update._split_nlris``), so :meth:`announced` leaves them out and a warning
  (``families_refused``) says so; never assumed from the configuration once the OPENs are seen.

Commands: the routes to a peer with the same family, path id and attributes share one command
(:func:`bgpctl.speaker.commands.batch`); the bookkeeping stays per route: an acknowledged command marks each
of its routes held (or withdrawn), a refused one marks none of them.

Recovery: an ``error`` ACK is logged with its command and counted, its routes are not marked held and are
retried with backoff (per route), each alone in its command so that one route ExaBGP refuses holds back no
other; a session coming up gets every desired route re-announced and then End-of-RIB per family
(``manual-eor``, so the peer's graceful-restart stale routes are replaced, not flushed); an ExaBGP exit
(any rc) is restarted by :class:`Supervisor` with backoff and everything is re-announced to the new process.
No ACK at all for ``ack_timeout_s`` while a batch waits for them means ExaBGP is wedged: it is killed and
restarted the same way (a long batch that keeps being acknowledged is not).

For the daemon: :meth:`Speaker.sync` raises :class:`SpeakerError` only when it refuses the RIB (nothing is
sent, the previous RIB stays); everything else is in the returned :class:`SyncResult` (``complete`` is
False while ExaBGP restarts or a route waits for its retry; the speaker finishes the job by itself).
``speaker.counters`` (a Counter) feeds metrics: ``commands_sent``, ``routes_sent`` (the routes those
commands carried), ``acks_error``, ``ack_timeouts``, ``eor_sent``, ``exabgp_exits``, ``unparsable_lines``,
``acks_unexpected``, ``notifications``, ``rib_refused``, ``own_routes_filtered``, ``updates_sent``,
``relay_refused``, ``add_path_refused``, ``family_refused`` (a session that did not negotiate a family its
policy entry lists).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import os
import pwd
import random
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from bgpctl import events
from bgpctl.core.reload import restart_needed
from bgpctl.core.types import ChangeKind, Rib, RouteAttrs, RouteChange, RouteKey
from bgpctl.errors import SpeakerError
from bgpctl.policy.model import AddPath, Family, MaxPrefixAction, Policy
from bgpctl.rundir import RunDir
from bgpctl.speaker import commands, messages, notification, relay
from bgpctl.speaker.backoff import Backoff
from bgpctl.speaker.config import read_secrets, render
from bgpctl.speaker.messages import Direction, SessionState
from bgpctl.speaker.sessionwatch import (
    CAUSES_SYN_UNANSWERED,
    CAUSES_UNACKNOWLEDGED,
    NOT_ESTABLISHED_HOLD_TIMES,
    SessionWatch,
    SynWatch,
    syn_sent_to,
    unacknowledged_to,
)
from bgpctl.speaker.supervisor import Supervisor

CONFIG_NAME = "exabgp.conf"
ENV_NAME = "exabgp.env"
SOCKET_NAME = "exabgp-api.sock"
_LINE_LIMIT = 16 * 1024 * 1024
WATCH_INTERVAL_S = 1.0
"""How often sessions that are not up are checked against their hold times (sessionwatch)."""
PROC_TCP = ("tcp", "tcp6")  # /proc/PID/net/<these>: the sockets of ExaBGP's network namespace
NO_DIRECTION = "none"
"""The ``direction`` label of a failure no NOTIFICATION carried (a session that never came up, a lost connection)."""
AWAIT_PLAN_S = 5.0
"""How long a session whose ADD-PATH changed holds its End-of-RIB for the daemon's new plan."""


class RouteSpeaker(Protocol):
    """What the daemon needs from a speaker (the seam for a second implementation, e.g. a dry run)."""

    def replace_policy(self, new: Policy) -> None: ...
    async def start(self) -> None: ...
    async def sync(self, desired: Rib) -> SyncResult: ...
    def sessions(self) -> dict[str, str]: ...
    def announced(self) -> Rib: ...
    async def stop(self, withdraw: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class SyncResult:
    sent: int  # commands written to ExaBGP in this pass (announce, withdraw, eor)
    errors: int  # of which ExaBGP answered ``error`` (or were lost with the connection)
    held_back: int  # changes not sent now: retry backoff after an error, or make-before-break
    connected: bool  # False: ExaBGP is (re)starting; the RIB is kept and sent when it is back

    @property
    def complete(self) -> bool:
        return self.connected and self.errors == 0 and self.held_back == 0


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pid: int


_RouteId = tuple[str, ChangeKind, RouteKey]
"""(peer, announce or withdraw, route): what the retry bookkeeping is kept per."""


@dataclass
class _Failure:
    what: RouteAttrs | str | None  # the route's attributes (announce) or held next hop (withdraw) that failed
    attempts: int
    retry_at: float


def _what(change: RouteChange, held: RouteAttrs | None) -> RouteAttrs | str | None:
    """What of one change a retry compares: its attributes, or for a withdrawal the next hop ExaBGP holds."""
    if change.kind is ChangeKind.ANNOUNCE:
        return change.attrs
    return held.next_hop if held is not None else None


@functools.lru_cache(maxsize=8192)
def _family_of(prefix: str) -> Family:
    """The family of a prefix the speaker holds (checked when it was sent; bounded: 8,192 prefixes)."""
    return Family.of(commands.check_network(prefix))


WITHDRAW_LINGER_S = 1.0
"""After ``stop(withdraw=True)`` saw every withdrawal on the wire, the session stays open this long so the peer
processes them before ExaBGP closes it (measured: FRR under a 2-core CPU load dropped 17-19 of 32 IPv6
withdrawals that were already on the wire when the connection closed at once)."""


def _exabgp_binary(name: str) -> str:
    if os.path.isabs(name):
        return name
    found = shutil.which(name)
    if found:
        return found
    sibling = Path(sys.executable).parent / name  # the venv bgpctl runs from
    if sibling.exists():
        return str(sibling)
    raise SpeakerError(
        f"ExaBGP executable {name!r} not found on PATH nor next to {sys.executable}: "
        f"install exabgp or set speaker.exabgp.binary to its path"
    )


class Speaker:
    """See the module docstring. ``exabgp_prefix`` runs ExaBGP under a wrapper (the lab uses
    ``ip netns exec NS``); it must exec, not fork, so that ExaBGP keeps the spawned PID."""

    _server: asyncio.Server | None
    _reconciler: asyncio.Task[None] | None
    _supervisor: Supervisor | None

    def __init__(
        self,
        policy: Policy,
        run_dir: str | Path,
        log: structlog.typing.FilteringBoundLogger,
        *,
        exabgp_prefix: Sequence[str] = (),
        restart_backoff: Backoff | None = None,
        retry_backoff: Backoff | None = None,
        ack_timeout_s: float = 30.0,
        hello_timeout_s: float = 10.0,
        withdraw_budget_s: float = 5.0,
        withdraw_linger_s: float = WITHDRAW_LINGER_S,
    ) -> None:
        self.policy = policy
        self.run_dir = Path(run_dir)
        self._log = log
        self._prefix = list(exabgp_prefix)
        self._restart_backoff = restart_backoff or Backoff()
        self._retry_backoff = retry_backoff or Backoff(initial_s=0.5, maximum_s=30.0)
        self._ack_timeout_s = ack_timeout_s
        self._acked_at = 0.0  # time.monotonic() of the last ACK (a batch is wedged after ack_timeout_s without one)
        self._hello_timeout_s = hello_timeout_s
        self._withdraw_budget_s, self._withdraw_linger_s = withdraw_budget_s, withdraw_linger_s
        self._names = {str(p.address): p.name for p in policy.peers}
        self._manual_eor = policy.speaker.exabgp.graceful_restart > 0
        self._desired: Rib = {}
        # the last RIB validate_rib accepted, and under which policy: a sync checks only the routes that differ
        self._validated: tuple[Policy, Rib] | None = None
        self._held: Rib = {p.name: {} for p in policy.peers}
        self._states: dict[str, str] = {p.name: SessionState.IDLE for p in policy.peers}
        self._received: Rib = {p.name: {} for p in policy.peers}
        # our own routes as the peers send them back (their best path, with our AS in it): whose routes a
        # peer uses, for an HA pair (bgpctl.core.ha.in_use; docs/ha.md)
        self._reflected: Rib = {p.name: {} for p in policy.peers}
        self._add_path: dict[str, frozenset[Family]] = {}  # peer -> families negotiated for ADD-PATH send
        self._families: dict[str, frozenset[Family]] = {}  # peer -> families the session negotiated (MP-BGP)
        self._await_plan: dict[str, float] = {}  # peer -> until when its End-of-RIB waits for a new plan
        # announced(), kept until what it is made of (_held, _states, _families) changes: the daemon reads it on
        # every pass of its loop (status, metrics), and at scale it is tens of thousands of routes
        self._announced: Rib | None = None
        self.on_negotiated: Callable[[], None] | None = None
        self.on_session: Callable[[], None] | None = None  # a session's state changed (the daemon re-judges)
        self.api_connections = 0  # ExaBGP API connections so far: a new one reports every session afresh
        self._resync: set[str] = set()
        # False until the daemon says its desired RIB is whole (every path judged, or a start-up grace
        # passed): until then no End-of-RIB goes out, so a restarted bgpctl never lets its peers flush
        # their graceful-restart stale routes before it has re-announced them.
        self._rib_complete = False
        self._failures: dict[_RouteId, _Failure] = {}
        self._pending: collections.deque[tuple[commands.Command, asyncio.Future[bool]]] = collections.deque()
        self._echo: dict[tuple[str, str, int], asyncio.Future[None]] = {}
        self._conn: _Conn | None = None
        self._connected = asyncio.Event()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()  # a pass is wanted now
        self._rearm = asyncio.Event()  # the retry timer changed
        self._server = self._reconciler = self._supervisor = None
        self.counters: collections.Counter[str] = collections.Counter()
        self.session_errors: dict[str, str] = {}  # peer -> why its session last went down (decoded when we can)
        self._notified: dict[str, str] = {}  # peer -> the NOTIFICATION of its current episode, decoded
        # (peer, direction, reason) -> how many times: every failed session, decoded (bgpctl.speaker.notification)
        self.failures: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._watch = SessionWatch({p.name: p.timers.hold_time for p in policy.peers})
        self._syns = SynWatch({str(p.address): p.name for p in policy.peers})
        self._unacked = SynWatch({str(p.address): p.name for p in policy.peers})
        self._watcher: asyncio.Task[None] | None = None
        self._over_limit: set[str] = set()  # peers past max_prefixes in their current session
        self._torn_down: set[str] = set()  # peers whose session we closed for max_prefixes, until it is down
        self._max_prefixes = {p.name: p.max_prefixes.limit for p in policy.peers}
        self._exabgp_stopping = False  # ExaBGP said it shuts down: its sessions' ends are not failures
        self._tasks: set[asyncio.Task[None]] = set()
        self._rng = random.Random()

    # ---------------------------------------------------------------------------------- public API

    @property
    def config_path(self) -> Path:
        return self.run_dir / CONFIG_NAME

    @property
    def exabgp_pid(self) -> int | None:
        return None if self._supervisor is None else self._supervisor.pid

    @property
    def api_connected(self) -> bool:
        """ExaBGP's API process is connected (False while ExaBGP is (re)starting)."""
        return self._connected.is_set()

    @property
    def exabgp_stopping(self) -> bool:
        """ExaBGP said it is shutting down: the sessions it reports down meanwhile say nothing of the peers."""
        return self._exabgp_stopping

    @property
    def supervisor(self) -> Supervisor:
        if self._supervisor is None:
            raise SpeakerError("the speaker is not started: call start() first")
        return self._supervisor

    def replace_policy(self, new: Policy) -> None:
        """A reloaded policy (``bgpctl reload``): the routes it plans are rendered with it from now on. Only a
        policy that changes nothing ExaBGP's configuration or a session is made of (the speaker section, the
        peers) can replace the running one; anything else needs a restart."""
        needs = restart_needed(self.policy, new)
        if needs:
            raise SpeakerError(f"the speaker cannot take this policy without a restart: {'; '.join(needs)}")
        self.policy = new

    async def start(self) -> None:
        """Render ExaBGP's configuration (mode 0600, secrets read now), listen for its API process, start it."""
        if self._supervisor is not None:
            raise SpeakerError("the speaker is already started")
        sock = self.run_dir / SOCKET_NAME
        relay_argv = [sys.executable, str(Path(relay.__file__).resolve()), str(sock)]
        secrets = read_secrets(self.policy)
        rendered = render(self.policy, relay_argv, secrets)
        # checked (ours, writable by nobody else) and then only reached through its fd, never via a symlink
        with RunDir.open(self.run_dir) as run_dir:
            run_dir.write_private(CONFIG_NAME, rendered.config)
            run_dir.write_private(ENV_NAME, rendered.env)
            run_dir.remove(SOCKET_NAME)  # a stale socket (or anything planted there): bind() needs the name free
        argv = [
            *self._prefix,
            _exabgp_binary(self.policy.speaker.exabgp.binary),
            "--env-file",
            str(self.run_dir / ENV_NAME),
            "server",
            str(self.config_path),
        ]
        self._server = await asyncio.start_unix_server(self._on_client, path=str(sock), limit=_LINE_LIMIT)
        os.chmod(sock, 0o600)  # and a connection must still prove it is our ExaBGP's relay (hello with its pid)
        user = self.policy.speaker.exabgp.user
        if user != "root":  # ExaBGP runs its API process as this user: it must be able to connect
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                await self.stop(withdraw=False)
                raise SpeakerError(f"speaker.exabgp.user {user!r} does not exist: create it or use root") from None
            if pw.pw_uid != os.geteuid():  # hand the socket to ExaBGP's user: needs root with CAP_CHOWN
                try:
                    os.chown(sock, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
                except PermissionError:
                    await self.stop(withdraw=False)
                    raise SpeakerError(
                        f"speaker.exabgp.user {user!r} is not the daemon's user and bgpctl may not chown to it "
                        f"(no CAP_CHOWN): run bgpctl as {user!r} (deploy/bgpctl.service) or set exabgp.user "
                        f"to the daemon's user"
                    ) from None
        self._reconciler = asyncio.create_task(self._reconcile_loop(), name="speaker-reconciler")
        self._watch.restart(time.monotonic())
        self._watcher = asyncio.create_task(self._watch_loop(), name="speaker-session-watch")
        self._supervisor = Supervisor(
            argv,
            self._log,
            backoff=self._restart_backoff,
            on_exit=self._on_exabgp_exit,
            secrets=list(secrets.values()),
        )
        self._log.info(
            events.SPEAKER_START,
            config=str(self.config_path),
            peers=sorted(self._names.values()),
            graceful_restart=self.policy.speaker.exabgp.graceful_restart,
        )
        try:
            await self._supervisor.start()
        except BaseException:
            await self.stop(withdraw=False)  # leave nothing behind: socket, reconciler
            raise

    async def wait_connected(self, timeout_s: float) -> None:
        """Until ExaBGP's API process has connected (SpeakerError after ``timeout_s``)."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except TimeoutError:
            raise SpeakerError(
                f"ExaBGP's API process did not connect within {timeout_s} s; see the "
                f"exabgp_exited / exabgp_output log lines"
            ) from None

    async def sync(self, desired: Rib, *, complete: bool = True) -> SyncResult:
        """Make ExaBGP hold ``desired``: validate it whole (a route outside the allowlist, to an unknown peer
        or of a family the session lacks refuses the whole RIB, and the previous one stays), then send only
        the difference, announcements before withdrawals, each acknowledged.

        ``complete=False`` says the RIB is still being built (right after a start, some paths not judged
        yet): routes go out, End-of-RIB is held back until a sync with ``complete=True``."""
        try:
            valid = self._validated[1] if self._validated is not None and self._validated[0] is self.policy else None
            commands.validate_rib(self.policy, desired, valid)
            self._validated = (self.policy, desired)
        except SpeakerError as e:
            self.counters["rib_refused"] += 1
            self._log.error(events.SPEAKER_RIB_REFUSED, error=str(e))
            raise
        self._desired = {peer: dict(routes) for peer, routes in desired.items() if routes}
        self._rib_complete = self._rib_complete or complete
        self._await_plan.clear()  # this is the plan made after the sessions' news
        async with self._lock:
            return await self._reconcile()

    def sessions(self) -> dict[str, str]:
        return dict(self._states)

    def announced(self) -> Rib:
        """What ExaBGP acknowledged, for peers whose session is up (down sessions announce nothing), without
        the routes of a family the session is known not to have negotiated (ExaBGP holds them, sends nothing).

        Made again only after one of these changed (:meth:`_view_changed`); the caller must not modify it."""
        if self._announced is None:
            self._announced = self._announced_now()
        return self._announced

    def _announced_now(self) -> Rib:
        return {
            peer: {k: a for k, a in routes.items() if self._sends(peer, k.prefix)}
            for peer, routes in self._held.items()
            if self._states.get(peer) == SessionState.UP
        }

    def _view_changed(self) -> None:
        """What ExaBGP holds, a session's state or its families changed: :meth:`announced` is made again."""
        self._announced = None

    def _sends(self, peer: str, prefix: str) -> bool:
        families = self._families.get(peer)
        if families is None:  # no OPENs seen on this session yet: as configured
            return True
        return _family_of(prefix) in families

    def negotiated_families(self) -> dict[str, frozenset[Family]]:
        """Per peer whose session's OPENs were seen, the families it negotiated (the multiprotocol
        capabilities both sides sent): an IPv6 route goes out only where ipv6-unicast is among them."""
        return dict(self._families)

    def add_path_send(self) -> dict[str, frozenset[Family]]:
        """Per peer, the families in which its session negotiated ADD-PATH with us sending: only peers whose
        OPENs were seen since the session last came up (never assumed)."""
        return dict(self._add_path)

    def desired(self) -> Rib:
        return {peer: dict(routes) for peer, routes in self._desired.items()}

    def received_counts(self) -> dict[str, int]:
        """Prefixes kept per peer (each at most its ``max_prefixes.limit``)."""
        return {peer: len(routes) for peer, routes in self._received.items()}

    def received(self) -> Rib:
        """Routes the peers sent us, without our own reflected back (as_path holds our AS)."""
        return {peer: dict(routes) for peer, routes in self._received.items()}

    def reflected(self) -> Rib:
        """Our own routes as the peers sent them back (as_path holds our AS): the paths they use."""
        return {peer: dict(routes) for peer, routes in self._reflected.items()}

    async def stop(self, withdraw: bool) -> None:
        """Stop ExaBGP. ``withdraw=False`` keeps the routes at the peers (graceful restart: the next bgpctl
        re-announces them); ``withdraw=True`` withdraws everything first and waits (``withdraw_budget_s``)
        until ExaBGP reports the withdrawals on the wire."""
        for task in (self._reconciler, self._watcher, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reconciler = self._watcher = None
        if withdraw and self._conn is not None:
            self._desired = {}
            self._failures.clear()
            async with self._lock:
                up = {peer for peer, state in self._states.items() if state == SessionState.UP}
                waits = [self._expect_echo(peer, key) for peer in up for key in self._held.get(peer, {})]
                result = await self._reconcile()
                try:
                    await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), self._withdraw_budget_s)
                    self._log.info(events.SPEAKER_WITHDRAWN, routes=len(waits), errors=result.errors)
                    if waits:
                        # on the wire is not processed by the peer: FRR's bgpd handles 10 packets a pass and drops
                        # those still queued when the TCP connection closes (with graceful restart it then keeps
                        # the routes as stale for the restart time); ExaBGP sends one IPv6 withdrawal per UPDATE
                        await asyncio.sleep(self._withdraw_linger_s)
                except TimeoutError:
                    self._log.error(
                        events.SPEAKER_WITHDRAW_UNCONFIRMED,
                        routes=len(waits),
                        budget_s=self._withdraw_budget_s,
                        hint="some withdrawals were not seen on the wire before ExaBGP stopped",
                    )
        if self._supervisor is not None:
            await self._supervisor.stop()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                (self.run_dir / SOCKET_NAME).unlink()
            self._server = None
        if self._conn is not None:
            self._lost(self._conn, "speaker stopped")
        self._log.info(events.SPEAKER_STOPPED, withdraw=withdraw, counters=dict(self.counters))

    # ---------------------------------------------------------------------------------- ExaBGP link

    def _on_exabgp_exit(self, rc: int) -> None:
        self.counters["exabgp_exits"] += 1
        if self._conn is not None:
            self._lost(self._conn, f"ExaBGP exited rc={rc}")

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = await asyncio.wait_for(reader.readline(), self._hello_timeout_s)
        except (TimeoutError, ConnectionError, ValueError):
            hello = b""
        parts = hello.decode("utf-8", "replace").split()
        expected = self.exabgp_pid
        if (
            len(parts) != 3
            or parts[:2] != ["bgpctl-relay", "1"]
            or not parts[2].isdigit()
            or (expected is not None and int(parts[2]) != expected)
        ):
            self.counters["relay_refused"] += 1
            self._log.error(
                events.RELAY_REFUSED,
                hello=hello[:200].decode("utf-8", "replace"),
                exabgp_pid=expected,
                hint="only the relay of the ExaBGP bgpctl started may connect",
            )
            writer.close()
            return
        if self._conn is not None:
            self._lost(self._conn, "a new relay connected")
        conn = _Conn(reader, writer, int(parts[2]))
        self._conn = conn
        self._held = {p.name: {} for p in self.policy.peers}
        self._states = {p.name: SessionState.IDLE for p in self.policy.peers}
        self._view_changed()
        self.api_connections += 1
        self._failures.clear()
        self._over_limit.clear()
        self._torn_down.clear()
        self._exabgp_stopping = False
        self._watch.restart(time.monotonic())
        self._connected.set()
        self._log.info(events.EXABGP_CONNECTED, pid=conn.pid)
        self._wake.set()  # push the desired RIB into the new ExaBGP
        try:
            while True:
                try:
                    raw = await reader.readline()
                except ValueError as e:  # a line over _LINE_LIMIT: dropped by the reader, the stream goes on
                    self.counters["unparsable_lines"] += 1
                    self._log.error(events.EXABGP_UNPARSABLE_LINE, line="", reason=f"line too long: {e}")
                    continue
                if not raw:
                    break
                self._dispatch(raw)
        except ConnectionError as e:
            self._log.error(events.EXABGP_READ_FAILED, error=str(e))
        finally:
            self._lost(conn, "ExaBGP's API connection closed")

    def _lost(self, conn: _Conn, why: str) -> None:
        if self._conn is not conn:
            return
        self._conn = None
        self._connected.clear()
        conn.writer.close()
        while self._pending:
            cmd, fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(SpeakerError(f"ExaBGP went away before acknowledging: {cmd.line}"))
        for echo in self._echo.values():
            if not echo.done():
                echo.cancel()
        self._echo.clear()
        self._held = {p.name: {} for p in self.policy.peers}
        self._states = {p.name: SessionState.DOWN for p in self.policy.peers}
        self._view_changed()
        self._received = {p.name: {} for p in self.policy.peers}
        self._reflected = {p.name: {} for p in self.policy.peers}
        self._resync.clear()
        self._over_limit.clear()
        self._torn_down.clear()
        self._watch.restart(time.monotonic())
        self._forget_negotiated(*self._add_path, *self._families)
        self._log.warning(events.EXABGP_DISCONNECTED, pid=conn.pid, why=why)

    def _dispatch(self, line: str | bytes) -> None:
        event = messages.parse(line)
        match event:
            case messages.Ack(ok=ok):
                if not self._pending:
                    self.counters["acks_unexpected"] += 1
                    self._log.error(events.EXABGP_UNEXPECTED_ACK, ack="done" if ok else "error")
                    return
                _cmd, fut = self._pending.popleft()
                self._acked_at = time.monotonic()
                if not fut.done():
                    fut.set_result(ok)
            case messages.StateEvent(peer=addr, state=state, reason=reason):
                self._on_state(addr, state, reason)
            case messages.UpdateEvent():
                self._on_update(event)
            case messages.NotificationEvent(peer=addr, direction=direction, code=code, subcode=subcode, message=text):
                self.counters["notifications"] += 1
                self._notification(addr, direction, code, subcode, text)
            case messages.EorEvent(peer=addr, direction=direction, afi=afi, safi=safi):
                self._log.debug(
                    events.BGP_EOR, peer=self._names.get(addr, addr), direction=direction, family=f"{afi} {safi}"
                )
            case messages.NegotiatedEvent():
                self._on_negotiated(event)
            case messages.ShutdownEvent():
                self._exabgp_stopping = True
                self._log.info(events.EXABGP_SHUTTING_DOWN)
            case messages.OtherEvent(kind=kind, peer=addr):
                self._log.debug(events.EXABGP_EVENT, kind=kind, peer=addr)
            case messages.UnparsableLine(line=text, reason=reason):
                self.counters["unparsable_lines"] += 1
                self._log.error(events.EXABGP_UNPARSABLE_LINE, line=text[:2000], reason=reason)

    def _notification(self, addr: str, direction: str, code: int, subcode: int, text: str) -> None:
        """A NOTIFICATION sent or received: one warning in words, one count per (peer, direction, reason)."""
        name = self._names.get(addr, addr)
        d = notification.decode(code, subcode, text)
        self.failures[(name, direction, d.reason)] += 1
        said = f' "{d.shutdown_message}"' if d.shutdown_message else ""
        self._notified[name] = f"NOTIFICATION {direction} ({code},{subcode}) {d.description}{said}"
        self.session_errors[name] = self._notified[name]
        self._log.warning(
            events.BGP_NOTIFICATION,
            peer=name,
            address=addr,
            direction=direction,
            code=code,
            subcode=subcode,
            reason=d.reason,
            description=d.description,
            shutdown_message=d.shutdown_message,
            message=text,
            hint=d.hint,
        )

    def _on_state(self, addr: str, state: str, reason: str) -> None:
        name = self._names.get(addr)
        if name is None:
            self._log.error(events.EXABGP_UNKNOWN_PEER, peer=addr, state=state)
            return
        previous = self._states.get(name)
        self._states[name] = state
        if previous != state:
            self._view_changed()
        if previous != state and self.on_session is not None:
            self.on_session()
        self._watch.state(name, state, time.monotonic())
        fields = {"peer": name, "address": addr, "state": state, "previous": previous, "reason": reason}
        if state == SessionState.DOWN and not self._exabgp_stopping:
            self._log.warning(events.BGP_SESSION, **fields)
        else:
            self._log.info(events.BGP_SESSION, **fields)
        if state == SessionState.UP:
            self._syns.up(name)
            self._unacked.up(name)
            self._resync.add(name)
            self._wake.set()
        elif state == SessionState.DOWN:
            # status' last error: the decoded NOTIFICATION of this episode if there was one, else ExaBGP's words
            if name in self._notified or reason:
                self.session_errors[name] = self._notified.pop(name, "") or reason
            torn = name in self._torn_down
            self._received[name] = {}
            self._reflected[name] = {}
            self._over_limit.discard(name)
            self._resync.discard(name)
            sent = notification.from_down_reason(reason)
            if name in self._torn_down:
                self._torn_down.discard(name)
                if sent is None or (sent.code, sent.subcode) != (6, commands.CEASE_MAX_PREFIXES):
                    # with graceful restart negotiated ExaBGP closes without the Cease NOTIFICATION
                    self.failures[(name, Direction.SEND, "maximum_prefixes_reached")] += 1
            if sent is not None and sent.direction == Direction.SEND:
                # ExaBGP reports a NOTIFICATION it sends only here (a received one came as its own event)
                self._notification(addr, sent.direction, sent.code, sent.subcode, "")
                self._notified.pop(name, None)  # this episode's, already in session_errors
            elif sent is None and previous == SessionState.UP and not self._exabgp_stopping and not torn:
                self.failures[(name, NO_DIRECTION, "connection_lost")] += 1

            self._forget_negotiated(name)

    def check_sessions(self, now: float | None = None) -> None:
        """Warn about every session that has not come up within its allowed hold times (sessionwatch)."""
        for late in self._watch.due(time.monotonic() if now is None else now):
            self.failures[(late.peer, NO_DIRECTION, "not_established")] += 1
            peer = self.policy.peer(late.peer)
            self._log.warning(
                events.BGP_SESSION_NOT_ESTABLISHED,
                peer=late.peer,
                address=str(peer.address),
                waited_s=late.waited_s,
                hold_time=peer.timers.hold_time,
                hold_times=NOT_ESTABLISHED_HOLD_TIMES,
                state=self._states.get(late.peer),
                tcp_connected=late.tcp_connected,
                report=late.report,
                md5=peer.md5_password is not None,
                ttl_security=peer.ttl_security,
                likely_causes=late.likely_causes,
            )

    def check_syns(
        self, syn_sent: AbstractSet[str], unacked: AbstractSet[str] = frozenset(), now: float | None = None
    ) -> None:
        """Connections to peers stuck (their addresses, from /proc/net/tcp*): in SYN-SENT (a wrong MD5 key, a
        firewall, a dead peer) or established with nothing acknowledged (a GTSM/TTL mismatch), each named
        within seconds, once until the session is up."""
        at = time.monotonic() if now is None else now
        up = {str(p.address) for p in self.policy.peers if self._states.get(p.name) == SessionState.UP}
        for watch, stuck, event, reason, causes in (
            (self._syns, syn_sent, events.BGP_SYN_UNANSWERED, "syn_unanswered", CAUSES_SYN_UNANSWERED),
            (
                self._unacked,
                unacked,
                events.BGP_PACKETS_UNACKNOWLEDGED,
                "packets_unacknowledged",
                CAUSES_UNACKNOWLEDGED,
            ),
        ):
            for late in watch.seen(set(stuck) - up, at):  # a session that is up is busy, not stuck
                peer = self.policy.peer(late.peer)
                self.failures[(late.peer, Direction.SEND, reason)] += 1
                self._log.warning(
                    event,
                    peer=late.peer,
                    address=str(peer.address),
                    unanswered_s=late.unanswered_s,
                    md5=peer.md5_password is not None,
                    ttl_security=peer.ttl_security,
                    likely_causes=causes,
                )

    async def _watch_loop(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            self.check_sessions()
            pid = self.exabgp_pid
            if pid is None:
                continue
            syn_sent: set[str] = set()
            unacked: set[str] = set()
            for name in PROC_TCP:  # ExaBGP's own namespace (a prefix like `ip netns exec NS` may put it elsewhere)
                try:
                    text = Path(f"/proc/{pid}/net/{name}").read_text(encoding="ascii", errors="replace")
                except OSError:
                    continue
                syn_sent |= syn_sent_to(text)
                unacked |= unacknowledged_to(text)
            self.check_syns(syn_sent, unacked)

    def _forget_negotiated(self, *names: str) -> None:
        for n in names:
            self._families.pop(n, None)
        self._view_changed()
        changed = [n for n in names if self._add_path.pop(n, None) is not None]
        if changed and self.on_negotiated is not None:
            self.on_negotiated()

    def _on_negotiated(self, event: messages.NegotiatedEvent) -> None:
        name = self._names.get(event.peer)
        if name is None:
            self._log.error(events.EXABGP_UNKNOWN_PEER, peer=event.peer, kind="negotiated")
            return
        peer = self.policy.peer(name)
        sending = frozenset(f for f in Family if " ".join(f.words) in event.add_path_send)
        wanted = peer.add_path in (AddPath.SEND, AddPath.BOTH)
        refused = sorted(f.value for f in peer.families if wanted and f not in sending)
        negotiated = frozenset(f for f in Family if " ".join(f.words) in event.families)
        self._families[name] = negotiated
        self._view_changed()
        missing = sorted(f.value for f in peer.families if f not in negotiated)
        fields = {
            "peer": name,
            "address": event.peer,
            "families": list(event.families),
            "add_path_send": sorted(f.value for f in sending),
            "add_path_receive": list(event.add_path_receive),
            "hold_time": event.hold_time,
        }
        if missing:
            self.counters["family_refused"] += 1
            self._log.warning(
                events.BGP_CAPABILITIES,
                **fields,
                families_refused=missing,
                hint=(
                    f"the policy gives the peer {', '.join(missing)} but the session did not negotiate it (the "
                    "peer does not activate that address family): ExaBGP drops those routes without a word, so "
                    "they are not announced to this peer; activate the family on the peer (FRR: "
                    "address-family ... / neighbor X activate) or remove it from the peer's families"
                ),
            )
        if refused:
            self.counters["add_path_refused"] += 1
            self._log.warning(
                events.BGP_CAPABILITIES,
                **fields,
                add_path_refused=refused,
                hint=(
                    f"the policy asks add_path {peer.add_path.value} but the peer does not accept several paths "
                    "per prefix: it is sent one best path per prefix (the planner's choice); enable ADD-PATH "
                    "receive on the peer to load-share"
                ),
            )
        elif not missing:
            self._log.info(events.BGP_CAPABILITIES, **fields)
        before = self._add_path.get(name)
        self._add_path[name] = sending
        if (before or frozenset()) != sending and self.on_negotiated is not None:
            if wanted:  # the plan for this peer changes: hold its End-of-RIB for it (at most AWAIT_PLAN_S)
                self._await_plan[name] = time.monotonic() + AWAIT_PLAN_S
                self._rearm.set()
            self.on_negotiated()

    def _on_update(self, event: messages.UpdateEvent) -> None:
        name = self._names.get(event.peer, event.peer)
        if event.direction == Direction.SEND:
            self.counters["updates_sent"] += 1
            for nlri in event.withdrawn:
                echo = self._echo.pop((name, nlri.key.prefix, nlri.key.path_id), None)
                if echo is not None and not echo.done():
                    echo.set_result(None)
            return
        a = event.attributes
        limit = self._max_prefixes.get(name, 0)  # a peer not in the policy: nothing is kept
        if self._reflect(name, event, limit):
            return
        rib = self._received.setdefault(name, {})
        for nlri in event.withdrawn:
            rib.pop(nlri.key, None)
        over = 0
        for nlri in event.announced:
            if nlri.key not in rib and len(rib) >= limit:
                over += 1  # bounded: nothing past the limit is kept, whatever the peer sends
                continue
            rib[nlri.key] = RouteAttrs(nlri.next_hop or "", a.as_path, a.med, a.communities, a.large_communities)
        if over:
            self._past_limit(name, over)

    def _reflect(self, name: str, event: messages.UpdateEvent, limit: int) -> bool:
        """Keep our own routes as ``name`` sends them back (bounded by its limit; never used as routes) and
        forget those it withdraws. True when the update held our own routes (nothing else to do with it)."""
        reflected = self._reflected.setdefault(name, {})
        for nlri in event.withdrawn:
            reflected.pop(nlri.key, None)
        if not event.has_asn(self.policy.speaker.local_as):
            for nlri in event.announced:  # the peer's best path is no longer ours
                reflected.pop(nlri.key, None)
            return False
        self.counters["own_routes_filtered"] += len(event.announced)
        a = event.attributes
        for nlri in event.announced:
            if nlri.key in reflected or len(reflected) < limit:
                reflected[nlri.key] = RouteAttrs(
                    nlri.next_hop or "", a.as_path, a.med, a.communities, a.large_communities
                )
        return True

    def _past_limit(self, name: str, over: int) -> None:
        """``name`` sent prefixes past its ``max_prefixes.limit``: warn once per session, then the action."""
        self.counters["prefixes_over_limit"] += over
        if name in self._over_limit or name not in self._max_prefixes:
            return
        self._over_limit.add(name)
        mp = self.policy.peer(name).max_prefixes
        self.failures[(name, Direction.RECEIVE, "max_prefixes_exceeded")] += 1
        self._log.warning(
            events.BGP_MAX_PREFIXES,
            peer=name,
            limit=mp.limit,
            action=str(mp.action),
            kept=len(self._received.get(name, {})),
            hint="the peer sends more prefixes than its max_prefixes.limit: "
            + (
                "the session is closed (Cease / Maximum Number of Prefixes Reached; with graceful restart "
                "negotiated ExaBGP closes without the NOTIFICATION and the peer keeps our routes as stale); "
                "ExaBGP reconnects on its back-off and it happens again while the peer keeps sending them"
                if mp.action is MaxPrefixAction.TEARDOWN
                else "further prefixes are not stored (bgpctl uses none of them) until the session restarts"
            ),
        )
        if mp.action is MaxPrefixAction.TEARDOWN:
            task = asyncio.get_running_loop().create_task(self._teardown(name), name=f"teardown-{name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _teardown(self, name: str) -> None:
        conn = self._conn
        if conn is None:
            return
        cmd = commands.teardown_line(self.policy, name)
        self._torn_down.add(name)  # before the ACK: the session may be down before "done" is read
        async with self._lock:
            (ok,) = await self._send(conn, [cmd])
        if not ok:
            self._torn_down.discard(name)
            self.counters["acks_error"] += 1
            self._log.error(events.EXABGP_COMMAND_ERROR, peer=name, command=cmd.line, hint="teardown refused")

    def _expect_echo(self, peer: str, key: RouteKey) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._echo[(peer, key.prefix, key.path_id)] = fut
        return fut

    async def _send(self, conn: _Conn, batch: Sequence[commands.Command]) -> list[bool]:
        """Write ``batch`` in one go and wait for its ACKs, in order. No ACK for ``ack_timeout_s`` means
        ExaBGP is wedged (:meth:`_acks`): it is restarted and the batch counts as failed."""
        if not batch:
            return []
        data = commands.wire([cmd.line for cmd in batch])  # SpeakerError before anything is written
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[bool]] = []
        for cmd in batch:
            fut: asyncio.Future[bool] = loop.create_future()
            self._pending.append((cmd, fut))
            futures.append(fut)
            self.counters["commands_sent"] += 1
            self.counters["routes_sent"] += len(cmd.changes)
            self._log.debug(events.EXABGP_COMMAND, command=cmd.line)
        conn.writer.write(data)
        try:
            await conn.writer.drain()
            await self._acks(asyncio.gather(*futures, return_exceptions=True))
        except ConnectionError as e:
            self._lost(conn, f"write failed: {e}")
        except TimeoutError:
            self.counters["ack_timeouts"] += 1
            self._log.error(
                events.EXABGP_ACK_TIMEOUT,
                budget_s=self._ack_timeout_s,
                outstanding=len(self._pending),
                hint="ExaBGP stopped answering; killing it so that the supervisor restarts it",
            )
            self._lost(conn, "ACK timeout")
            if self._supervisor is not None:  # wedged: SIGTERM may never be handled; GR keeps the routes
                self._supervisor.signal_child(signal.SIGKILL)
        return [f.done() and not f.cancelled() and f.exception() is None and f.result() for f in futures]

    async def _acks(self, batch: asyncio.Future[list[bool | BaseException]]) -> None:
        """Wait for a batch's ACKs. ExaBGP is wedged when no ACK at all comes for ``ack_timeout_s``
        (TimeoutError, the batch cancelled); a long batch that keeps being acknowledged is not: the first
        announcement of 64,000 routes (the scale lab, docs/benchmarks.md) takes ExaBGP a minute."""
        start = time.monotonic()
        while not batch.done():
            left = max(start, self._acked_at) + self._ack_timeout_s - time.monotonic()
            if left <= 0:
                batch.cancel()
                raise TimeoutError
            await asyncio.wait((batch,), timeout=left)

    # ---------------------------------------------------------------------------------- reconcile

    def _held_back(self, key: _RouteId, what: RouteAttrs | str | None, now: float) -> bool:
        failure = self._failures.get(key)
        if failure is None or failure.what != what:
            return False
        return now < failure.retry_at

    def _failed(self, cmd: commands.Command, now: float) -> None:
        """ExaBGP refused ``cmd``: every route in it is retried with backoff, one route per command (so that
        one route ExaBGP refuses never holds back the others); one error line names the command."""
        attempts = 0
        delay = 0.0
        for change in cmd.changes:
            key = (change.peer, change.kind, change.key)
            what = _what(change, self._held.get(change.peer, {}).get(change.key))
            prev = self._failures.get(key)
            tries = prev.attempts + 1 if prev is not None and prev.what == what else 1
            wait = self._retry_backoff.delay(tries, self._rng.random())
            self._failures[key] = _Failure(what, tries, now + wait)
            attempts, delay = max(attempts, tries), max(delay, wait)
        self._rearm.set()
        self.counters["acks_error"] += 1
        recent = list(self._supervisor.recent)[-3:] if self._supervisor is not None else []
        self._log.error(
            events.EXABGP_COMMAND_ERROR,
            peer=cmd.peer,
            command=cmd.line[:2000],
            routes=len(cmd.changes),
            attempt=attempts,
            retry_in_s=round(delay, 3),
            exabgp_recent_output=recent,
            hint="ExaBGP refused the command; its routes are not marked announced and are retried, one per command",
        )

    # one pass in make-before-break order (announce, then withdraw what is safe, then End-of-RIB), each step
    # checking that the connection survived; kept in one place so that the order is read top to bottom
    async def _reconcile(self) -> SyncResult:  # noqa: C901, PLR0912, PLR0915
        """One pass: desired vs held. Caller holds ``self._lock``."""
        conn = self._conn
        if conn is None:
            return SyncResult(0, 0, 0, connected=False)
        now = time.monotonic()
        self._await_plan = {p: t for p, t in self._await_plan.items() if t > now}
        full = frozenset(p for p in self._resync if self._states.get(p) == SessionState.UP)
        # a session whose ADD-PATH changed waits (a little) for the plan made for it before its End-of-RIB, so
        # that its graceful-restart stale routes are replaced by that plan's, not by one made for the old state
        waiting = full & set(self._await_plan)
        if self._rib_complete:
            self._resync -= full - waiting  # else: re-announced now, and once more with End-of-RIB when complete
        changes = commands.diff(self.policy, self._desired, self._held, full)
        wanted = {(c.peer, c.kind, c.key) for c in changes}
        for stale in [k for k in self._failures if k not in wanted]:
            del self._failures[stale]  # no longer needed: stop retrying it
        sent = errors = held_back = 0
        blocked: set[tuple[str, str]] = set()  # (peer, prefix) whose new route is not in place yet
        go: list[RouteChange] = []
        for change in changes:
            key = (change.peer, change.kind, change.key)
            if self._held_back(key, _what(change, self._held.get(change.peer, {}).get(change.key)), now):
                held_back += 1
                if change.kind is ChangeKind.ANNOUNCE:
                    blocked.add((change.peer, change.key.prefix))
                continue
            go.append(change)
        # a session without ADD-PATH sees a withdrawal of any path id as "withdraw the prefix": where such
        # a peer gets a prefix announced anew (one path now, several before), the old ids go first
        fresh = {(c.peer, c.key.prefix) for c in go if c.kind is ChangeKind.ANNOUNCE}
        early_changes = [c for c in go if c.kind is ChangeKind.WITHDRAW and self._collapses(c.peer, c.key, fresh)]
        early = self._commands(early_changes)
        announces = self._commands([c for c in go if c.kind is ChangeKind.ANNOUNCE])
        early_ids = {id(c) for c in early_changes}
        withdraw_changes = [c for c in go if c.kind is ChangeKind.WITHDRAW and id(c) not in early_ids]
        for cmd, ok in zip(early, await self._send(conn, early), strict=True):
            sent += 1
            if not self._withdrawn(conn, cmd, ok, now):
                errors += 1
        if self._conn is not conn:
            return SyncResult(sent, errors, held_back, connected=False)
        for cmd, ok in zip(announces, await self._send(conn, announces), strict=True):
            sent += 1
            if ok:
                held = self._held.setdefault(cmd.peer, {})
                self._view_changed()
                for change in cmd.changes:
                    assert change.attrs is not None
                    held[change.key] = change.attrs
                    self._failures.pop((change.peer, change.kind, change.key), None)
                continue
            errors += 1
            blocked.update((c.peer, c.key.prefix) for c in cmd.changes)
            if self._conn is conn:
                self._failed(cmd, now)
        if self._conn is not conn:
            return SyncResult(sent, errors, held_back, connected=False)
        # make-before-break: keep the old route of a prefix whose new route did not go in
        ready_changes = [c for c in withdraw_changes if (c.peer, c.key.prefix) not in blocked]
        held_back += len(withdraw_changes) - len(ready_changes)
        ready = self._commands(ready_changes)
        for cmd, ok in zip(ready, await self._send(conn, ready), strict=True):
            sent += 1
            if not self._withdrawn(conn, cmd, ok, now):
                errors += 1
        if self._conn is not conn:
            return SyncResult(sent, errors, held_back, connected=False)
        if self._manual_eor and full and self._rib_complete:
            eors = [
                c
                for peer in sorted(full - waiting)
                if self._states.get(peer) == SessionState.UP
                for c in commands.eor_lines(self.policy, peer)
            ]
            for cmd, ok in zip(eors, await self._send(conn, eors), strict=True):
                sent += 1
                if ok:
                    self.counters["eor_sent"] += 1
                else:
                    errors += 1
                    self.counters["acks_error"] += 1
                    self._log.error(
                        events.EXABGP_COMMAND_ERROR,
                        peer=cmd.peer,
                        command=cmd.line,
                        hint="End-of-RIB refused; the peer's resync is retried",
                    )
                    self._resync.add(cmd.peer)
            if full:
                self._log.info(
                    events.SPEAKER_RESYNCED,
                    peers=sorted(full),
                    routes={p: len(self._desired.get(p, {})) for p in sorted(full)},
                )
        if self._resync - waiting and self._rib_complete:
            self._wake.set()  # an End-of-RIB was refused: resync that peer again
        result = SyncResult(sent, errors, held_back, connected=True)
        if sent or errors or held_back:
            self._log.info(events.SPEAKER_RECONCILED, sent=sent, errors=errors, held_back=held_back)
        return result

    def _collapses(self, peer: str, key: RouteKey, fresh: set[tuple[str, str]]) -> bool:
        """Would withdrawing ``key`` remove a route announced in this pass? (a session that is up without
        ADD-PATH in the prefix's family: path ids do not go on the wire)"""
        if key.path_id == 0 or (peer, key.prefix) not in fresh or self._states.get(peer) != SessionState.UP:
            return False
        try:
            family = Family.of(commands.check_network(key.prefix))
        except SpeakerError:
            return False
        return family not in self._add_path.get(peer, frozenset())

    def _withdrawn(self, conn: _Conn, cmd: commands.Command, ok: bool, now: float) -> bool:
        """Book the routes of one acknowledged withdrawal command; False when it failed."""
        if ok:
            held = self._held.get(cmd.peer, {})
            self._view_changed()
            for change in cmd.changes:
                held.pop(change.key, None)
                self._failures.pop((change.peer, change.kind, change.key), None)
            return True
        if self._conn is conn:
            self._failed(cmd, now)
        return False

    def _commands(self, changes: Sequence[RouteChange]) -> list[commands.Command]:
        """The commands for ``changes``: grouped (:func:`commands.batch`), except that a route that failed
        before goes alone, one route per command, until ExaBGP takes it."""
        retried = [c for c in changes if (c.peer, c.kind, c.key) in self._failures]
        grouped = [c for c in changes if (c.peer, c.kind, c.key) not in self._failures]
        out = commands.batch(self.policy, grouped, self._held)
        for change in retried:
            out.extend(commands.batch(self.policy, [change], self._held))
        return out

    def _next_retry(self) -> float | None:
        due = [f.retry_at for f in self._failures.values()] + list(self._await_plan.values())
        if not due:
            return None
        return max(0.0, min(due) - time.monotonic())

    async def _reconcile_loop(self) -> None:
        """Background passes: after a session comes up, a new ExaBGP connects, or a retry falls due."""
        while True:
            delay = self._next_retry()
            self._rearm.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(self._rearm.wait())]
            try:
                await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if not self._wake.is_set():
                due = self._next_retry()
                if due is None or due > 0:
                    continue  # only the retry timer changed
            self._wake.clear()
            async with self._lock:
                try:
                    await self._reconcile()
                except SpeakerError as e:  # cannot happen for a validated RIB; never let the loop die
                    self._log.error(events.SPEAKER_RECONCILE_FAILED, error=str(e))
