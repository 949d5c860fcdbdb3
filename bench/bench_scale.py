"""Scale benchmark (issue 13 point 3): a region failure in a generated lab of N prefixes, E edge peers, 4 TGW
peers and P probed paths (bgpctl_lab/scale.py). Measures the time from the fault to the last route changed at
the last edge's FIB, the daemon's (and ExaBGP's) CPU in % of one core over a steady window and their RSS.
Results go to docs/benchmarks.md ("Scale").

    python -m bench.bench_scale generate DIR --size full          # the files only (real containerlab deploys DIR)
    python -m bench.bench_scale commands --size full              # ExaBGP commands of a region failure, no lab
    nice -n 19 flock /tmp/bgpctl-labrun.lock .venv/bin/python -m bench.bench_scale run --size small --runs 2
    flock /tmp/bgpctl-labrun.lock .venv/bin/python -m bench.bench_scale soak --size small --minutes 60

``soak`` (issue 13 point 4) brings the lab to steady state and then, with no fault, samples once a minute the
daemon's and ExaBGP's RSS and CPU and counts what should stay zero: route changes logged, path health
transitions, and kernel route messages for the watched prefixes at every edge.

Each ``run`` brings its own lab up (lab name ``sc<pid>``; ``bgpctl_lab.runner``: down on every exit path),
waits for every edge's FIB to hold every prefix via use1 (steady state), samples /proc for ``--steady-s``,
waits until the policy's rate limit has room for the whole failover, then per run: both use1 TGWs' links to
their Connect node go down (the region-blackhole drill's fault, for each path of the region), and an
``ip -ts monitor route`` in every edge (started before the fault; iproute2 stamps each kernel route
message as it reads it) gives the time of each prefix's last change. Done when every prefix at every edge
routes only via usw2; the final FIB is then checked with a netlink dump. Restore: links up, and the next
run starts when use1 is back everywhere (the rise rules: about a minute). The whole invocation is bounded
by ``--max-s`` (a run that would not fit is not started; the report says how many ran).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from pyroute2 import IPRoute

from bgpctl import events
from bgpctl.core.controller import Controller
from bgpctl.core.plan import path_states, plan
from bgpctl.core.types import ChangeKind, Health, PathHealth, PathKey
from bgpctl.daemon.sinks import LogSink, Metrics, MetricsSink, export_routing_state
from bgpctl.errors import LabError
from bgpctl.policy.load import load_policy
from bgpctl.speaker import Speaker, commands
from bgpctl.speaker.messages import SessionState
from bgpctl_lab import runner, scale
from bgpctl_lab.poll import BudgetExceeded, eventually
from bgpctl_lab.route_watch import MAIN_TABLE, nexthops_of
from bgpctl_lab.state import lab_dir

LAB_PREFIX = "sc"
SIZES: Mapping[str, scale.Size] = {
    "small": scale.Size(prefixes=250, edges=4, services=4),
    "medium": scale.Size(prefixes=500, edges=8, services=8),
    "full": scale.Size(prefixes=1000, edges=16, services=16),
}
FAILED_REGION = "use1"
MONITOR_LOG = "route-monitor.log"
UP_BUDGET_S = 120.0  # every FRR session (24 nodes at full size) Established, on a shared machine
STEADY_BUDGET_S = 150.0  # every edge's FIB holds every prefix via use1 (the initial load through ExaBGP)
MOVE_BUDGET_S = 120.0  # the failover reaches every edge
RECOVER_BUDGET_S = 150.0  # use1 back everywhere: voice hold-down 15 s + rise 10 s, api 30 s + 20 s, + load
RATE_WINDOW_S = 60.0


# ------------------------------------------------------------------------------------------ pure helpers


@dataclass
class MonitorRecord:
    """One kernel route message as ``ip -ts monitor route`` printed it."""

    at: float  # epoch seconds (iproute2's local-time stamp)
    prefix: str
    deleted: bool
    hops: tuple[str, ...]


@dataclass
class MonitorParser:
    """Incremental parser of ``ip -ts monitor route`` output: a record starts with ``[timestamp]``; a
    multipath route's next hops follow on indented lines (``nexthop via ADDR ...``)."""

    watched: frozenset[str]
    records: list[MonitorRecord] = field(default_factory=list)
    _pending: str = ""
    _current: MonitorRecord | None = None

    def feed(self, text: str) -> None:
        data = self._pending + text
        complete, _, self._pending = data.rpartition("\n")
        for line in complete.splitlines() if complete else []:
            if line.startswith("["):
                self._current = self._record(line)
            elif self._current is not None and line[:1].isspace():
                self._current.hops = tuple(sorted({*self._current.hops, *_vias(line)}))

    def _record(self, line: str) -> MonitorRecord | None:
        stamp, _, rest = line[1:].partition("]")
        words = rest.split()
        deleted = bool(words) and words[0] == "Deleted"
        words = words[1:] if deleted else words
        if not words or words[0] not in self.watched:
            return None
        rec = MonitorRecord(datetime.fromisoformat(stamp).timestamp(), words[0], deleted, tuple(sorted(_vias(rest))))
        self.records.append(rec)
        return rec


def _vias(text: str) -> set[str]:
    words = text.split()
    return {words[i + 1] for i, w in enumerate(words[:-1]) if w == "via" and words[i + 1] != "inet6"}


def moved(
    records: Iterable[MonitorRecord], prefixes: Sequence[str], since: float, away: frozenset[str]
) -> float | None:
    """The time of the last change of any prefix after ``since`` once every prefix's newest state after
    ``since`` is a route with next hops, none of them in ``away``; None while one is not there yet."""
    last: dict[str, MonitorRecord] = {}
    for rec in records:
        if rec.at >= since:
            last[rec.prefix] = rec
    if any(p not in last or last[p].deleted or not last[p].hops or set(last[p].hops) & away for p in prefixes):
        return None
    return max(r.at for r in last.values())


def fib_problems(hops: Mapping[str, tuple[str, ...]], *, want: frozenset[str], away: frozenset[str]) -> list[str]:
    """[] when every prefix has a next hop in ``want`` and none in ``away`` (netlink dump, route_watch)."""
    bad = [p for p, h in hops.items() if not set(h) & want or set(h) & away]
    return [f"{len(bad)} of {len(hops)} prefixes not yet (e.g. {bad[0]} via {list(hops[bad[0]])})"] if bad else []


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (``/proc/PID/stat`` fields 14 and 15), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """VmRSS of a process (``/proc/PID/status``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def log_time(event: Mapping[str, Any]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


# ------------------------------------------------------------------------------------------ the lab


@dataclass
class Steady:
    cpu_daemon_pct: float
    cpu_exabgp_pct: float
    rss_daemon_mib: float
    rss_exabgp_mib: float
    window_s: float
    loadavg: tuple[float, float, float]
    load_s: float  # lab up -> every edge's FIB complete


@dataclass
class Run:
    last_fib_s: float  # fault -> last route changed at the last edge (FIB)
    detected_s: float | None  # fault -> first use1 path suspect/down (daemon log)
    first_change_s: float | None  # fault -> first route.change logged
    last_change_s: float | None  # fault -> last route.change logged
    last_synced_s: float | None  # fault -> last speaker.synced (ExaBGP acked every command)
    changes: int  # route.change events after the fault
    commands: int  # ExaBGP commands the speaker sent after the fault (speaker.synced ``sent``)
    deferred: int  # route.deferred events after the fault
    slowest_edge: str
    loadavg: tuple[float, float, float]


@dataclass
class Sample:
    """One minute of a soak: CPU over the minute, RSS at its end, and counts since the soak began."""

    minute: int
    cpu_daemon_pct: float
    cpu_exabgp_pct: float
    rss_daemon_mib: float
    rss_exabgp_mib: float
    route_changes: int  # route.change events logged since the soak began
    transitions: int  # path.health events logged since the soak began
    fib_messages: int  # kernel route messages for a watched prefix at any edge since the soak began
    loadavg: tuple[float, float, float]


def growth_pct(values: Sequence[float], head: int = 3) -> float:
    """How much the last ``head`` samples' median exceeds the first ``head`` samples' median, in %."""
    first, last = statistics.median(values[:head]), statistics.median(values[-head:])
    return round(100.0 * (last - first) / first, 2) if first else 0.0


class DaemonLog:
    """The daemon's JSON log, read on from where the last call stopped; only decision events are kept."""

    KEEP = (
        events.ROUTE_CHANGE,
        events.ROUTE_DEFERRED,
        events.PATH_HEALTH,
        events.SPEAKER_SYNCED,
        events.EXABGP_ACK_TIMEOUT,
        events.EXABGP_STARTED,
    )

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.events = path, 0, list[dict[str, Any]]()

    def read(self) -> list[dict[str, Any]]:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].decode("utf-8", "replace").splitlines():
            if any(f'"{e}"' in line for e in self.KEEP):
                try:
                    self.events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return self.events

    def times(self, event: str, since: float = 0.0) -> list[float]:
        return [t for e in self.read() if e.get("event") == event and (t := log_time(e)) >= since]


def failover_changes(policy_file: Path) -> int:
    """The route changes the product's plan() makes for a region failure from steady state: de-preference
    (suspect) and then withdrawal (down) of every path of the failed region."""
    pol = load_policy(policy_file)
    keys = [PathKey(s, r, p) for s in pol.services for r, reg in pol.regions.items() for p in reg.paths]
    up = plan(pol, {k: PathHealth(Health.UP) for k in keys}, None, 0.0)
    n = 0
    prev = up
    for at, bad in ((100.0, Health.SUSPECT), (101.0, Health.DOWN)):  # the initial load is out of the rate window
        nxt = plan(pol, {k: PathHealth(bad if k.region == FAILED_REGION else Health.UP) for k in keys}, prev, at)
        n += len(nxt.changes)
        prev = nxt
    return n


def failover_commands(policy_file: Path) -> list[dict[str, Any]]:
    """Per step of a region failure (suspect, then down; and down seen in one evaluation), the daemon's own
    work, in CPU seconds (``time.process_time``: a loaded machine does not count): ``plan()``, the
    ``route.change`` log lines (the daemon's LogSink, JSON to /dev/null), and the speaker's part of a sync
    (``validate_rib`` of the routes that differ from the RIB it accepted last, ``diff`` against what ExaBGP
    holds, ``batch``); the ExaBGP commands
    the changes take one route per command (as before) and batched (what the speaker sends)."""
    pol = load_policy(policy_file)
    keys = [PathKey(s, r, p) for s in pol.services for r, reg in pol.regions.items() for p in reg.paths]

    def health(bad: Health | None) -> dict[PathKey, PathHealth]:
        return {k: PathHealth(bad if bad is not None and k.region == FAILED_REGION else Health.UP) for k in keys}

    with open(os.devnull, "w", encoding="utf-8") as devnull:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.PrintLoggerFactory(file=devnull),
        )
        sink = LogSink(structlog.get_logger("bgpctl"))
        up = plan(pol, health(None), None, 0.0)
        rows = []
        plans = {"up": up}
        for step, bad, base, at in (
            ("suspect", Health.SUSPECT, "up", 100.0),
            ("down after suspect", Health.DOWN, "suspect", 101.0),
            ("down in one evaluation", Health.DOWN, "up", 100.0),
        ):
            before = plans[base]
            start = time.process_time()
            after = plan(pol, health(bad), before, at)
            plan_cpu = time.process_time() - start
            plans.setdefault(step, after)
            start = time.process_time()
            sink.planned(after, at=at, new_notes=())
            log_cpu = time.process_time() - start
            start = time.process_time()
            commands.validate_rib(pol, after.desired, before.desired)  # as the speaker: what changed
            changes = commands.diff(pol, after.desired, before.desired)
            batched = commands.batch(pol, changes, before.desired)
            speaker_cpu = time.process_time() - start
            start = time.process_time()
            for c in changes:
                commands.render(pol, c, before.desired.get(c.peer, {}).get(c.key))
            single = time.process_time() - start
            rows.append(
                {
                    "step": step,
                    "changes": len(changes),
                    "announce": sum(c.kind is ChangeKind.ANNOUNCE for c in changes),
                    "one_per_route": len(changes),
                    "batched": len(batched),
                    "plan_cpu_s": round(plan_cpu, 2),
                    "log_cpu_s": round(log_cpu, 2),
                    "speaker_cpu_s": round(speaker_cpu, 2),
                    "render_one_per_route_cpu_s": round(single, 2),
                }
            )
    return rows


def loop_costs(policy_file: Path, passes: int = 200) -> dict[str, Any]:
    """What the daemon's loop does on a pass, at this size, in CPU ms (``time.process_time``): the speaker's
    ``announced()`` (rebuilt after a change, and read again), the path gauges (``MetricsSink.measured``) and
    the routing-state gauges (``export_routing_state`` over ``path_states``), with every route held and every
    session up."""
    pol = load_policy(policy_file)
    keys = [PathKey(s, r, p) for s in pol.services for r, reg in pol.regions.items() for p in reg.paths]
    held = plan(pol, {k: PathHealth(Health.UP) for k in keys}, None, 0.0).desired
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as d:
        sp = Speaker(pol, Path(d) / "run", structlog.wrap_logger(structlog.ReturnLogger()))
        sp._held = {peer: dict(routes) for peer, routes in held.items()}  # as after every ACK
        for peer in pol.peers:
            sp._on_state(str(peer.address), SessionState.UP, "")
            sp._families[peer.name] = frozenset(peer.families)

        def per_call_ms(fn: Callable[[], object], n: int) -> float:
            start = time.process_time()
            for _ in range(n):
                fn()
            return round(1000 * (time.process_time() - start) / n, 3)

        def rebuilt() -> object:
            sp._view_changed()
            return sp.announced()

        controller = Controller(pol)
        metrics = Metrics()
        sink = MetricsSink(metrics)
        stats = {  # every gauge has a value, as on a path that answers
            k: dataclasses.replace(v, samples=50, rtt_p50_ms=1.0, rtt_p95_ms=2.0, jitter_ms=0.1, mos=4.4)
            for k, v in controller.stats(0.0).items()
        }
        return {
            "routes": sum(len(r) for r in held.values()),
            "paths": len(keys),
            "announced_rebuilt_ms": per_call_ms(rebuilt, 5),
            "announced_read_ms": per_call_ms(sp.announced, passes),
            "path_gauges_ms": per_call_ms(lambda: sink.measured(stats), passes),
            "routing_gauges_ms": per_call_ms(
                lambda: export_routing_state(
                    metrics,
                    states=path_states(pol, controller.health, controller.overrides)[0],
                    peers=[p.name for p in pol.peers],
                    announced=sp.announced(),
                    policy_overrides=pol.overrides,
                    runtime=(),
                ),
                passes,
            ),
        }


class ScaleLab:
    def __init__(self, lab: runner.Lab, size: scale.Size, policy_file: Path) -> None:
        self.lab, self.size = lab, size
        self.edges = scale.edge_names(size)
        self.prefixes = scale.all_prefixes(size)
        self.away = frozenset(t.address for t in scale.region_tgws(FAILED_REGION))
        self.good = frozenset(t.address for t in scale.TGWS) - self.away
        self.log = DaemonLog(lab.node_dir("cr") / "daemon.log")
        pol = load_policy(policy_file)
        self.limit = pol.guards.max_route_changes_per_minute
        self.parsers: dict[str, MonitorParser] = {}
        self.offsets: dict[str, int] = {}

    def daemon_pid(self) -> int:
        pid = runner.service_pid(self.lab, "cr", "daemon")
        if pid is None:
            raise LabError("the daemon on cr is not running (see its daemon.log)")
        return pid

    def fib(self, edge: str) -> dict[str, tuple[str, ...]]:
        with IPRoute(netns=self.lab.netns(edge), flags=0) as ip:
            return nexthops_of(ip.route("dump", table=MAIN_TABLE), self.prefixes)

    def fib_problems(self, want: frozenset[str], away: frozenset[str]) -> list[str]:
        return [f"{e}: {p}" for e in self.edges for p in fib_problems(self.fib(e), want=want, away=away)]

    def wait_fib(self, what: str, want: frozenset[str], away: frozenset[str], budget: float) -> float:
        return eventually(
            what, budget=budget, probe=lambda: self.fib_problems(want, away), check=lambda p: p, interval_s=1.0
        ).elapsed_s

    def start_monitors(self) -> None:
        for e in self.edges:
            self.lab.spawn(e, ["ip", "-ts", "monitor", "route"], tag="route-monitor", log_name=MONITOR_LOG)
            self.parsers[e] = MonitorParser(frozenset(self.prefixes))
            self.offsets[e] = 0

    def read_monitors(self) -> None:
        for e in self.edges:
            with (self.lab.node_dir(e) / MONITOR_LOG).open("rb") as f:
                f.seek(self.offsets[e])
                data = f.read()
            self.offsets[e] += len(data)
            self.parsers[e].feed(data.decode("utf-8", "replace"))

    def quiet(self, seconds: float, budget: float) -> None:
        """Wait until the daemon has sent nothing (no route change, no sync) for ``seconds``."""

        def busy() -> list[str]:
            last = max([0.0, *self.log.times(events.ROUTE_CHANGE), *self.log.times(events.SPEAKER_SYNCED)])
            return [f"last route change or sync {time.time() - last:.1f} s ago"] if time.time() - last < seconds else []

        eventually("the speaker idle", budget=budget, probe=busy, check=lambda b: b, interval_s=1.0)

    def steady(self, window_s: float, load_s: float) -> Steady:
        pid = self.daemon_pid()
        kids = descendants(pid)
        t0, d0, x0 = time.monotonic(), cpu_seconds(pid), sum(cpu_seconds(k) for k in kids)
        time.sleep(window_s)  # a measuring window, not a wait for a state
        t1, d1, x1 = time.monotonic(), cpu_seconds(pid), sum(cpu_seconds(k) for k in kids)
        return Steady(
            cpu_daemon_pct=round(100 * (d1 - d0) / (t1 - t0), 2),
            cpu_exabgp_pct=round(100 * (x1 - x0) / (t1 - t0), 2),
            rss_daemon_mib=round(rss_bytes(pid) / 2**20, 1),
            rss_exabgp_mib=round(sum(rss_bytes(k) for k in kids) / 2**20, 1),
            window_s=round(t1 - t0, 1),
            loadavg=os.getloadavg(),
            load_s=round(load_s, 1),
        )

    def rate_room_wait(self, needed: int, deadline: float) -> float:
        """Wait until the last minute's route changes leave room for ``needed`` more; returns the wait."""
        start = time.monotonic()
        while True:
            now = time.time()
            recent = self.log.times(events.ROUTE_CHANGE, now - RATE_WINDOW_S)
            if len(recent) + needed <= self.limit or not recent:
                return time.monotonic() - start
            wait = recent[len(recent) + needed - self.limit - 1] + RATE_WINDOW_S - now + 0.5
            if time.monotonic() + wait > deadline:
                raise LabError(f"no room in the rate limit for {needed} changes before the time limit")
            time.sleep(max(0.5, min(wait, 5.0)))  # the rate window's own clock, not a state

    def failover(self) -> Run:
        self.read_monitors()
        self.log.read()
        t0 = time.time()
        for t in scale.region_tgws(FAILED_REGION):
            self.lab.link_set(t.name, "eth2", False)  # lab/drills/region-blackhole.yaml's fault, every path

        def progress() -> float | None:
            self.read_monitors()
            times = [moved(self.parsers[e].records, self.prefixes, t0, self.away) for e in self.edges]
            return None if any(t is None for t in times) else max(t for t in times if t is not None)

        eventually(
            "every prefix at every edge moved to usw2 (ip monitor)",
            budget=MOVE_BUDGET_S,
            probe=progress,
            check=lambda t: [] if t is not None else ["not yet"],
            interval_s=0.2,
        )
        time.sleep(1.0)  # a late change after the move would count: look once more, a second later
        self.read_monitors()
        per_edge = {e: moved(self.parsers[e].records, self.prefixes, t0, self.away) or 0.0 for e in self.edges}
        slowest = max(per_edge, key=lambda e: per_edge[e])
        problems = self.fib_problems(self.good, self.away)
        if problems:
            raise LabError(f"the FIB disagrees with the route monitor after the move: {problems[:3]}")
        log = self.log.read()
        after = [e for e in log if log_time(e) >= t0]

        def first_last(event: str, pred: Callable[[dict[str, Any]], bool] = lambda _e: True) -> list[float]:
            return [log_time(e) - t0 for e in after if e.get("event") == event and pred(e)]

        detected = first_last(
            events.PATH_HEALTH,
            lambda e: f"/{FAILED_REGION}/" in str(e.get("path")) and e.get("new") in ("suspect", "down"),
        )
        changes = first_last(events.ROUTE_CHANGE)
        synced = first_last(events.SPEAKER_SYNCED)
        return Run(
            last_fib_s=round(per_edge[slowest] - t0, 3),
            detected_s=round(min(detected), 3) if detected else None,
            first_change_s=round(min(changes), 3) if changes else None,
            last_change_s=round(max(changes), 3) if changes else None,
            last_synced_s=round(max(synced), 3) if synced else None,
            changes=len(changes),
            commands=sum(int(e.get("sent", 0)) for e in after if e.get("event") == events.SPEAKER_SYNCED),
            deferred=len(first_last(events.ROUTE_DEFERRED)),
            slowest_edge=slowest,
            loadavg=os.getloadavg(),
        )

    def fib_messages(self) -> int:
        self.read_monitors()
        return sum(len(self.parsers[e].records) for e in self.edges)

    def sample(self, minute: int, seconds: float, since: float, base_fib: int) -> Sample:
        """Measure over ``seconds`` (a measuring window, not a wait for a state) and count since ``since``."""
        pid = self.daemon_pid()
        kids = descendants(pid)
        t0, d0, x0 = time.monotonic(), cpu_seconds(pid), sum(cpu_seconds(k) for k in kids)
        time.sleep(seconds)
        t1, d1, x1 = time.monotonic(), cpu_seconds(pid), sum(cpu_seconds(k) for k in kids)
        self.log.read()
        return Sample(
            minute=minute,
            cpu_daemon_pct=round(100 * (d1 - d0) / (t1 - t0), 2),
            cpu_exabgp_pct=round(100 * (x1 - x0) / (t1 - t0), 2),
            rss_daemon_mib=round(rss_bytes(pid) / 2**20, 1),
            rss_exabgp_mib=round(sum(rss_bytes(k) for k in descendants(pid)) / 2**20, 1),
            route_changes=len(self.log.times(events.ROUTE_CHANGE, since)),
            transitions=len(self.log.times(events.PATH_HEALTH, since)),
            fib_messages=self.fib_messages() - base_fib,
            loadavg=os.getloadavg(),
        )

    def restore(self) -> float:
        for t in scale.region_tgws(FAILED_REGION):
            self.lab.link_set(t.name, "eth2", True)
        return self.wait_fib("use1 back at every edge", self.away, frozenset(), RECOVER_BUDGET_S)


def _header(size: scale.Size, **extra: Any) -> dict[str, Any]:
    """What every result line starts with: the size, the date, the machine's CPUs."""
    return {
        "size": asdict(size),
        "paths": size.paths,
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        **extra,
    }


def _keep_log(logs: Path | None, name: str) -> None:
    """Copy the lab's daemon log to ``logs`` (LAB-daemon.log) before the lab goes down."""
    if logs is not None and (lab_dir(name) / "cr" / "daemon.log").exists():
        logs.mkdir(parents=True, exist_ok=True)
        shutil.copy(lab_dir(name) / "cr" / "daemon.log", logs / f"{name}-daemon.log")


def bench(
    size: scale.Size,
    *,
    runs: int,
    steady_s: float,
    max_s: float,
    name: str,
    group_updates: bool | None,
    logs: Path | None = None,
) -> dict[str, Any]:
    started = time.monotonic()
    deadline = started + max_s
    result = _header(size, group_updates=group_updates, runs=[])
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as d:
        topo = scale.write(Path(d), scale.render(size, name=name, group_updates=group_updates))
        needed = failover_changes(Path(d) / "policy.yaml")
        result["failover_changes_planned"] = needed
        try:
            lab = runner.up(topo, name=name, mode="controller", budget=UP_BUDGET_S)
            sl = ScaleLab(lab, size, Path(d) / "policy.yaml")
            load_s = sl.wait_fib("every prefix via use1 at every edge", sl.away, frozenset(), STEADY_BUDGET_S)
            sl.start_monitors()
            sl.quiet(5.0, STEADY_BUDGET_S)
            result["steady"] = asdict(sl.steady(steady_s, load_s))
            print(f"steady: {result['steady']}", file=sys.stderr, flush=True)
            for i in range(runs):
                if i and time.monotonic() + 90.0 > deadline:
                    print(f"run {i + 1}: not started (--max-s {max_s:g})", file=sys.stderr)
                    break
                result.setdefault("rate_wait_s", []).append(round(sl.rate_room_wait(needed, deadline - 60.0), 1))
                run = sl.failover()
                result["runs"].append(asdict(run))
                print(f"run {i + 1}: {run}", file=sys.stderr, flush=True)
                if i + 1 < runs and time.monotonic() + 90.0 < deadline:
                    result.setdefault("recover_s", []).append(round(sl.restore(), 1))
            result["exabgp_ack_timeouts"] = len(sl.log.times(events.EXABGP_ACK_TIMEOUT))
            result["exabgp_starts"] = len(sl.log.times(events.EXABGP_STARTED))
            result["rss_after_mib"] = {
                "daemon": round(rss_bytes(sl.daemon_pid()) / 2**20, 1),
                "exabgp": round(sum(rss_bytes(k) for k in descendants(sl.daemon_pid())) / 2**20, 1),
            }
        except (LabError, BudgetExceeded, OSError) as e:
            result["error"] = f"{type(e).__name__}: {e}"
        finally:
            _keep_log(logs, name)
            runner.down(name)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    return result


def soak(size: scale.Size, *, minutes: int, sample_s: float, name: str, logs: Path | None = None) -> dict[str, Any]:
    """Steady state for ``minutes``, no fault: one :class:`Sample` a minute (printed as it comes)."""
    result = _header(size, minutes=minutes, samples=[])
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as d:
        # the reflectors' own lifetime bound (900 s for `run`) must outlast the soak, or every path goes down
        lifetime = int(minutes * sample_s + UP_BUDGET_S + STEADY_BUDGET_S + 600)
        topo = scale.write(Path(d), scale.render(size, name=name, reflector_seconds=lifetime))
        try:
            lab = runner.up(topo, name=name, mode="controller", budget=UP_BUDGET_S)
            sl = ScaleLab(lab, size, Path(d) / "policy.yaml")
            result["load_s"] = round(sl.wait_fib("every prefix via use1", sl.away, frozenset(), STEADY_BUDGET_S), 1)
            sl.start_monitors()
            sl.quiet(5.0, STEADY_BUDGET_S)
            since, base_fib = time.time(), sl.fib_messages()
            for minute in range(1, minutes + 1):
                sample = sl.sample(minute, sample_s, since, base_fib)
                result["samples"].append(asdict(sample))
                print(f"minute {minute}: {sample}", file=sys.stderr, flush=True)
            last = result["samples"][-1]
            result["route_changes"], result["transitions"] = last["route_changes"], last["transitions"]
            result["fib_messages"] = last["fib_messages"]
            for who in ("daemon", "exabgp"):
                rss = [x[f"rss_{who}_mib"] for x in result["samples"]]
                result[f"rss_{who}_growth_pct"] = growth_pct(rss)
                result[f"rss_{who}_mib_first_last_max"] = (rss[0], rss[-1], max(rss))
                result[f"cpu_{who}_pct_median"] = statistics.median(x[f"cpu_{who}_pct"] for x in result["samples"])
            result["fib_problems_at_end"] = sl.fib_problems(sl.away, frozenset())
        except (LabError, BudgetExceeded, OSError) as e:
            result["error"] = f"{type(e).__name__}: {e}"
        finally:
            _keep_log(logs, name)
            runner.down(name)
    return result


def summary(results: Sequence[Mapping[str, Any]]) -> str:
    """Markdown rows: size, runs, last-FIB median/max, steady CPU and RSS."""
    rows = ["| size | runs | fault -> last FIB change, s (median / max) | detected, s | last change logged, s | "
            "route changes / ExaBGP commands | daemon CPU % | ExaBGP CPU % | daemon RSS MiB | ExaBGP RSS MiB | "
            "load avg |", "| --- " * 11 + "|"]  # fmt: skip
    for r in results:
        runs = r.get("runs", [])
        fib = [x["last_fib_s"] for x in runs]
        det = [x["detected_s"] for x in runs if x["detected_s"] is not None]
        last = [x["last_change_s"] for x in runs if x["last_change_s"] is not None]
        changes, cmds = [x["changes"] for x in runs], [x.get("commands", 0) for x in runs]
        st = r.get("steady", {})
        label = scale.Size(**r["size"]).label()
        rows.append(
            f"| {label} | {len(runs)} | "
            + (f"{statistics.median(fib):.2f} / {max(fib):.2f}" if fib else "-")
            + (f" | {statistics.median(det):.2f} |" if det else " | - |")
            + (f" {statistics.median(last):.2f} |" if last else " - |")
            + (f" {statistics.median(changes):g} / {statistics.median(cmds):g} |" if runs else " - |")
            + f" {st.get('cpu_daemon_pct', '-')} | {st.get('cpu_exabgp_pct', '-')} | {st.get('rss_daemon_mib', '-')} |"
            + f" {st.get('rss_exabgp_mib', '-')} |"
            + f" {st.get('loadavg', ['-'])[0]} |"
        )
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------ command line


def _size(args: argparse.Namespace) -> scale.Size:
    base = SIZES[args.size]
    return scale.Size(
        prefixes=args.prefixes if args.prefixes is not None else base.prefixes,
        edges=args.edges if args.edges is not None else base.edges,
        services=args.services if args.services is not None else base.services,
        interval_ms=args.interval_ms,
    ).check()


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m bench.bench_scale", description=__doc__.split("\n")[0] if __doc__ else None
    )
    sub = ap.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--size", choices=sorted(SIZES), default="full", help="small, medium or full (default)")
    common.add_argument("--prefixes", type=int, help="override the size's prefix count")
    common.add_argument("--edges", type=int, help="override the size's edge peer count")
    common.add_argument("--services", type=int, help="override the size's service count (4 paths each)")
    common.add_argument(
        "--interval-ms", type=float, help="every service probes this often (default: the reference mix)"
    )
    common.add_argument("--group-updates", action=argparse.BooleanOptionalAction, default=None,
                        help="ExaBGP's group-updates (default: the policy's)")  # fmt: skip
    sub.add_parser("commands", parents=[common], help="ExaBGP commands of a region failure, without a lab")
    sub.add_parser("loop", parents=[common], help="what a pass of the daemon's loop costs at this size, without a lab")
    gen = sub.add_parser("generate", parents=[common], help="write the lab's files into DIR")
    gen.add_argument("dir", type=Path)
    run = sub.add_parser("run", parents=[common], help="bring the lab up, measure, take it down")
    run.add_argument("--runs", type=int, default=1, help="region failures (default 1)")
    run.add_argument("--steady-s", type=float, default=20.0, help="CPU window in steady state (default 20)")
    run.add_argument("--max-s", type=float, default=290.0, help="bound of the whole invocation (default 290)")
    run.add_argument("--lab", default=f"{LAB_PREFIX}{os.getpid()}", help="lab name (default sc<pid>)")
    run.add_argument("--json", type=Path, help="append the result as one JSON line to this file")
    run.add_argument("--logs", type=Path, help="copy the daemon's log here (LAB-daemon.log) before the lab goes down")
    sub.add_parser("summary", help="markdown table of JSON lines from run --json").add_argument("file", type=Path)
    sk = sub.add_parser("soak", parents=[common], help="steady state, no fault: RSS, CPU and changes each minute")
    sk.add_argument("--minutes", type=int, default=60, help="how long (default 60)")
    sk.add_argument("--sample-s", type=float, default=60.0, help="one sample per this many seconds (default 60)")
    sk.add_argument("--lab", default=f"{LAB_PREFIX}{os.getpid()}", help="lab name (default sc<pid>)")
    sk.add_argument("--json", type=Path, help="append the result as one JSON line to this file")
    sk.add_argument("--logs", type=Path, help="copy the daemon's log here (LAB-daemon.log) before the lab goes down")
    return ap


def _terminated(main_pid: int) -> Callable[[int, object], None]:
    """SIGTERM (``timeout``) unwinds the bench, so that its ``finally`` takes the lab down. Only in this
    process: pyroute2 forks children (namespace sockets) and stops them with SIGTERM; a child that ran the
    bench's ``finally`` took the lab's first namespaces down while it was being created."""

    def handler(_sig: int, _frame: object) -> None:
        if os.getpid() != main_pid:
            os._exit(143)
        sys.exit(143)

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.command == "summary":
        try:
            lines = args.file.read_text(encoding="utf-8").splitlines()
            print(summary([json.loads(line) for line in lines if line.strip()]))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
            ap.error(f"summary {args.file}: not a file of `run --json` results ({e})")
        return 0
    try:
        size = _size(args)
    except LabError as e:
        ap.error(str(e))
    if args.command == "commands":
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as d:
            scale.write(Path(d), scale.render(size, group_updates=args.group_updates))
            for row in failover_commands(Path(d) / "policy.yaml"):
                print(json.dumps(row))
        return 0
    if args.command == "loop":
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as d:
            scale.write(Path(d), scale.render(size, group_updates=args.group_updates))
            print(json.dumps(loop_costs(Path(d) / "policy.yaml")))
        return 0
    if args.command == "generate":
        if args.dir.exists() and any(args.dir.iterdir()):
            ap.error(f"{args.dir} is not empty: give a new or empty directory")
        topo = scale.write(args.dir, scale.render(size, group_updates=args.group_updates))
        how = f"containerlab deploy -t {topo}, or bgpctl lab up --mode controller --topology {topo}"
        print(f"{topo} ({size.label()}): {how}")
        return 0
    bounds = (
        (("--minutes", args.minutes, 1), ("--sample-s", args.sample_s, 5))
        if args.command == "soak"
        else (("--runs", args.runs, 1), ("--steady-s", args.steady_s, 1), ("--max-s", args.max_s, 60))
    )
    for flag, value, low in bounds:
        if value < low:
            ap.error(f"{flag} {value:g}: give at least {low}")
    if os.geteuid() != 0:
        ap.error(f"{args.command} needs root (network namespaces, FRR): run it with sudo, under the lab lock")
    signal.signal(signal.SIGTERM, _terminated(os.getpid()))
    if args.command == "soak":
        done = soak(size, minutes=args.minutes, sample_s=args.sample_s, name=args.lab, logs=args.logs)
        line = json.dumps(done)
        print(line)
        if args.json is not None:
            with args.json.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
        return 1 if "error" in done else 0
    result = bench(
        size,
        runs=args.runs,
        steady_s=args.steady_s,
        max_s=args.max_s,
        name=args.lab,
        group_updates=args.group_updates,
        logs=args.logs,
    )
    line = json.dumps(result)
    print(line)
    if args.json is not None:
        with args.json.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
    print(summary([result]), file=sys.stderr)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
