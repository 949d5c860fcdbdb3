"""``bgpctl daemon``: probes -> statistics -> decide -> plan -> speaker, until SIGTERM.

Runs in the foreground (systemd does the daemonizing). Start-up order: one-instance lock, policy
routing pins for the probes, the speaker (ExaBGP as our child), the probes, the evaluation loop.
Shutdown (SIGTERM/SIGINT) in reverse; by default the routes stay announced (graceful restart keeps
them at the peers while the daemon restarts); ``--withdraw-on-exit`` withdraws them first.

The evaluation loop wakes on every settled sample batch and every probe slot (and at least once a
second). Before each evaluation it reads every reply waiting in the probe sockets, so "unanswered" is
judged on all the evidence up to that moment (a stalled loop never makes an answered probe look
unanswered); the controller (:class:`~bgpctl.core.controller.Controller`, the one replay runs too)
then judges and plans. Outside signals (:mod:`bgpctl.signals`) are polled by tasks of their own and
told to the controller before each evaluation. With ``--record`` every input of the controller (sends,
samples, sessions, signals, evaluation steps) is written in order, so ``bgpctl replay`` reproduces the
daemon's decisions.
The speaker is fed by its own task, latest plan wins: a slow or restarting ExaBGP never stalls the
decisions, and the RIB it converges to is always the newest one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, start_http_server
from pyroute2.netlink.exceptions import NetlinkError

from bgpctl import events
from bgpctl.control import protocol as control_protocol
from bgpctl.control.reload import PolicyDesk, PolicySource, read_source
from bgpctl.control.server import ControlServer, Dispatcher
from bgpctl.control.service import OverrideDesk, group_gid, runtime_rows
from bgpctl.control.service import handlers as control_handlers
from bgpctl.control.state import DecisionLog, ExabgpView, SessionTracker, Snapshot
from bgpctl.core.controller import Controller, Step
from bgpctl.core.overrides import Runtime
from bgpctl.core.plan import path_states
from bgpctl.core.recording import Schedule
from bgpctl.core.reload import PolicyDiff, stale_overrides
from bgpctl.core.types import Health, PathKey, Plan, Rib, Sample
from bgpctl.daemon import privileges
from bgpctl.daemon.sinks import DecisionSink, LogSink, Metrics, MetricsSink, Throttle, export_routing_state
from bgpctl.errors import BgpctlError, ProbeError, SpeakerError
from bgpctl.hooks.sink import HookSink, read_hook_secrets
from bgpctl.listen import parse_listen
from bgpctl.policy.load import check_policy_text
from bgpctl.policy.model import Policy
from bgpctl.probe.paths import ProbeSpec, make_probe, specs_from_policy
from bgpctl.probe.pinning import Pinning, pins_from_policy
from bgpctl.probe.recorder import Recorder
from bgpctl.probe.scheduler import PathProber, drive
from bgpctl.rundir import RunDir, locked
from bgpctl.signals.feed import SignalFeed
from bgpctl.speaker.messages import SessionState
from bgpctl.speaker.speaker import Speaker
from bgpctl.speaker.supervisor import Supervisor

LOCK_NAME = "bgpctl.lock"
IDLE_WAKE_S = 1.0
PIN_CHECK_S = 2.0
"""How often the probe pins are checked (and installed again where a part is gone: a link that went down
flushes the routes of their tables, so a host cut off and back would probe nothing until then)."""
METRICS_EVERY_S = 0.25
"""The gauges (path statistics, sessions, routes held) are set at most this often; counters count every event."""
STARTUP_GRACE_S = 10.0
"""After a start, End-of-RIB waits until every path is judged, or this long (and a plan exists)."""


class DaemonError(BgpctlError):
    """The daemon cannot start (another instance runs, a bad run directory, ...)."""


@dataclass(frozen=True)
class Options:
    policy_file: Path
    run_dir: Path | None = None  # default: the policy's speaker.exabgp.run_dir
    metrics_listen: str | None = None  # "ADDR:PORT"
    withdraw_on_exit: bool = False
    record: Path | None = None  # JSONL of every input of the controller, for `bgpctl replay`


@contextlib.contextmanager
def single_instance(run_dir: Path) -> Iterator[None]:
    """One daemon per run directory (and so per host with the default): an flock held while we run.

    The run directory is checked first (ours, writable by nobody else, not a symlink) and the lock is
    opened through its fd without following symlinks (:mod:`bgpctl.rundir`)."""
    with RunDir.open(run_dir) as checked, locked(checked, LOCK_NAME) as fd:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield


def start_metrics(value: str, registry: CollectorRegistry) -> None:
    """Serve the metrics on ``value`` (ADDR:PORT); one line saying why not (port in use, no such address,
    a name that does not resolve) instead of a traceback."""
    host, port = parse_listen(value)
    try:
        start_http_server(port, addr=host, registry=registry)
    except socket.gaierror as e:
        raise DaemonError(f"--metrics {value!r}: cannot resolve {host!r} ({e.strerror}): give an IP address") from None
    except OSError as e:
        hint = {
            errno.EADDRINUSE: "another process listens there: pick a free port (ss -ltnp shows who)",
            errno.EADDRNOTAVAIL: "no interface has this address: use one of this host's addresses",
            errno.EACCES: "ports below 1024 need CAP_NET_BIND_SERVICE: use a port above 1023",
        }.get(e.errno or 0, "choose another ADDR:PORT")
        raise DaemonError(f"--metrics {value!r}: cannot listen: {e.strerror}; {hint}") from None


class _Syncer:
    """Feeds the speaker the newest desired RIB; never more than one sync in flight."""

    def __init__(self, speaker: Speaker, log: structlog.typing.FilteringBoundLogger) -> None:
        self.speaker, self.log = speaker, log
        self._latest: tuple[Rib, bool] | None = None
        self._wake = asyncio.Event()

    def offer(self, rib: Rib, *, complete: bool) -> None:
        self._latest = (rib, complete)
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            latest, self._latest = self._latest, None
            if latest is None:
                continue
            rib, complete = latest
            started = time.monotonic()
            try:
                result = await self.speaker.sync(rib, complete=complete)
            except SpeakerError as e:  # refused whole: nothing was sent, the previous RIB stays
                self.log.error(events.SPEAKER_REFUSED, error=str(e))
                continue
            self.log.info(
                events.SPEAKER_SYNCED,
                sent=result.sent,
                errors=result.errors,
                complete=result.complete,
                ms=round((time.monotonic() - started) * 1000, 1),
            )


class Daemon:
    def __init__(
        self,
        policy: Policy,
        opts: Options,
        log: structlog.typing.FilteringBoundLogger,
        metrics: Metrics,
        source: PolicySource | None = None,
    ) -> None:
        self.policy, self.opts, self.log, self.metrics = policy, opts, log, metrics
        self.run_dir = opts.run_dir or Path(policy.speaker.exabgp.run_dir)
        self.controller = Controller(policy, {})  # nothing negotiated until the sessions' OPENs are seen
        self.decisions = DecisionLog()  # the control API's "last decisions" and current stats
        # gauges at most every METRICS_EVERY_S (the loop passes 100-200 times a second at 64 paths)
        self.sinks: list[DecisionSink] = [LogSink(log), MetricsSink(metrics, Throttle(METRICS_EVERY_S)), self.decisions]
        self._export_due = Throttle(METRICS_EVERY_S)
        self.speaker = Speaker(policy, self.run_dir, log)
        self._wake = asyncio.Event()
        self.speaker.on_negotiated = self._wake.set  # a session's ADD-PATH changed: plan again
        self.speaker.on_session = self._wake.set  # a session went up or down: judge its paths now
        self._stop = asyncio.Event()
        self._notes: tuple[str, ...] = ()
        self._started = time.time()
        self._pins_checked = time.time()
        self._pins_broken = False  # the last check could not repair the pins (logged once until it can)
        self._complete = False  # the desired RIB is whole: End-of-RIB may go out (see STARTUP_GRACE_S)
        self._recorder: Recorder | None = None
        self._probers: list[PathProber] = []
        self._groups: dict[int, list[PathProber]] = {}  # each driver task's probers (a reload removes some)
        self._probe_counts: dict[PathKey, dict[str, int]] = {}
        self._sessions = SessionTracker()
        self.control_state: Snapshot | None = None  # replaced after every pass of the loop
        self.control_gid = group_gid(policy.control.group)  # before anything starts: an unknown group stops us
        self._failures_seen: dict[tuple[str, str, str], int] = {}
        self._api_connections = 0  # the speaker's API connection the controller was last told sessions of
        # hooks: their secrets are read now (one that cannot be read stops the start, as an MD5 password does)
        self.hooks: HookSink | None = None
        if policy.hooks:
            self.hooks = HookSink(
                policy, self.controller, metrics=metrics, log=log, secrets=read_hook_secrets(policy, os.environ)
            )
            self.sinks.append(self.hooks)
        self.desk = OverrideDesk(
            self.controller,
            self.run_dir,
            log,
            on_change=self._overrides_changed,
            on_event=self.hooks.override if self.hooks is not None else lambda _t, _o: None,
        )
        self.signals = SignalFeed(policy, log, metrics, wake=self._wake.set)  # outside signals (docs/signals.md)
        if source is None:
            source = read_source(opts.policy_file)[1]
        self.policy_desk = PolicyDesk(
            self.controller, opts.policy_file, source, log, apply=self._apply_policy, on_result=self._reloaded
        )
        self._pins = Pinning(pins_from_policy(policy))
        self._tasks: list[asyncio.Task[None]] = []  # the probe drivers and the syncer, while running
        self._task_failed: BaseException | None = None
        self._reloads: set[asyncio.Task[object]] = set()  # SIGHUP reloads under way
        self._sighup_pending = False  # a SIGHUP came during start-up

    # --------------------------------------------------------------------------- policy reload

    def _reloaded(self, result: str, at: float) -> None:
        """A reload ended: counted (bgpctl_policy_reloads_total ...) and told to the hooks (policy.reload)."""
        self.metrics.reloaded(result, at)
        if self.hooks is not None:
            self.hooks.emit(events.POLICY_RELOAD, {"result": result, "file": str(self.opts.policy_file)}, at=at)

    def sighup(self) -> None:
        """SIGHUP: the same reload as ``bgpctl reload`` (logged as ``policy.reload``, by the signal). During
        start-up (before the probes run) it is kept and done as soon as they do."""
        if not self._tasks:
            self._sighup_pending = True
            return
        task = asyncio.get_running_loop().create_task(self._sighup_reload(), name="reload-sighup")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _sighup_reload(self) -> None:
        """Every SIGHUP ends in one log line: the desk's ``policy.reload`` (applied, unchanged, refused), or,
        if a stop cuts it short or a bug breaks it, ``daemon.signal`` saying so (nothing is lost silently)."""
        try:
            await self.policy_desk.reload(dry_run=False, by={"signal": "SIGHUP"}, reason="SIGHUP")
        except control_protocol.ProtocolError:  # refused: logged and counted by the desk
            pass
        except asyncio.CancelledError:
            self.log.warning(
                events.DAEMON_SIGNAL,
                signal="SIGHUP",
                action="reload abandoned",
                hint="the daemon stopped before the reload ended: the policy file runs at the next start",
            )
            raise
        except Exception as e:  # a bug: logged with its traceback; the daemon keeps the old policy and runs on
            self.log.exception(
                events.DAEMON_SIGNAL,
                signal="SIGHUP",
                action="reload failed",
                error=repr(e),
                hint="the daemon keeps running the old policy: report this log line",
            )

    async def _apply_policy(self, new: Policy, change: PolicyDiff) -> None:
        """Apply a checked policy: policy routing for new paths first (a failure changes nothing), then, with no
        await in between, the controller, the speaker and the probes; the old paths' pins go last."""
        new_pins = Pinning(pins_from_policy(new))  # ProbeError (a conflict): refused before anything changed
        specs = {s.key: s for s in specs_from_policy(new)}
        added = Pinning(set(new_pins.pins) - set(self._pins.pins))
        gone = Pinning(set(self._pins.pins) - set(new_pins.pins))
        if added.pins:
            try:
                await added.install_async()
                stale = stale_overrides(new, self.controller.runtime)  # an override set while we awaited
                if stale:
                    raise DaemonError(f"runtime overrides set meanwhile name what it lacks: {'; '.join(stale)}")
            except BaseException:
                with contextlib.suppress(Exception):
                    await added.remove_async()
                raise
        self.speaker.replace_policy(new)  # first: it refuses (SpeakerError) before anything changed
        self.controller.reload(new)
        self.policy = new
        self._pins = new_pins
        self._swap_probers(change, specs)
        self.metrics.forget_paths(change.removed)
        self._wake.set()  # plan at once: the controller replans after a reload
        if gone.pins:
            try:
                await gone.purge_async()
            except Exception as e:  # the paths are gone already: a pin left is only untidy
                self.log.warning(events.DAEMON_STALE_PINS, removed=[], error=str(e), hint="the next start sweeps them")

    def _swap_probers(self, change: PolicyDiff, specs: dict[PathKey, ProbeSpec]) -> None:
        stop = set(change.removed) | set(change.reprobed)
        for prober in [p for p in self._probers if p.key in stop]:
            for group in self._groups.values():
                if prober in group:
                    group.remove(prober)
            prober.close()
            self._probers.remove(prober)
            self._probe_counts.pop(prober.key, None)
        start = [specs[k] for k in (*change.added, *change.reprobed)]
        if start:
            self._start_probers(start)

    def _start_probers(self, specs: list[ProbeSpec]) -> None:
        """New probers, one driver task per interval (a reload's join the running set this way)."""
        probers = [
            PathProber(
                s.key,
                make_probe(s),
                interval_s=s.interval_s,
                timeout_s=s.timeout_s,
                sink=self.on_sample,
                on_sent=self.on_sent,
            )
            for s in specs
        ]
        self._probers.extend(probers)
        fresh: dict[float, list[PathProber]] = {}
        for p in probers:
            fresh.setdefault(p.interval_s, []).append(p)
        for interval, group in fresh.items():
            n = len(self._groups)
            self._groups[n] = group
            task = asyncio.create_task(drive(group, interval), name=f"probes-{interval * 1000:g}ms-{n}")
            task.add_done_callback(self._task_done)
            self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        """A driver or the syncer ended: only a failure (or a bug) does that while running: stop with it."""
        if task.cancelled() or self._stop.is_set():
            return
        self._task_failed = task.exception() or RuntimeError(f"task {task.get_name()} ended")
        self.stop()

    def _overrides_changed(self, runtime: Runtime) -> None:
        """A control verb (or the start) changed the runtime overrides: record them, plan at once."""
        if self._recorder is not None:
            self._recorder.overrides(runtime)
        self._wake.set()

    # --------------------------------------------------------------------------- samples in

    def on_sent(self, key: PathKey, seq: int, at: float) -> None:
        self.controller.sent(key, seq, at)
        if self._recorder is not None:
            self._recorder.sent(key, seq, at)
        self._wake.set()  # a dead path settles nothing until its timeout: judge its overdue probes now

    def on_sample(self, key: PathKey, sample: Sample) -> None:
        self.controller.add(key, sample)
        if self._recorder is not None:
            self._recorder(key, sample)
        self._wake.set()

    # --------------------------------------------------------------------------- the loop

    def evaluate(self, now: float) -> Step:
        """Read the replies that arrived by ``now``, then let the controller judge and plan. The plan's
        report to the sinks (:meth:`report_plan`) is the caller's, after the speaker has it."""
        for prober in self._probers:
            prober.poll_replies()
        negotiated = self.speaker.add_path_send()
        if self.controller.negotiated(negotiated):
            self.log.info(
                events.PLAN_CAPABILITIES,
                add_path_send={p.name: sorted(f.value for f in negotiated.get(p.name, ())) for p in self.policy.peers},
                hint="peers without ADD-PATH get one best path per prefix",
            )
            if self._recorder is not None:
                self._recorder.negotiated(negotiated)
        self._feed_sessions(now)
        self.signals.feed(self.controller, now, self._recorder)
        if self._recorder is not None:
            self._recorder.step(now)
        step = self.controller.step(now)
        self.desk.expired(step.expired)
        for sink in self.sinks:
            sink.measured(step.stats)
            for t in step.transitions:
                sink.transition(t)
        return step

    def report_plan(self, plan: Plan, at: float) -> None:
        """The plan to the sinks: one ``route.change`` line per changed route, metrics, hooks, the journal."""
        new_notes = tuple(n for n in plan.notes if n not in self._notes)
        self._notes = plan.notes
        for sink in self.sinks:
            sink.planned(plan, at=at, new_notes=new_notes)

    def _feed_sessions(self, now: float) -> None:
        """Tell the controller each session's state (decide's rule 0). Nothing while ExaBGP's API is not
        connected or ExaBGP is shutting down: the speaker then marks every session down, but that says
        nothing about the TGWs (with graceful restart they keep our routes). A new API connection (a
        restarted ExaBGP) voids what the old one said: every session is told unknown first."""
        if not self.speaker.api_connected or self.speaker.exabgp_stopping:
            return
        fresh = self.speaker.api_connections != self._api_connections
        self._api_connections = self.speaker.api_connections
        for peer, state in self.speaker.sessions().items():
            if fresh:  # a new ExaBGP: what the old one said is void (its sessions connect again from idle)
                self._tell_session(peer, state, None, now)
            up = True if state == SessionState.UP else None if state == SessionState.IDLE else False
            self._tell_session(peer, state, up, now)

    def _tell_session(self, peer: str, state: str, up: bool | None, now: float) -> None:
        if self.controller.session(peer, up):
            self.log.info(
                events.PATH_SESSION,
                peer=peer,
                state=state,
                told="unknown" if up is None else "up" if up else "down",
                sessions_down=sorted(self.controller.sessions_down),
            )
            if self._recorder is not None:
                self._recorder.session(peer, up, now)

    async def _loop(self, syncer: _Syncer) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_WAKE_S)
            self._wake.clear()
            now = time.time()
            if now - self._pins_checked >= PIN_CHECK_S:
                self._pins_checked = now
                await self._repair_pins()
            step = self.evaluate(now)
            became_complete = not self._complete and self._rib_complete(now)
            if became_complete:
                self._complete = True
                self.log.info(
                    events.DAEMON_RIB_COMPLETE,
                    after_s=round(now - self._started, 3),
                    unjudged=[str(k) for k, h in self.controller.health.items() if h.health is Health.UNKNOWN],
                )
            if step.plan is not None or became_complete:
                last = self.controller.last_plan
                assert last is not None
                # the speaker sends only what differs from what ExaBGP holds
                syncer.offer(last.desired, complete=self._complete)
            if step.plan is not None:
                # the commands first: the syncer writes them up to its first wait for ExaBGP's ACKs, then the
                # log lines of the plan (one per route: 0.4-0.6 CPU s for a region at 1,000 prefixes, 16 edges)
                await asyncio.sleep(0)
                self.report_plan(step.plan, step.at)
            if step.plan is not None or self._export_due.due():
                self._export_state()
            self.control_state = self.snapshot(time.time())

    async def _repair_pins(self) -> None:
        try:
            repaired = await self._pins.repair_async()
        except (ProbeError, NetlinkError, OSError) as e:  # the link is still down: the next check tries again
            if not self._pins_broken:
                self.log.warning(events.DAEMON_PINS_REPAIRED, repaired=[], error=str(e), hint="tried again every 2 s")
            self._pins_broken = True
            return
        self._pins_broken = False
        if repaired:
            self.log.warning(events.DAEMON_PINS_REPAIRED, repaired=repaired, hint="a link went down and took them")

    def _rib_complete(self, now: float) -> bool:
        if self.controller.last_plan is None:
            return False  # nothing planned yet: peers keep their graceful-restart routes meanwhile
        judged = all(h.health is not Health.UNKNOWN for h in self.controller.health.values())
        return judged or now - self._started >= STARTUP_GRACE_S

    def _export_state(self) -> None:
        for peer, state in self.speaker.sessions().items():
            self.metrics.session_up.labels(peer).set(1 if state == SessionState.UP else 0)
        negotiated = self.speaker.add_path_send()
        for p in self.policy.peers:
            for family in p.families:
                self.metrics.add_path.labels(p.name, family.value).set(1 if family in negotiated.get(p.name, ()) else 0)
        for event, n in self.speaker.counters.items():
            self.metrics.speaker.labels(event).set(n)
        for peer, n in self.speaker.received_counts().items():
            self.metrics.received_prefixes.labels(peer).set(n)
        for labels, n in self.speaker.failures.items():
            if n > self._failures_seen.get(labels, 0):
                self.metrics.session_failures.labels(*labels).inc(n - self._failures_seen.get(labels, 0))
                self._failures_seen[labels] = n
        for prober in self._probers:
            seen = self._probe_counts.setdefault(prober.key, {})
            for outcome, n in prober.counters.items():
                if n > seen.get(outcome, 0):
                    self.metrics.probes.labels(*prober.key.labels, outcome).inc(n - seen.get(outcome, 0))
                    seen[outcome] = n
        export_routing_state(
            self.metrics,
            states=path_states(self.policy, self.controller.health, self.controller.overrides)[0],
            peers=[p.name for p in self.policy.peers],
            announced=self.speaker.announced(),
            policy_overrides=self.policy.overrides,
            runtime=self.controller.runtime,
        )

    def snapshot(self, now: float) -> Snapshot:
        """The state the control API answers from (references to immutable state, small copies)."""
        try:
            sup: Supervisor | None = self.speaker.supervisor
        except SpeakerError:  # not started yet
            sup = None
        return Snapshot(
            at=now,
            policy=self.policy,
            policy_file=str(self.opts.policy_file),
            run_dir=str(self.run_dir),
            pid=os.getpid(),
            started_at=self._started,
            rib_complete=self._complete,
            health=self.controller.health,
            stats=self.decisions.stats,
            plan=self.controller.last_plan,
            announced=self.speaker.announced(),
            sessions=self._sessions.observe(self.speaker.sessions(), self.speaker.session_errors, now),
            exabgp=ExabgpView(
                pid=self.speaker.exabgp_pid,
                starts=sup.starts if sup is not None else 0,
                exits=tuple(sup.exits[-10:]) if sup is not None else (),
                api_connected=self.speaker.api_connected,
            ),
            speaker_counters=dict(self.speaker.counters),
            decisions=self.decisions.recent(),
            overrides=runtime_rows(self.controller.runtime),
            effective=self.controller.overrides,
            policy_source=self.policy_desk.state(),
            signals=self.signals.rows(),
            reflected=self.speaker.reflected(),
        )

    def _control_snapshot(self) -> Snapshot:
        return self.control_state if self.control_state is not None else self.snapshot(time.time())

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Pins in place around the whole run. At start, whatever a killed daemon left (its rules, tables,
        addresses, also for paths the policy no longer has) is swept first; on every exit that runs
        Python (a return, an exception, SIGTERM/SIGINT/SIGQUIT) every pin of the policy is taken away,
        also those this process found in place rather than created."""
        try:
            stale = await self._pins.sweep_async()  # pyroute2's AsyncIPRoute, on our event loop
            if stale:
                self.log.warning(events.DAEMON_STALE_PINS, removed=stale, hint="left by a daemon that did not exit")
            await self._pins.install_async()
            await self._run_pinned()
        finally:
            await self._pins.purge_async()  # the pins of the policy running now (a reload may have changed them)

    async def _run_pinned(self) -> None:
        with contextlib.ExitStack() as stack:
            specs = specs_from_policy(self.policy)
            if self.opts.record is not None:
                self._recorder = stack.enter_context(Recorder(self.opts.record))
                self._recorder.header(
                    {s.key: Schedule(s.interval_s, s.timeout_s) for s in specs}, steps=True, negotiated=True
                )
            self.log.info(
                events.DAEMON_START,
                policy=str(self.opts.policy_file),
                run_dir=str(self.run_dir),
                pid=os.getpid(),
                paths=[str(k) for k in self.controller.keys],
            )
            self.desk.load()  # before the first plan: a drain set before a restart holds from the start
            await self.speaker.start()
            control = ControlServer(
                self.run_dir / control_protocol.SOCKET_NAME,
                Dispatcher(
                    control_handlers(self._control_snapshot, self.desk, self.policy_desk),
                    self.log,
                    group_gid=self.control_gid,
                ),
                self.log,
                group_gid=self.control_gid,
            )
            try:
                await control.start()
            except OSError as e:
                await self.speaker.stop(withdraw=False)
                raise DaemonError(f"cannot listen on {control.path}: {e.strerror or e}: check the run directory") from e
            self._start_probers(specs)
            syncer = _Syncer(self.speaker, self.log)
            if self.hooks is not None:
                self.hooks.start()
            sync_task = asyncio.create_task(syncer.run(), name="syncer")
            sync_task.add_done_callback(self._task_done)
            self._tasks.append(sync_task)
            for task in self.signals.tasks():
                task.add_done_callback(self._task_done)
                self._tasks.append(task)
            if self._sighup_pending:
                self.sighup()
            try:
                await self._loop(syncer)
                if self._task_failed is not None:
                    raise self._task_failed
            finally:
                running: list[asyncio.Task[Any]] = [*self._tasks, *self._reloads]
                for t in running:
                    t.cancel()
                await asyncio.gather(*running, return_exceptions=True)
                await self.signals.close()
                self.log.info(events.DAEMON_STOP, withdraw=self.opts.withdraw_on_exit)
                await control.stop()
                await self.speaker.stop(withdraw=self.opts.withdraw_on_exit)
                if self.hooks is not None:  # after the speaker: routing first, then a bounded flush
                    await self.hooks.stop()


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
"""Each stops the daemon through its cleanup (ExaBGP stopped, pins removed, lock released)."""
IGNORED_SIGNALS = {
    signal.SIGUSR1: "bgpctl does nothing on SIGUSR1",
    signal.SIGUSR2: "bgpctl does nothing on SIGUSR2",
}
"""Signals whose default action would kill the daemon without its cleanup: logged and ignored."""


def _install_signals(
    loop: asyncio.AbstractEventLoop,
    stop: Callable[[], None],
    log: structlog.typing.FilteringBoundLogger,
    reload: Callable[[], None] | None = None,
) -> None:
    """``reload`` None (before the daemon can reload): SIGHUP is logged and ignored like SIGUSR1."""

    def stopping(sig: signal.Signals) -> None:
        log.info(events.DAEMON_SIGNAL, signal=sig.name, action="stop")
        stop()

    def reloading(sig: signal.Signals) -> None:
        log.info(events.DAEMON_SIGNAL, signal=sig.name, action="reload")
        assert reload is not None
        reload()

    def ignoring(sig: signal.Signals, why: str) -> None:
        log.warning(events.DAEMON_SIGNAL, signal=sig.name, action="ignored", hint=why)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stopping, sig)
    for sig, why in IGNORED_SIGNALS.items():
        loop.add_signal_handler(sig, ignoring, sig, why)
    if reload is None:
        loop.add_signal_handler(signal.SIGHUP, ignoring, signal.SIGHUP, "the daemon is not running yet")
    else:
        loop.add_signal_handler(signal.SIGHUP, reloading, signal.SIGHUP)


async def _main(opts: Options, log: structlog.typing.FilteringBoundLogger) -> None:
    text, source = read_source(opts.policy_file)  # the same read and checks as `bgpctl policy check`
    policy = check_policy_text(text, str(opts.policy_file)).policy
    privileges.check(policy)
    metrics = Metrics()
    daemon = Daemon(policy, opts, log, metrics, source)
    # signals first: one arriving during start-up must still run the cleanup of what started already
    _install_signals(asyncio.get_running_loop(), daemon.stop, log, daemon.sighup)
    with single_instance(daemon.run_dir):
        if opts.metrics_listen:
            start_metrics(opts.metrics_listen, metrics.registry)
        await daemon.run()


def run(opts: Options, log: structlog.typing.FilteringBoundLogger) -> None:
    asyncio.run(_main(opts, log))
