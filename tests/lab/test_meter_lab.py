"""The call-quality meter against real responders in the meter topologies (tests/topologies/meter-*.clab.yml):
accuracy, loss, ECMP, outages."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from bgpctl_lab import impair
from bgpctl_lab.impair import Impairment
from bgpctl_lab.meter import run_meter
from bgpctl_lab.meter_report import MeterReport
from bgpctl_lab.poll import eventually
from bgpctl_lab.pytest_plugin import TopologyLab
from tests.lab.meter_support import ENDPOINT, ENDPOINT6, NEEDS_ROOT, Net, topology

pytestmark = [pytest.mark.lab, pytest.mark.slow, NEEDS_ROOT]

Record = Callable[[str, object], None]
STREAM_BUDGET_S = 20.0  # python start-up of the meter's process on a loaded 2-core machine


@pytest.fixture
def pair(topology_lab: TopologyLab) -> Iterator[Net]:
    with topology(topology_lab, "pair") as net:
        yield net


@pytest.fixture
def ecmp(topology_lab: TopologyLab) -> Iterator[Net]:
    with topology(topology_lab, "ecmp") as net:
        yield net


def _record(record_property: Record, r: MeterReport) -> None:
    record_property(
        "meter",
        {
            "sent": r.sent,
            "lost": r.lost,
            "gap_ms": round(r.longest_gap_ms, 3),
            "gap_raw_ms": round(r.longest_gap_raw_ms, 3),
            "rtt_p50_ms": r.rtt.p50_ms if r.rtt else None,
            "send_late_max_ms": round(r.send_late_max_ms, 3),
            "user_tx_stamps": r.user_tx_stamps,
            "tx_delay_max_ms": r.tx_delay_max_ms,
        },
    )


def test_fine_mode_without_fault_loses_nothing_and_the_longest_gap_is_the_spacing(
    pair: Net, record_property: Record
) -> None:
    pair.responder("r1", "use1")
    r = run_meter(pair.node("snd"), ENDPOINT, 9000, fine=True, seconds=5.0, flows=4)
    _record(record_property, r)
    assert r.settings.spacing_ms == 2.0
    assert r.sent == 2500 and r.received == 2500 and r.lost == 0 and r.duplicates == 0
    assert abs(r.longest_gap_ms - 2.0) <= 2.0, r.longest_gap
    assert all(s.lost == 0 for s in r.per_second_loss) and len(r.per_second_loss) == 5
    assert [f.sent for f in r.flows] == [625] * 4 and len({f.source_port for f in r.flows}) == 4
    assert r.regions["use1"].answered == 2500
    assert r.kernel_rx_timestamps and r.realtime_sched
    assert r.user_tx_stamps == 0  # every send time is the kernel's transmit stamp (veth gives them)
    assert r.send_errors == 0 and r.rtt is not None and r.rtt.p50_ms < 2.0
    assert r.mos is not None and r.mos > 4.3  # a clean LAN path: G.711's best is 4.40


def test_a_held_echo_shows_in_the_round_trip_within_1ms(pair: Net, record_property: Record) -> None:
    pair.responder("r1", "use1", "--port", "9000")
    pair.responder("r1", "use1", "--port", "9001", "--hold-ms", "50")
    base = run_meter(pair.node("snd"), ENDPOINT, 9000, seconds=3.0, rate_pps=50)
    held = run_meter(pair.node("snd"), ENDPOINT, 9001, seconds=3.0, rate_pps=50)
    assert base.rtt is not None and held.rtt is not None
    record_property("rtt_p50_ms", {"base": base.rtt.p50_ms, "held": held.rtt.p50_ms})
    assert base.lost == 0 and held.lost == 0
    assert abs(held.rtt.p50_ms - base.rtt.p50_ms - 50.0) <= 1.0
    assert held.server_hold_ms_p50 is not None and abs(held.server_hold_ms_p50 - 50.0) <= 1.0


def test_50ms_of_injected_delay_shows_in_the_round_trip_within_1ms(pair: Net, record_property: Record) -> None:
    pair.responder("r1", "use1")
    base = run_meter(pair.node("snd"), ENDPOINT, 9000, seconds=3.0, rate_pps=50)
    applied = impair.set_impairment(pair.node("r1"), "e0", Impairment(delay_ms=50), seconds=60)
    try:
        delayed = run_meter(pair.node("snd"), ENDPOINT, 9000, seconds=3.0, rate_pps=50)
    finally:
        impair.clear_impairment(pair.node("r1"), "e0")
    assert base.rtt is not None and delayed.rtt is not None
    record_property("rtt_p50_ms", {"base": base.rtt.p50_ms, "delayed": delayed.rtt.p50_ms, "backend": applied.backend})
    assert base.lost == 0 and delayed.lost == 0
    assert abs(delayed.rtt.p50_ms - base.rtt.p50_ms - 50.0) <= 1.0


def test_flows_spread_over_two_next_hops_and_both_regions_answer(ecmp: Net, record_property: Record) -> None:
    ecmp.responder("r1", "use1")
    ecmp.responder("r2", "usw2")
    r = run_meter(ecmp.node("snd"), ENDPOINT, 9000, rate_pps=200, seconds=2.0, flows=16)
    record_property("regions", {k: v.answered for k, v in r.regions.items()})
    assert r.lost == 0 and r.received == 400
    assert set(r.regions) == {"use1", "usw2"}
    assert sum(v.answered for v in r.regions.values()) == r.received
    for f in r.flows:  # a flow (5-tuple) sticks to one path: one region answers all of it
        assert list(f.regions.values()) == [f.sent], f


def test_one_failed_path_shows_in_the_worst_flow_gap(ecmp: Net, record_property: Record) -> None:
    """A 300 ms blackhole on one of two ECMP paths: the flows on it go silent, the others carry on."""
    ecmp.responder("r1", "use1")
    ecmp.responder("r2", "usw2")
    result: list[MeterReport] = []
    meter = threading.Thread(
        target=lambda: result.append(run_meter(ecmp.node("snd"), ENDPOINT, 9000, fine=True, seconds=3.0, flows=16))
    )  # 16: both paths used
    meter.start()
    try:
        eventually(
            "the stream is flowing",
            budget=STREAM_BUDGET_S,
            probe=lambda: _answered(ecmp, "r2"),
            check=lambda n: [] if n > 0 else ["no probe answered by r2 yet"],
        )
        time.sleep(0.5)  # part of the stream before the fault
        t_add = (time.monotonic(), 0.0)
        ecmp.nft("r2", BLACKHOLE)
        t_add = (t_add[0], time.monotonic())
        time.sleep(0.3)  # the fault itself: 300 ms
        t_del = (time.monotonic(), 0.0)
        ecmp.nft("r2", "delete table netdev tbmet_bh\n")
        t_del = (t_del[0], time.monotonic())
    finally:
        meter.join(timeout=30)
    (r,) = result
    shortest, longest = (t_del[0] - t_add[1]) * 1e3, (t_del[1] - t_add[0]) * 1e3
    record_property(
        "path_failure",
        {
            "outage_ms": [round(shortest, 1), round(longest, 1)],
            "flow_gap_ms": r.longest_flow_gap_ms,
            "gap_ms": r.longest_gap_ms,
        },
    )
    per_flow_ms = r.settings.flows * r.settings.spacing_ms
    assert r.longest_flow_gap_flow is not None
    silenced = r.flows[r.longest_flow_gap_flow]
    assert set(silenced.regions) == {"usw2"}  # the flow that went quiet is one on the failed path
    assert shortest - per_flow_ms <= r.longest_flow_gap_ms <= longest + per_flow_ms
    assert r.longest_gap_ms <= per_flow_ms + 2.0  # across all flows, use1's flows filled the silence
    assert r.lost > 0 and r.regions["use1"].answered + r.regions["usw2"].answered == r.received


def _answered(net: Net, role: str) -> int:
    out = subprocess.run(
        ["ip", "netns", "exec", net.node(role), "cat", "/proc/net/snmp"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    udp = [line.split() for line in out if line.startswith("Udp:")]
    return int(dict(zip(udp[0], udp[1], strict=True))["OutDatagrams"])


BLACKHOLE = """table netdev tbmet_bh {
  chain in {
    type filter hook ingress device "e0" priority 0; policy drop;
  }
}
"""


def test_loss_injected_with_nft_is_counted_exactly_and_within_binomial_tolerance(
    pair: Net, record_property: Record
) -> None:
    pair.responder("r1", "use1")
    pair.nft(
        "r1",
        """table inet tbmet_loss {
  chain in {
    type filter hook input priority 0; policy accept;
    udp dport 9000 numgen random mod 100 < 20 counter drop
  }
}
""",
    )
    r = run_meter(pair.node("snd"), ENDPOINT, 9000, fine=True, seconds=2.0)
    rules = [x["rule"] for x in pair.nft_json("r1", "list", "table", "inet", "tbmet_loss")["nftables"] if "rule" in x]
    dropped = next(e["counter"]["packets"] for e in rules[0]["expr"] if "counter" in e)
    record_property("loss", {"sent": r.sent, "lost": r.lost, "nft_dropped": dropped})
    assert r.sent == 1000
    assert r.lost == dropped  # every drop is seen, nothing else is counted as lost
    # binomial(1000, 0.2): sd = 1.26 %; 5 points is ~4 sd
    assert abs(r.loss_pct - 20.0) <= 5.0
    assert sum(s.lost for s in r.per_second_loss) == r.lost
    assert all(5.0 <= s.loss_pct <= 35.0 for s in r.per_second_loss)


def test_a_responder_that_stops_mid_stream_gives_a_gap_equal_to_the_outage(pair: Net, record_property: Record) -> None:
    first = pair.responder("r1", "use1")
    pair.nft(
        "r1",
        """table inet tbmet_count {
  chain in {
    type filter hook input priority 0; policy accept;
    udp dport 9000 counter
  }
}
""",
    )
    meter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bgpctl",
            "lab",
            "meter",
            "--netns",
            pair.node("snd"),
            "--to",
            ENDPOINT,
            "--fine",
            "--seconds",
            "6",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        eventually(
            "the meter's stream reaches the responder",
            budget=STREAM_BUDGET_S,
            probe=lambda: _counted(pair),
            check=lambda n: [] if n >= 100 else [f"{n} probes so far"],
        )
        a = first.stop()  # the outage starts...
        second = pair.responder("r1", "use1b")  # ...and ends when this one answers
        out, err = meter.communicate(timeout=30)
    finally:
        if meter.poll() is None:
            meter.kill()
            meter.communicate()
    assert meter.returncode == 0, err
    b = second.stop()
    r = MeterReport.model_validate_json(out)
    outage_ms = (b["first_rx_unix_ns"] - a["last_rx_unix_ns"]) / 1e6
    _record(record_property, r)
    record_property("outage_ms", outage_ms)
    assert outage_ms > 100  # a real outage (a python start-up), not noise
    assert abs(r.longest_gap_ms - outage_ms) <= 3.0
    assert a["answered"] + b["answered"] == r.received
    assert r.regions["use1"].last_s <= r.longest_gap.start_s + 0.003
    assert abs(r.regions["use1b"].first_s - r.longest_gap.end_s) <= 0.003
    assert r.lost > 0 and r.lost == r.sent - r.received


def _counted(net: Net) -> int:
    rules = [x["rule"] for x in net.nft_json("r1", "list", "table", "inet", "tbmet_count")["nftables"] if "rule" in x]
    return int(next(e["counter"]["packets"] for e in rules[0]["expr"] if "counter" in e))


def test_ipv6_endpoint(pair: Net) -> None:
    pair.responder("r1", "use1", "--bind", "::")
    r = run_meter(pair.node("snd"), ENDPOINT6, 9000, rate_pps=100, seconds=1.0, flows=2, dscp=46)
    assert r.sent == 100 and r.lost == 0 and set(r.regions) == {"use1"}


def test_count_bounds_the_stream_before_seconds(pair: Net) -> None:
    pair.responder("r1", "use1")
    r = run_meter(pair.node("snd"), ENDPOINT, 9000, rate_pps=100, seconds=30.0, count=37, flows=3)
    assert r.sent == 37 and r.received == 37 and [f.sent for f in r.flows] == [13, 12, 12]
    assert r.duration_s < 1.0


def test_no_route_counts_as_sent_and_lost(pair: Net) -> None:
    r = run_meter(pair.node("snd"), "198.51.100.77", 9000, rate_pps=100, count=20, seconds=1.0, drain_s=0.2)
    assert r.sent == 20 and r.lost == 20 and r.send_errors == 20 and r.rtt is None
    assert r.longest_gap_ms == pytest.approx(190.0, abs=5.0)  # the whole stream is silence


def test_cli_json_and_text(pair: Net) -> None:
    pair.responder("r1", "use1")
    base = [
        sys.executable,
        "-m",
        "bgpctl",
        "lab",
        "meter",
        "--netns",
        pair.node("snd"),
        "--to",
        ENDPOINT,
        "--seconds",
        "1",
        "--flows",
        "2",
    ]
    out = subprocess.run([*base, "--json"], capture_output=True, text=True, check=True).stdout
    data = json.loads(out)
    assert data["sent"] == 50 and data["received"] == 50 and data["regions"]["use1"]["answered"] == 50
    assert set(data) >= {"loss_pct", "longest_gap_ms", "per_second_loss", "rtt", "jitter_ms", "mos", "flows"}
    text = subprocess.run(base, capture_output=True, text=True, check=True).stdout
    assert "50 sent, 50 received, 0 lost" in text and "region use1: 50 answers" in text
