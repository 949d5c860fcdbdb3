"""The delayer's pure parts (delay draws, the held-packet heap), the rendered rulesets (checked by the
real ``nft`` in a throwaway namespace), and the delayer's refusal to run in the host's namespace."""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.errors import LabError
from bgpctl_lab import nft
from bgpctl_lab.delayer import Held, draw_delay_s, in_named_netns
from bgpctl_lab.impair import Impairment
from bgpctl_lab.pytest_plugin import TopologyLab
from tests.lab.pairs import TOPOLOGY, Pair, pair_of

delays = st.floats(min_value=0, max_value=1000, allow_nan=False)
pcts = st.floats(min_value=0, max_value=100, allow_nan=False)


# ------------------------------------------------------------------------------------------------ draws


@given(delay=delays, seed=st.integers(0, 2**32))
def test_without_jitter_every_packet_gets_exactly_the_delay(delay: float, seed: int) -> None:
    rng = random.Random(seed)
    assert all(draw_delay_s(rng, Impairment(delay_ms=delay)) == delay / 1000 for _ in range(20))


@given(delay=delays, jitter=st.floats(min_value=0.001, max_value=500), seed=st.integers(0, 2**32))
def test_jittered_delays_are_never_negative(delay: float, jitter: float, seed: int) -> None:
    rng = random.Random(seed)
    assert all(draw_delay_s(rng, Impairment(delay_ms=delay, jitter_ms=jitter)) >= 0 for _ in range(50))


@given(delay=st.floats(min_value=0.1, max_value=1000), seed=st.integers(0, 2**32))
def test_reorder_100_sends_everything_at_once(delay: float, seed: int) -> None:
    rng = random.Random(seed)
    imp = Impairment(delay_ms=delay, reorder_pct=100)
    assert all(draw_delay_s(rng, imp) == 0 for _ in range(20))


def test_jitter_is_normal_with_the_given_stddev() -> None:
    rng = random.Random(3)
    imp = Impairment(delay_ms=50, jitter_ms=10)
    d = [draw_delay_s(rng, imp) * 1000 for _ in range(20_000)]
    assert abs(statistics.fmean(d) - 50) < 0.3  # 10/sqrt(20000) = 0.07 ms standard error
    assert abs(statistics.stdev(d) - 10) < 0.3
    within_1sd = sum(1 for x in d if 40 <= x <= 60) / len(d)
    assert 0.67 < within_1sd < 0.70  # normal: 68.3 %


def test_same_seed_same_draws() -> None:
    imp = Impairment(delay_ms=20, jitter_ms=5, reorder_pct=10, seed=9)
    a, b = random.Random(imp.seed), random.Random(imp.seed)
    assert [draw_delay_s(a, imp) for _ in range(100)] == [draw_delay_s(b, imp) for _ in range(100)]


# ------------------------------------------------------------------------------------------------ held packets


class _Pkt:
    def __init__(self, name: str) -> None:
        self.name = name

    def accept(self) -> None:  # pragma: no cover - the heap never calls it
        raise AssertionError("Held must not issue verdicts itself")


@given(
    dues=st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), max_size=50),
    now=st.floats(min_value=0, max_value=10),
)
def test_held_releases_in_due_order_and_only_when_due(dues: list[float], now: float) -> None:
    h = Held()
    pkts = [_Pkt(str(i)) for i in range(len(dues))]
    for due, p in zip(dues, pkts, strict=True):
        h.push(due, p)
    out = h.pop_due(now)
    expected = [p for _, _, p in sorted((d, i, p) for i, (d, p) in enumerate(zip(dues, pkts, strict=True)) if d <= now)]
    assert out == expected
    rest = h.pop_all()
    assert sorted(map(id, out + rest)) == sorted(map(id, pkts))
    assert h.next_due() is None


def test_equal_due_times_keep_arrival_order() -> None:
    h = Held()
    pkts = [_Pkt(str(i)) for i in range(10)]
    for p in pkts:
        h.push(1.0, p)
    assert h.pop_due(1.0) == pkts


# ------------------------------------------------------------------------------------------------ rulesets


def test_loss_and_duplication_render_with_basis_point_resolution() -> None:
    text = nft.render_impair("eth1", 5, 0.01)
    assert 'numgen random mod 10000 < 500 counter fwd to "bgpctl_sink"' in text
    assert "numgen random mod 10000 < 1 meta mark set" in text
    assert 'dup to "eth1"' in text
    assert text.startswith("add table netdev bgpctl_impair_eth1\ndelete table netdev bgpctl_impair_eth1\n")


def test_100_percent_needs_no_random_draw_and_0_percent_deletes_the_table() -> None:
    assert "numgen" not in nft.render_impair("eth1", 100, 0)
    assert nft.render_impair("eth1", 0, 0) == (
        "add table netdev bgpctl_impair_eth1\ndelete table netdev bgpctl_impair_eth1\n"
    )


def test_a_udp_port_limits_loss_duplication_and_queueing_to_that_traffic() -> None:
    text = nft.render_impair("eth2", 20, 1, udp_dport=862)
    assert (
        "meta protocol { ip, ip6 } meta l4proto udp udp dport 862 numgen random mod 10000 < 2000 "
        'counter fwd to "bgpctl_sink"'
    ) in text
    assert "meta l4proto udp udp dport 862 meta mark & 0x40000000 == 0 numgen random mod 10000 < 100" in text
    assert "udp dport" not in nft.render_impair("eth2", 20, 1)
    assert "-A bgpctl_q_eth2 -p udp --dport 862 -j NFQUEUE --queue-num 7 --queue-bypass" in nft.render_queue(
        "eth2", 7, udp_dport=862
    )
    with pytest.raises(LabError, match="must be a UDP port"):
        nft.render_impair("eth2", 20, 0, udp_dport=70000)
    with pytest.raises(LabError, match="must be a UDP port"):
        Impairment(loss_pct=1, udp_dport=0)


def test_queue_rules_bypass_when_nobody_listens() -> None:
    text = nft.render_queue("eth1", 7)
    assert "-A POSTROUTING -o eth1 -j bgpctl_q_eth1" in text
    assert "-A bgpctl_q_eth1 -j NFQUEUE --queue-num 7 --queue-bypass" in text


@pytest.mark.parametrize("bad", ['eth1"; flush ruleset; "', "", "a" * 16, "eth 1", "eth1\n"])
def test_interface_names_cannot_inject_rules(bad: str) -> None:
    with pytest.raises(LabError, match="not valid"):
        nft.render_impair(bad, 5, 0)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")
@pytest.mark.lab
@pytest.mark.parametrize(("loss", "dup"), [(5, 0), (0, 30), (12.34, 0.5), (100, 100)])
def test_rendered_rulesets_load_into_the_kernel(pair: Pair, loss: float, dup: float) -> None:
    p = pair
    nft.ensure_sink(p.a)
    nft.apply_nft(nft.render_impair(p.ifname, loss, dup), p.a)
    listed = _ruleset(p)
    assert f'hook egress device "{p.ifname}"' in listed
    nft.set_blackhole(p.ifname, True, p.a)
    assert "bgpctl_blackhole_" in _ruleset(p)
    nft.set_blackhole(p.ifname, False, p.a)
    nft.apply_nft(nft.render_impair(p.ifname, 0, 0), p.a)
    assert nft.remove_sink_if_unused(p.a) is True
    assert "bgpctl" not in _ruleset(p)


@pytest.fixture
def pair(topology_lab: TopologyLab) -> Iterator[Pair]:
    with pair_of(topology_lab(TOPOLOGY)) as p:
        yield p


def _ruleset(p: Pair) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", p.a, "nft", "list", "ruleset"], capture_output=True, text=True, check=True
    ).stdout


# ------------------------------------------------------------------------------------------------ the process


def test_the_delayer_refuses_the_hosts_namespace(tmp_path: Path) -> None:
    assert not in_named_netns()  # pytest itself runs in the host's namespace
    (tmp_path / "params.json").write_text(
        json.dumps({"generation": 1, "impairment": {"delay_ms": 5}, "backend": "nft", "expires_at": 0})
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bgpctl_lab.delayer",
            "--ifname",
            "tbimp_none0",
            "--state-dir",
            str(tmp_path),
            "--seconds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 1
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and "named network namespace" in status["error"]
