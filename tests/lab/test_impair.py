"""Impairments measured with real packets between two namespaces joined by one veth
(tests/topologies/impair-pair.clab.yml, brought up by the lab runner through the ``topology_lab`` fixture).
A bounded UDP stream goes from A to B; B's kernel stamps each arrival (SO_TIMESTAMPNS) and the one-way
delay is that stamp minus the send time carried in the payload (one host, one clock). The impairment is
on A's side of the veth, on packets leaving it.
"""

from __future__ import annotations

import math
import os
import re
import signal
import statistics
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bgpctl.errors import LabError
from bgpctl_lab import impair, nft
from bgpctl_lab.binomial import binomial_interval
from bgpctl_lab.impair import Applied, Impairment
from bgpctl_lab.poll import eventually
from bgpctl_lab.pytest_plugin import TopologyLab
from tests.lab.pairs import (
    ADDR6_B,
    ADDR_B,
    TOPOLOGY,
    Pair,
    pair_of,
    udp_stream,
)

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")]


@pytest.fixture
def pair(topology_lab: TopologyLab) -> Iterator[Pair]:
    with pair_of(topology_lab(TOPOLOGY)) as p:
        yield p


def ruleset(ns: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "ruleset"], capture_output=True, text=True, check=True
    ).stdout


def delayer_gone(a: Applied, ifname: str, budget: str) -> None:
    eventually(
        "delayer exit",
        budget=budget,
        probe=lambda: impair.delayer_alive(a.delayer_pid, ifname),
        check=lambda alive: [f"delayer {a.delayer_pid} still alive"] if alive else [],
        interval_s=0.02,
    )


def nothing_left(p: Pair) -> bool:
    rs = ruleset(p.a)
    links = subprocess.run(["ip", "-n", p.a, "-o", "link"], capture_output=True, text=True, check=True).stdout
    return ("bgpctl" not in rs) and (nft.SINK_IFNAME not in links)


def applied(p: Pair, imp: Impairment, record: Callable[[str, object], None], seconds: float = 60) -> Applied:
    a = impair.set_impairment(p.a, p.ifname, imp, seconds=seconds)
    record("backend", a.backend)
    print(f"impairment backend: {a.backend}")
    return a


# ------------------------------------------------------------------------------------------------ delay


def test_delay_50ms_is_50ms_plus_minus_1ms(pair: Pair, record_property: Callable[[str, object], None]) -> None:
    base = udp_stream(pair, 200, 200)
    assert base.lost == 0
    a = applied(pair, Impairment(delay_ms=50), record_property)
    assert a.impairment.delay_ms == 50
    assert impair.current(pair.a, pair.ifname) == a
    s = udp_stream(pair, 300, 100)
    assert s.lost == 0 and s.duplicates == 0
    mean_inc = statistics.fmean(s.delays) - statistics.fmean(base.delays)
    median_inc = statistics.median(s.delays) - statistics.median(base.delays)
    record_property("delay_mean_increase_ms", round(mean_inc, 3))
    record_property("delay_median_increase_ms", round(median_inc, 3))
    assert 49.0 <= mean_inc <= 51.0, mean_inc
    assert 49.0 <= median_inc <= 51.0, median_inc
    # nearly every packet, not only on average (the tail is the VM's scheduler: see bench_delayer.py)
    q = statistics.quantiles(s.delays, n=20)
    assert min(s.delays) > 49.5 and q[-1] < 51.5, (min(s.delays), q[-1])


def test_jitter_10ms_gives_stddev_within_20_percent(pair: Pair, record_property: Callable[[str, object], None]) -> None:
    applied(pair, Impairment(delay_ms=50, jitter_ms=10, seed=1), record_property)
    s = udp_stream(pair, 800, 200)
    sd = statistics.stdev(s.delays)
    record_property("jitter_stddev_ms", round(sd, 3))
    assert s.lost == 0
    assert 8.0 <= sd <= 12.0, sd
    assert 48.5 <= statistics.fmean(s.delays) <= 51.5  # 10/sqrt(800) = 0.35 ms standard error
    # 5 ms between packets and 10 ms of jitter: later packets often go first
    assert s.out_of_order > 50, s.out_of_order


# ------------------------------------------------------------------------------------------------ loss


@pytest.mark.parametrize("loss", [5, 20])
def test_loss_within_binomial_bound(pair: Pair, loss: int, record_property: Callable[[str, object], None]) -> None:
    applied(pair, Impairment(loss_pct=loss), record_property)
    n = 3000
    s = udp_stream(pair, n, 1000)
    lo, hi = binomial_interval(n, loss / 100)
    record_property("lost", s.lost)
    assert lo <= s.lost <= hi, (s.lost, lo, hi)
    assert s.duplicates == 0
    assert statistics.median(s.delays) < 1.0  # loss alone adds no delay


def ping(p: Pair, dst: str, count: int, interval: float) -> str:
    """A bounded ping from A (count packets, at most 2 s wait for the last)."""
    return subprocess.run(
        ["ip", "netns", "exec", p.a, "ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", "2", dst],
        capture_output=True,
        text=True,
        timeout=count * interval + 10,
        check=False,
    ).stdout


def test_loss_is_silent_to_the_sender(pair: Pair, record_property: Callable[[str, object], None]) -> None:
    """ping asks for send errors (IP_RECVERR): a lost packet must look lost on the wire, not refused
    locally (a plain drop on the egress hook makes ping see ENOBUFS and send again: 0 % loss shown)."""
    applied(pair, Impairment(loss_pct=20), record_property)
    n = 500
    out = ping(pair, ADDR_B, n, 0.005)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    assert int(m.group(1)) == n
    lo, hi = binomial_interval(n, 0.20)
    assert lo <= n - int(m.group(2)) <= hi, out


def test_ipv6_is_delayed_too(pair: Pair, record_property: Callable[[str, object], None]) -> None:
    applied(pair, Impairment(delay_ms=20), record_property)
    out = ping(pair, ADDR6_B, 20, 0.05)
    m = re.search(r"rtt min/avg/max/mdev = ([\d.]+)/([\d.]+)/", out)
    assert m, out
    assert float(m.group(1)) >= 20.0 and float(m.group(2)) <= 21.0, out


# ------------------------------------------------------------------------------------------------ duplication


def test_duplication_shows_duplicates(pair: Pair, record_property: Callable[[str, object], None]) -> None:
    applied(pair, Impairment(duplicate_pct=30), record_property)
    n = 1000
    s = udp_stream(pair, n, 500)
    lo, hi = binomial_interval(n, 0.30)
    record_property("duplicates", s.duplicates)
    assert s.lost == 0
    assert lo <= s.duplicates <= hi, (s.duplicates, lo, hi)
    assert all(0 <= seq < n for seq, _ in s.arrivals)


# ------------------------------------------------------------------------------------------------ reordering


def test_reorder_sends_a_share_ahead(pair: Pair, record_property: Callable[[str, object], None]) -> None:
    applied(pair, Impairment(delay_ms=20, reorder_pct=25, seed=7), record_property)
    n = 600
    s = udp_stream(pair, n, 200)
    assert s.lost == 0
    fast = sum(1 for d in s.delays if d < 5.0)
    lo, hi = binomial_interval(n, 0.25)
    record_property("sent_ahead", fast)
    assert lo <= fast <= hi, (fast, lo, hi)
    slow = [d for d in s.delays if d >= 5.0]
    assert min(slow) >= 19.5 and 19.0 <= statistics.median(slow) <= 21.0
    assert s.out_of_order >= fast // 2, (s.out_of_order, fast)


# ------------------------------------------------------------------------------------------------ set, change, clear


def test_change_is_live_and_clear_restores_baseline(pair: Pair, record_property: Callable[[str, object], None]) -> None:
    a = applied(pair, Impairment(delay_ms=50, loss_pct=20), record_property)
    assert statistics.median(udp_stream(pair, 100, 100).delays) > 49.0

    b = impair.set_impairment(pair.a, pair.ifname, Impairment(delay_ms=20), seconds=60)
    assert b.delayer_pid == a.delayer_pid and b.generation == a.generation + 1  # same process, changed live
    s = udp_stream(pair, 300, 100)
    assert s.lost == 0
    assert 19.0 <= statistics.median(s.delays) <= 21.0

    c = impair.set_impairment(pair.a, pair.ifname, Impairment(loss_pct=20), seconds=60)
    assert c.delayer_pid == a.delayer_pid
    assert not nft.queue_present(pair.ifname, pair.a)  # no delay: nothing goes through userspace
    assert statistics.median(udp_stream(pair, 100, 100).delays) < 1.0

    assert impair.clear_impairment(pair.a, pair.ifname) is True
    assert impair.current(pair.a, pair.ifname) is None
    assert not impair.delayer_alive(a.delayer_pid, pair.ifname)
    assert nothing_left(pair)
    s = udp_stream(pair, 500, 500)
    assert s.lost == 0 and s.duplicates == 0
    assert statistics.median(s.delays) < 1.0
    assert impair.clear_impairment(pair.a, pair.ifname) is False  # idempotent


# ------------------------------------------------------------------------------------------------ lifetime, signals


def test_lifetime_ends_the_impairment(pair: Pair, record_property: Callable[[str, object], None]) -> None:
    a = applied(pair, Impairment(delay_ms=30, loss_pct=10), record_property, seconds=1.0)
    delayer_gone(a, pair.ifname, "delayer_run_out")
    assert nothing_left(pair)
    assert impair.current(pair.a, pair.ifname) is None
    s = udp_stream(pair, 200, 200)
    assert s.lost == 0 and statistics.median(s.delays) < 1.0


def test_sigterm_removes_the_rules(pair: Pair, record_property: Callable[[str, object], None]) -> None:
    a = applied(pair, Impairment(delay_ms=30, duplicate_pct=10), record_property)
    assert "bgpctl" in ruleset(pair.a)
    os.kill(a.delayer_pid, signal.SIGTERM)
    delayer_gone(a, pair.ifname, "delayer_settle")
    assert nothing_left(pair)


def test_hard_death_fails_open_and_clear_removes_leftovers(
    pair: Pair, record_property: Callable[[str, object], None]
) -> None:
    a = applied(pair, Impairment(delay_ms=200), record_property)
    if a.backend != "nft":
        pytest.skip("fail-open concerns the NFQUEUE backend only")
    os.kill(a.delayer_pid, signal.SIGKILL)
    delayer_gone(a, pair.ifname, "delayer_settle")
    assert nft.queue_present(pair.ifname, pair.a)  # the rule is still there ...
    s = udp_stream(pair, 200, 200)
    assert s.lost == 0 and statistics.median(s.delays) < 1.0  # ... but with no listener packets bypass it
    assert impair.current(pair.a, pair.ifname) is None
    assert impair.clear_impairment(pair.a, pair.ifname) is True
    assert nothing_left(pair)


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"loss_pct": 101}, "loss_pct=101"),
        ({"delay_ms": -1}, "delay_ms=-1"),
        ({"reorder_pct": 10}, "reorder_pct needs delay_ms > 0"),
        ({"jitter_ms": math.nan}, "jitter_ms=nan"),
    ],
)
def test_bad_impairments_are_refused(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(LabError, match="impairment refused") as e:
        Impairment(**kwargs)
    assert needle in str(e.value)


def test_missing_interface_is_named(pair: Pair) -> None:
    with pytest.raises(LabError, match="no interface 'nope0'"):
        impair.set_impairment(pair.a, "nope0", Impairment(delay_ms=5), seconds=5)
    assert not Path(impair.state_dir(pair.a, "nope0"), "status.json").exists()
