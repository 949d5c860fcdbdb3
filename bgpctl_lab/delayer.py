"""The delayer: one bounded process per (namespace, interface) that owns an impairment.

Run inside the target namespace (``ip netns exec NS`` or ``Lab.spawn``)::

    python -m bgpctl_lab.delayer --ifname eth1 --state-dir DIR --seconds 600

``DIR/params.json`` (written by :mod:`bgpctl_lab.impair`) says what to apply; the delayer answers
in ``DIR/status.json``. SIGHUP re-reads the params (set/change), SIGTERM/SIGINT or the end of the
lifetime remove every rule it made and end it. It refuses to run in the host's root namespace.

nft backend: packets leaving the interface are queued (NFQUEUE, metadata only: the payload never
leaves the kernel) and each verdict is issued after a delay drawn from N(delay, jitter) (clamped
at 0), or at once for the ``reorder_pct`` share. Verdicts are released in due-time order, not in
arrival order, so jitter reorders packets as netem does. Timing: ``select`` with a microsecond
timeout and a 1 µs timer slack; measured accuracy is in ``bench/bench_delayer.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import heapq
import json
import math
import os
import random
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from netfilterqueue import COPY_META, NetfilterQueue
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from bgpctl.errors import LabError
from bgpctl_lab import nft
from bgpctl_lab.impair import Backend, Impairment

_PR_SET_TIMERSLACK = 29
_RT_PRIORITY = 10
_QUEUE_MAXLEN = 8192
_NETEM_ENOENT = 2


class _Verdict(Protocol):
    def accept(self) -> None: ...


def draw_delay_s(rng: random.Random, imp: Impairment) -> float:
    """Seconds to hold one packet: 0 for the reordered share, else N(delay, jitter) clamped at 0."""
    if imp.reorder_pct > 0 and rng.random() * 100.0 < imp.reorder_pct:
        return 0.0
    if imp.jitter_ms > 0:
        return max(0.0, rng.gauss(imp.delay_ms, imp.jitter_ms)) / 1000.0
    return imp.delay_ms / 1000.0


@dataclass
class Bursts:
    """The queueing-delay bursts of an impairment (see :class:`Impairment`): extra seconds at a time."""

    rng: random.Random
    peak_ms: float
    every_s: float
    start: float = -math.inf  # the current (or last) burst: start and peak, monotonic seconds
    peak_s: float = 0.0

    def extra_s(self, now: float) -> float:
        if self.peak_ms <= 0:
            return 0.0
        if now >= self.start + 2 * self.peak_s:  # the burst is over: schedule the next one
            if self.start == -math.inf:
                self.start = now
            while now >= self.start + 2 * self.peak_s:
                self.start += self.every_s * self.rng.uniform(0.5, 1.5)
                self.peak_s = self.rng.uniform(self.peak_ms / 2, self.peak_ms) / 1000.0
        x = now - self.start
        return 0.0 if x < 0 else max(0.0, self.peak_s - abs(x - self.peak_s))


@dataclass
class Held:
    """Packets waiting for their verdict, ordered by due time (monotonic seconds)."""

    heap: list[tuple[float, int, _Verdict]] = field(default_factory=list)
    seq: int = 0

    def push(self, due: float, pkt: _Verdict) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, pkt))

    def next_due(self) -> float | None:
        return self.heap[0][0] if self.heap else None

    def pop_due(self, now: float) -> list[_Verdict]:
        out = []
        while self.heap and self.heap[0][0] <= now:
            out.append(heapq.heappop(self.heap)[2])
        return out

    def pop_all(self) -> list[_Verdict]:
        out = [p for _, _, p in sorted(self.heap)]
        self.heap.clear()
        return out


def in_named_netns() -> bool:
    """True if this process sits in a namespace made by ``ip netns add`` (never the host's own)."""
    me = os.stat("/proc/self/ns/net")
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return False
    for name in names:
        try:
            st = os.stat(f"/run/netns/{name}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
            return True
    return False


def _set_timer_slack_ns(ns: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_TIMERSLACK, ctypes.c_ulong(ns), 0, 0, 0)


def _realtime_priority() -> None:
    """Best effort: SCHED_FIFO so a busy lab (FRR, ExaBGP, probes) does not delay the releases. The
    delayer sleeps between packets; the kernel's RT throttling still bounds a runaway."""
    with contextlib.suppress(OSError):  # nft/iptables children start with the normal policy again
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(_RT_PRIORITY))


class Delayer:
    def __init__(self, ifname: str, state_dir: Path, seconds: float) -> None:
        self.ifname = nft.check_ifname(ifname)
        self.dir = state_dir
        self.deadline = time.monotonic() + seconds
        self.imp = Impairment()
        self.rng = random.Random()
        self.bursts = Bursts(self.rng, 0.0, 5.0)
        self.backend: Backend | None = None
        self.generation = 0
        self.queue_num = nft.queue_num_for(nft.ifindex(ifname))
        self.queue_installed = False
        self.held = Held()
        self.stop = False
        self.reload = False
        self.nfq: Any = None
        self.released = 0
        self.queued = 0

    # -- status ------------------------------------------------------------------------------
    def write_status(self, state: str, error: str = "") -> None:
        data = {
            "pid": os.getpid(),
            "generation": self.generation,
            "state": state,
            "error": error,
            "backend": self.backend,
            "queue_num": self.queue_num if self.backend == "nft" else None,
            "impairment": self.imp.to_json(),
            "expires_at": time.time() + self.deadline - time.monotonic(),
            "queued": self.queued,
            "released": self.released,
        }
        tmp = self.dir / "status.tmp"
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, self.dir / "status.json")

    def read_params(self) -> tuple[int, Impairment, str, float]:
        try:
            data = json.loads((self.dir / "params.json").read_text())
            imp = Impairment.from_json(data["impairment"])
            return int(data["generation"]), imp, str(data.get("backend", "auto")), float(data["expires_at"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise LabError(
                f"cannot read {self.dir / 'params.json'}: {e}; write it with bgpctl_lab.impair.set_impairment"
            ) from e

    # -- applying ------------------------------------------------------------------------------
    def _netem(self, imp: Impairment | None) -> bool:
        """Replace (or with None delete) the root netem qdisc; False if the kernel has no netem."""
        with IPRoute() as ipr:
            (idx,) = ipr.link_lookup(ifname=self.ifname)
            try:
                if imp is None:
                    ipr.tc("del", index=idx, root=True)
                else:
                    # netem draws jitter uniformly in +-j without a distribution table (pyroute2 loads
                    # none): j = sqrt(3) * stddev keeps the standard deviation the caller asked for
                    ipr.tc(
                        "replace",
                        "netem",
                        index=idx,
                        root=True,
                        delay=round(imp.delay_ms * 1000),
                        jitter=round(imp.jitter_ms * 1000 * math.sqrt(3)),
                        loss=imp.loss_pct,
                        duplicate=imp.duplicate_pct,
                        prob_reorder=imp.reorder_pct,
                    )
            except NetlinkError as e:
                if e.code == _NETEM_ENOENT and imp is not None:
                    return False
                if imp is not None:
                    raise LabError(f"netem on {self.ifname} refused: {e}") from e
        return True

    def apply(self, imp: Impairment, choice: str) -> None:
        if imp.burst_ms > 0 and (choice == "netem" or self.backend == "netem"):
            raise LabError("netem has no queueing-delay bursts; use backend 'nft' (or 'auto') for burst_ms")
        if imp.udp_dport is not None:
            if choice == "netem" or self.backend == "netem":
                raise LabError("udp_dport needs the nft backend: netem impairs every packet of the interface")
            choice = "nft"
        if self.backend is None:
            if choice in ("auto", "netem") and imp.burst_ms <= 0 and self._netem(imp):
                self.backend = "netem"
            elif choice == "netem":
                raise LabError("this kernel has no netem (CONFIG_NET_SCH_NETEM); use backend 'nft' or 'auto'")
            else:
                self.backend = "nft"
        elif self.backend == "netem":
            self._netem(imp)
        if self.backend == "nft":
            self._apply_nft(imp)
        self.imp = imp
        if imp.seed is not None:
            self.rng.seed(imp.seed)
        if (imp.burst_ms, imp.burst_every_s) != (self.bursts.peak_ms, self.bursts.every_s):
            self.bursts = Bursts(self.rng, imp.burst_ms, imp.burst_every_s)

    def _apply_nft(self, imp: Impairment) -> None:
        if imp.loss_pct > 0:
            nft.ensure_sink()
        nft.apply_nft(nft.render_impair(self.ifname, imp.loss_pct, imp.duplicate_pct, imp.udp_dport))
        if imp.needs_queue and not self.queue_installed:
            self._bind()
            nft.install_queue(self.ifname, self.queue_num, udp_dport=imp.udp_dport)
            self.queue_installed = True
        elif imp.needs_queue and imp.udp_dport != self.imp.udp_dport:
            nft.install_queue(self.ifname, self.queue_num, udp_dport=imp.udp_dport)  # same queue, new match
        elif not imp.needs_queue and self.queue_installed:
            nft.remove_queue(self.ifname)
            self.queue_installed = False
            self._drain_queue()
            self._release(self.held.pop_all())

    def remove_all(self) -> None:
        """Undo everything; packets still held go out at once (accepted, not dropped)."""
        errors: list[str] = []
        if self.backend == "netem":
            try:
                self._netem(None)
            except Exception as e:  # keep removing the rest
                errors.append(str(e))
        for step in (
            lambda: nft.remove_queue(self.ifname),
            self._drain_queue,
            lambda: self._release(self.held.pop_all()),
            self._unbind,
            lambda: nft.delete_table(nft.impair_table(self.ifname)),
            nft.remove_sink_if_unused,
        ):
            try:
                step()
            except Exception as e:  # keep removing the rest
                errors.append(str(e))
        if errors:
            raise LabError("; ".join(errors))

    # -- the queue -----------------------------------------------------------------------------
    def _bind(self) -> None:
        if self.nfq is not None:
            return
        self.nfq = NetfilterQueue()
        self.nfq.bind(self.queue_num, self._on_packet, max_len=_QUEUE_MAXLEN, mode=COPY_META, range=0)

    def _unbind(self) -> None:
        if self.nfq is not None:
            self.nfq.unbind()
            self.nfq = None

    def _on_packet(self, pkt: _Verdict) -> None:
        self.queued += 1
        d = draw_delay_s(self.rng, self.imp) + self.bursts.extra_s(time.monotonic())
        if d <= 0:
            pkt.accept()
            self.released += 1
        else:
            self.held.push(time.monotonic() + d, pkt)

    def _drain_queue(self) -> None:
        if self.nfq is not None:
            self.nfq.run(block=False)

    def _release(self, pkts: list[_Verdict]) -> None:
        for p in pkts:
            p.accept()
        self.released += len(pkts)

    def _forget(self) -> None:
        """After a clean exit nothing is in force: remove the state files (a failure keeps them)."""
        for name in ("status.json", "params.json"):
            (self.dir / name).unlink(missing_ok=True)
        for d in (self.dir, self.dir.parent):
            try:
                d.rmdir()
            except OSError:
                break

    # -- main loop -----------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload = True
        else:
            self.stop = True

    def _load(self) -> None:
        generation, imp, choice, expires_at = self.read_params()
        self.deadline = time.monotonic() + max(0.0, expires_at - time.time())
        self.generation = generation
        self.apply(imp, choice)
        self.write_status("running")

    def _loop(self, rfd: int) -> str:
        """Release due packets, take queued ones, reload on SIGHUP; "expired" at the deadline, "exited" on a stop."""
        while not self.stop:
            now = time.monotonic()
            self._release(self.held.pop_due(now))
            if now >= self.deadline:
                return "expired"
            if self.reload:
                self.reload = False
                self._load()
                continue
            nxt = self.held.next_due()
            timeout = self.deadline - now if nxt is None else min(nxt, self.deadline) - now
            fds = [rfd] + ([self.nfq.get_fd()] if self.nfq is not None else [])
            ready, _, _ = select.select(fds, [], [], max(0.0, timeout))
            if rfd in ready:
                _drain_wakeup(rfd)
            if self.nfq is not None and self.nfq.get_fd() in ready:
                self._drain_queue()
        return "exited"

    def run(self) -> int:
        _set_timer_slack_ns(1000)
        _realtime_priority()
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
        for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(s, self._on_signal)
        state, error = "exited", ""
        try:
            self._load()
            state = self._loop(rfd)
        except Exception as e:
            state, error = "failed", str(e)
            print(f"delayer {self.ifname}: {e}", file=sys.stderr)
        finally:
            try:
                self.remove_all()
            except Exception as e:
                state, error = "failed", (error + "; " if error else "") + f"cleanup: {e}"
                print(f"delayer {self.ifname}: cleanup: {e}", file=sys.stderr)
            self.write_status(state, error)
            if state in ("exited", "expired"):
                self._forget()
        return 0 if state in ("exited", "expired") else 1


def _drain_wakeup(rfd: int) -> None:
    """Empty the signal wake-up pipe (the signal itself is handled by its handler)."""
    while True:
        try:
            if not os.read(rfd, 512):
                return
        except BlockingIOError:
            return


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bgpctl_lab.delayer", description=__doc__.splitlines()[0])
    ap.add_argument("--ifname", required=True)
    ap.add_argument("--state-dir", required=True, type=Path)
    ap.add_argument("--seconds", required=True, type=float, help="lifetime; the delayer always ends by itself")
    args = ap.parse_args(argv)
    try:
        if not in_named_netns():
            raise LabError(
                "the delayer runs only inside a named network namespace (never the host's): "
                "start it with `ip netns exec NS` or Lab.spawn"
            )
        d = Delayer(args.ifname, args.state_dir, args.seconds)
    except LabError as e:
        print(f"delayer: {e}", file=sys.stderr)
        status = {"pid": os.getpid(), "state": "failed", "error": str(e), "generation": None}
        (args.state_dir / "status.json").write_text(json.dumps(status))
        return 1
    return d.run()


if __name__ == "__main__":
    sys.exit(main())
