"""From the policy to probe specs and pins, path selection, the mtr-like summary, JSONL records (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bgpctl.core.decide import path_keys
from bgpctl.core.recording import Header, Schedule, Sent, Settled, Stepped, read_recording
from bgpctl.core.types import MEASURED_V6, PathKey, Sample
from bgpctl.errors import ProbeError
from bgpctl.policy.load import load_policy
from bgpctl.policy.model import Policy, ProbeProtocol
from bgpctl.probe.icmp import IcmpProbe, build_echo
from bgpctl.probe.paths import make_probe, select, specs_from_policy
from bgpctl.probe.pinning import Pin, pins_from_policy
from bgpctl.probe.protocol import Counters, Problem
from bgpctl.probe.recorder import Recorder
from bgpctl.probe.summary import render, summarize

LAB = Path(__file__).resolve().parents[2] / "policies" / "lab.yaml"


def test_specs_follow_the_lab_policy() -> None:
    policy = load_policy(LAB)
    specs = specs_from_policy(policy)
    by_key = {str(s.key): s for s in specs}
    assert sorted(by_key) == sorted(
        f"{svc}/{r}/interconnect" for svc in ("media", "signalling", "api") for r in ("use1", "usw2")
    )
    media = by_key["media/use1/interconnect"]
    assert (media.protocol, media.source, media.target, media.port, media.dscp) == (
        ProbeProtocol.UDP,
        "198.18.1.21",
        "203.0.113.10",
        862,
        46,
    )
    media_probe = policy.services["media"].probe
    assert (media.interval_s, media.timeout_s) == (media_probe.interval_ms / 1000, media_probe.timeout_ms / 1000)
    assert media.interval_s == 0.02
    api = by_key["api/usw2/interconnect"]
    assert (api.protocol, api.source, api.port, api.dscp, api.interval_s) == (
        ProbeProtocol.TCP,
        "198.18.1.22",
        443,
        18,
        0.2,
    )
    assert by_key["signalling/use1/interconnect"].dscp == 24  # cs3


def test_select_by_path_service_region_and_full_key() -> None:
    specs = specs_from_policy(load_policy(LAB))
    assert {str(s.key) for s in select(specs, ["use1/interconnect"])} == {
        "media/use1/interconnect",
        "signalling/use1/interconnect",
        "api/use1/interconnect",
    }
    assert {str(s.key) for s in select(specs, ["media"])} == {"media/use1/interconnect", "media/usw2/interconnect"}
    assert [str(s.key) for s in select(specs, ["api/usw2/interconnect", "api"])] == [
        "api/usw2/interconnect",
        "api/use1/interconnect",
    ]  # no duplicates, first mention first
    assert select(specs, []) == specs
    with pytest.raises(ProbeError, match=r"no probed path matches 'use1/vpn'.*use1/interconnect"):
        select(specs, ["use1/vpn"])


def test_pins_follow_the_lab_policy() -> None:
    assert pins_from_policy(load_policy(LAB)) == [
        Pin("198.18.1.21", 101, "198.18.1.11", "use1/interconnect"),
        Pin("198.18.1.22", 102, "198.18.1.12", "usw2/interconnect"),
    ]


def test_two_paths_pinning_one_source_differently_are_refused() -> None:
    # The policy checker (xref) refuses this file too; pinning must not rely on it.
    data = YAML(typ="safe").load(LAB.read_text())
    data["regions"]["usw2"]["paths"]["interconnect"]["probe_source"] = "198.18.1.21"
    policy = Policy.model_validate_json(json.dumps(data))
    with pytest.raises(ProbeError, match="share a probe_source"):
        pins_from_policy(policy)
    data["regions"]["usw2"]["paths"]["interconnect"]["probe_source"] = "198.18.1.22"
    data["regions"]["usw2"]["paths"]["interconnect"]["table"] = 101
    with pytest.raises(ProbeError, match="share a table"):
        pins_from_policy(Policy.model_validate_json(json.dumps(data)))


def test_summary_and_mtr_like_table() -> None:
    key = PathKey("media", "use1", "interconnect")
    samples = [Sample(0, 10.0, 10.010), Sample(1, 10.02, None), Sample(2, 10.04, 10.060), Sample(3, 10.06, 10.090)]
    counters = Counters({"sent": 4, "answered": 3, "lost": 1, Problem.WRONG_SOURCE.value: 2})
    row = summarize(key, "udp", samples, counters)
    assert (row.sent, row.lost, row.loss_pct) == (4, 1, 25.0)
    assert row.last_ms == pytest.approx(30.0) and row.best_ms == pytest.approx(10.0)
    assert row.worst_ms == pytest.approx(30.0) and row.avg_ms == pytest.approx(20.0)
    assert row.stats.rtt_p50_ms == pytest.approx(20.0) and row.stats.lost == 1
    assert row.problems == {"wrong_source": 2}
    lines = render([row]).splitlines()
    assert lines[0].split() == [
        "PATH",
        "KIND",
        "Loss%",
        "Snt",
        "Last",
        "Avg",
        "Best",
        "Wrst",
        "StDev",
        "p50",
        "p95",
        "Jttr",
        "MOS",
    ]
    assert lines[1].split()[:9] == [
        "media/use1/interconnect",
        "udp",
        "25.0%",
        "4",
        "30.00",
        "20.00",
        "10.00",
        "30.00",
        "8.16",
    ]
    assert lines[2] == "media/use1/interconnect: wrong_source 2"


def test_summary_of_a_path_that_never_answered() -> None:
    row = summarize(PathKey("api", "usw2", "interconnect"), "tcp", [Sample(0, 1.0, None)], Counters())
    assert (row.loss_pct, row.avg_ms, row.stats.rtt_p50_ms) == (100.0, None, None)
    assert render([row]).splitlines()[1].split()[2:5] == ["100.0%", "1", "-"]


def test_jsonl_records_round_trip(tmp_path: Path) -> None:
    key = PathKey("media", "use1", "interconnect")
    samples = [Sample(0, 1763700000.123456, 1763700000.1237), Sample(1, 1763700000.143456, None)]
    path = tmp_path / "s.jsonl"
    with Recorder(path) as rec:
        rec.header({key: Schedule(0.02, 0.3)}, steps=True)
        for s in samples:
            rec.sent(key, s.seq, s.sent)
            rec(key, s)
        rec.step(1763700000.2)
    lines = path.read_text().splitlines()
    assert json.loads(lines[4]) == {
        "service": "media",
        "region": "use1",
        "path": "interconnect",
        "seq": 1,
        "sent": 1763700000.143456,
        "received": None,
    }
    assert list(read_recording(lines)) == [
        Header({key: Schedule(0.02, 0.3)}, steps=True),
        Sent(key, 0, samples[0].sent),
        Settled(key, samples[0]),
        Sent(key, 1, samples[1].sent),
        Settled(key, samples[1]),
        Stepped(1763700000.2),
    ]


def test_recorder_names_an_unwritable_file(tmp_path: Path) -> None:
    with pytest.raises(ProbeError, match="--record"), Recorder(tmp_path / "missing" / "s.jsonl"):
        pass


DUAL = Path(__file__).resolve().parents[2] / "policies" / "examples" / "dual-stack.yaml"


def test_dual_stack_specs_probe_ipv6_per_path_keyed_by_family() -> None:
    policy = load_policy(DUAL)
    specs = specs_from_policy(policy)
    by_key = {s.key: s for s in specs}
    assert set(by_key) == set(path_keys(policy))  # every key decide judges gets samples, and no other
    for region, n in (("use1", "21"), ("usw2", "22")):
        v4 = by_key[PathKey("media", region, "interconnect")]
        v6 = by_key[PathKey("media", region, "interconnect", MEASURED_V6)]
        assert (v4.source, v4.target) == (f"198.18.1.{n}", "203.0.113.10")
        assert (v6.source, v6.target) == (f"2001:db8:1::{n}", "2001:db8:c0::10")
        assert (v6.protocol, v6.port, v6.dscp, v6.interval_s, v6.timeout_s) == (
            v4.protocol,
            v4.port,
            v4.dscp,
            v4.interval_s,
            v4.timeout_s,
        )
    # api has an IPv6 prefix but no address_v6: one (IPv4) probe per path, its IPv6 routes follow it
    assert [str(s.key) for s in specs if s.key.service == "api"] == ["api/use1/interconnect", "api/usw2/interconnect"]
    assert {str(s.key) for s in select(specs, ["media/use1/interconnect/ipv6"])} == {"media/use1/interconnect/ipv6"}
    assert {str(s.key) for s in select(specs, ["use1/interconnect"]) if s.key.service == "media"} == {
        "media/use1/interconnect",
        "media/use1/interconnect/ipv6",
    }


def test_dual_stack_tcp_target_gets_an_ipv6_tcp_probe() -> None:
    data = YAML(typ="safe").load(DUAL.read_text())
    for region in ("use1", "usw2"):
        data["services"]["api"]["probe"]["targets"][region]["address_v6"] = "2001:db8:c0:80::8a"
    specs = specs_from_policy(Policy.model_validate_json(json.dumps(data)))
    v6 = {str(s.key): s for s in specs}["api/usw2/interconnect/ipv6"]
    assert (v6.protocol, v6.source, v6.target, v6.port) == (
        ProbeProtocol.TCP,
        "2001:db8:1::22",
        "2001:db8:c0:80::8a",
        443,
    )


def test_dual_stack_icmp_target_gets_an_icmpv6_probe() -> None:
    specs = specs_from_policy(load_policy(Path(__file__).parents[1] / "policy" / "good" / "dual-stack-icmp.yaml"))
    v4, v6 = ({str(s.key): s for s in specs}[k] for k in ("media/use1/interconnect", "media/use1/interconnect/ipv6"))
    assert (v4.protocol, v4.target, v6.protocol, v6.source, v6.target, v6.port) == (
        ProbeProtocol.ICMP,
        "203.0.113.10",
        ProbeProtocol.ICMP,
        "2001:db8:1::21",
        "2001:db8:c0::10",
        None,
    )
    probe = make_probe(v6)
    assert isinstance(probe, IcmpProbe) and build_echo(1, 1, 8, v6=True)[0] == 128


def test_ipv6_target_without_an_ipv6_probe_source_is_refused_not_probed_from_ipv4() -> None:
    data = YAML(typ="safe").load(DUAL.read_text())
    del data["regions"]["usw2"]["paths"]["interconnect"]["probe_source_v6"]
    with pytest.raises(ProbeError, match=r"path interconnect has no IPv6 probe source: give it probe_source_v6"):
        specs_from_policy(Policy.model_validate_json(json.dumps(data)))


def test_dual_stack_pins_one_per_family_sharing_the_table() -> None:
    assert pins_from_policy(load_policy(DUAL)) == [
        Pin("198.18.1.21", 101, "198.18.1.11", "use1/interconnect"),
        Pin("2001:db8:1::21", 101, "2001:db8:1::11", "use1/interconnect/ipv6"),
        Pin("198.18.1.22", 102, "198.18.1.12", "usw2/interconnect"),
        Pin("2001:db8:1::22", 102, "2001:db8:1::12", "usw2/interconnect/ipv6"),
    ]


def test_dual_stack_pin_conflicts_are_checked_per_family() -> None:
    data = YAML(typ="safe").load(DUAL.read_text())
    data["regions"]["usw2"]["paths"]["interconnect"]["probe_source_v6"] = "2001:db8:1::21"
    with pytest.raises(ProbeError, match=r"use1/interconnect/ipv6 and usw2/interconnect/ipv6 share a probe_source"):
        pins_from_policy(Policy.model_validate_json(json.dumps(data)))
    data = YAML(typ="safe").load(DUAL.read_text())
    data["regions"]["usw2"]["paths"]["interconnect"]["table"] = 101
    with pytest.raises(ProbeError, match=r"use1/interconnect and usw2/interconnect share a table"):
        pins_from_policy(Policy.model_validate_json(json.dumps(data)))
    data = YAML(typ="safe").load(DUAL.read_text())
    del data["regions"]["usw2"]["paths"]["interconnect"]["next_hop_v6"]
    with pytest.raises(ProbeError, match=r"usw2/interconnect: probe_source_v6 2001:db8:1::22 but no IPv6 next hop"):
        pins_from_policy(Policy.model_validate_json(json.dumps(data)))
