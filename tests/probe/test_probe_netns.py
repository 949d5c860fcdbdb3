"""Probes, pinning and the reflector on real namespaces and packets (tests/topologies/probe.clab.yml).

Needs root (namespaces, raw sockets, nft). Everything runs in the namespaces of a lab the
``topology_lab`` fixture brings up (``tl<pid>_<n>-*``) and removes also on failure; in-process
reflectors and probes close with their event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP

from bgpctl import events as names
from bgpctl.core.types import PathKey, Sample
from bgpctl.errors import ProbeError
from bgpctl.policy.load import load_policy
from bgpctl.probe import stamp, txstamp
from bgpctl.probe.icmp import IcmpProbe
from bgpctl.probe.netns import entered
from bgpctl.probe.pinning import RT_PROTO_BGPCTL, Pin, Pinning, pins_from_policy
from bgpctl.probe.protocol import Counters, Probe, Problem
from bgpctl.probe.reflector import Reflector
from bgpctl.probe.scheduler import PathProber
from bgpctl.probe.tcp import TcpConnectProbe
from bgpctl.probe.udp import StampProbe
from bgpctl_lab.poll import eventually
from bgpctl_lab.pytest_plugin import TopologyLab
from tests.probe.topo import API_TARGET, SPOOF, SRC, SRC6, TABLE, TARGET, TARGET6, TGW, TGW6, TOPOLOGY, Topo, sh

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

REFLECTOR_START_BUDGET_S = 10.0
CLI_BUDGET_S = 60.0
V6_WARMUP_BUDGET_S = 10.0


@pytest.fixture
def topo(topology_lab: TopologyLab) -> Topo:
    return Topo(topology_lab(TOPOLOGY))


@pytest.fixture
def pinned(topo: Topo, tmp_path: Path) -> Iterator[Pinning]:
    policy = load_policy(topo.policy_file(tmp_path))
    with Pinning(pins_from_policy(policy), netns=topo.ns("cr")) as p:
        yield p


Samples = list[Sample]


async def _probe(
    topo: Topo,
    probe: Probe,
    *,
    count: int,
    interval_s: float = 0.02,
    timeout_s: float = 0.2,
    during: Callable[[PathProber, Samples], Awaitable[None]] | None = None,
    tcp_ports: tuple[int, ...] = (443,),
) -> tuple[Samples, Counters]:
    """Run ``count`` probes of ``probe`` from cr with reflectors in c1 and c2; ``during`` runs alongside."""
    samples: Samples = []
    reflectors = [Reflector(tcp_ports=tcp_ports, netns=topo.ns(c)) for c in ("c1", "c2")]
    for r in reflectors:
        await r.start()
    try:
        prober = PathProber(
            PathKey("media", "r1", "p"),
            probe,
            interval_s=interval_s,
            timeout_s=timeout_s,
            sink=lambda _k, s: samples.append(s),
        )
        run = asyncio.create_task(prober.run(count))
        if during is not None:
            await during(prober, samples)
        counters = await run
    finally:
        for r in reflectors:
            r.close()
    return samples, counters


async def _until(what: str, cond: Callable[[], bool]) -> None:
    """Wait (in a thread, so the event loop keeps probing) until ``cond`` holds; budget probe_settle."""
    await asyncio.to_thread(
        eventually,
        what,
        budget="probe_settle",
        probe=cond,
        check=lambda ok: [] if ok else ["not yet"],
        interval_s=0.005,
    )


def _rtts(samples: Samples) -> list[float]:
    return [s.rtt for s in samples if s.rtt is not None]


# ------------------------------------------------------------------------------------- pinning


def test_pinning_keeps_each_paths_probes_on_its_tgw_while_main_points_elsewhere(topo: Topo, pinned: Pinning) -> None:
    assert "default via 198.18.202.2" in topo.ip("cr", "route", "show", "table", "main")
    before1, before2 = topo.counters("tgw1"), topo.counters("tgw2")
    probe = StampProbe(source=SRC["r1"], target=TARGET, dscp=46, netns=topo.ns("cr"))
    _, counters = asyncio.run(_probe(topo, probe, count=100))
    assert counters["answered"] == 100, counters
    after1, after2 = topo.counters("tgw1"), topo.counters("tgw2")
    assert after1["from_r1"] - before1["from_r1"] == 100  # every r1 probe crossed tgw1 ...
    assert after2["from_r1"] - before2["from_r1"] == 0  # ... and none crossed tgw2 (main's default)


def test_without_pinning_the_same_probes_follow_the_main_table(topo: Topo) -> None:
    # Control for the test above: the address alone does not pin anything.
    topo.ip("cr", "addr", "add", f"{SRC['r1']}/32", "dev", "e1")
    probe = StampProbe(source=SRC["r1"], target=TARGET, netns=topo.ns("cr"))
    _, counters = asyncio.run(_probe(topo, probe, count=20))
    assert counters["answered"] == 20
    assert topo.counters("tgw1")["from_r1"] == 0
    assert topo.counters("tgw2")["from_r1"] == 20


def _state(topo: Topo) -> tuple[str, str, str, str]:
    # (a table that never held a route does not exist: `ip route show table` then fails with no output)
    return (
        topo.ip("cr", "rule"),
        topo.ip("cr", "route", "show", "table", "201", check=False),
        topo.ip("cr", "route", "show", "table", "202", check=False),
        topo.ip("cr", "-4", "addr"),
    )


def _ipv6_path_warm(cr: str) -> None:
    """A fresh IPv6 topology needs about a second of neighbour discovery before packets flow promptly."""
    eventually(
        "IPv6 path r1 answers promptly",
        budget=V6_WARMUP_BUDGET_S,
        probe=lambda: sh("ip", "netns", "exec", cr, "ping", "-c1", "-W1", "-I", SRC6["r1"], TARGET6, check=False),
        check=lambda out: [] if " 0% packet loss" in out and "time=0." in out else [out],
    )


def test_ipv6_stamp_probes_are_pinned_too(topo: Topo) -> None:
    cr = topo.ns("cr")
    with Pinning([Pin(SRC6["r1"], 601, TGW6["r1"], "r1/p6")], netns=cr) as pinning:
        assert pinning.state()["r1/p6"]["address_owned"] is True
        assert f"from {SRC6['r1']} lookup 601 proto 200" in topo.ip("cr", "-6", "rule")
        _ipv6_path_warm(cr)
        probe = StampProbe(source=SRC6["r1"], target=TARGET6, dscp=46, netns=cr)

        async def main() -> tuple[Samples, Counters]:
            refl = Reflector("::", netns=topo.ns("c1"))
            await refl.start()
            try:
                samples: Samples = []
                prober = PathProber(
                    PathKey("media", "r1", "p6"),
                    probe,
                    interval_s=0.02,
                    timeout_s=0.2,
                    sink=lambda _k, s: samples.append(s),
                )
                return samples, await prober.run(30)
            finally:
                refl.close()

        samples, counters = asyncio.run(main())
    assert counters["answered"] == 30, counters
    assert all(0 < r < 0.05 for r in _rtts(samples))
    assert topo.counters("tgw1")["from_r1_v6"] == 30  # via tgw1 with DSCP EF; main's v6 default is tgw2
    assert SRC6["r1"] not in topo.ip("cr", "-6", "addr")  # the address pinning added is gone again


def test_icmpv6_probes_work_and_are_pinned(topo: Topo) -> None:
    """ICMPv6 echo from the pinned IPv6 probe source: answered by the target's kernel, via tgw1 (main's IPv6
    default is tgw2) with DSCP EF; the kernel fills in the checksum over the pseudo-header, we check the reply's."""
    cr = topo.ns("cr")
    with Pinning([Pin(SRC6["r1"], 601, TGW6["r1"], "r1/p6")], netns=cr):
        _ipv6_path_warm(cr)
        probe = IcmpProbe(source=SRC6["r1"], target=TARGET6, dscp=46, netns=cr)
        samples, counters = asyncio.run(_probe(topo, probe, count=50))
    assert counters["answered"] == 50, counters
    assert sorted(s.seq for s in samples) == list(range(50))
    assert all(0 < r < 0.05 for r in _rtts(samples))
    assert topo.counters("tgw1")["icmp6_from_r1"] == 50
    assert topo.counters("tgw2")["icmp6_from_r1"] == 0


def test_pinning_is_idempotent_and_removes_only_what_it_added(topo: Topo, tmp_path: Path) -> None:
    cr = topo.ns("cr")
    # Things bgpctl does not own: a rule in its priority range without its protocol, a route in another
    # table, an address the operator configured.
    topo.ip("cr", "rule", "add", "from", "198.18.200.77", "lookup", "300", "priority", "9200")
    topo.ip("cr", "route", "add", "203.0.113.0/24", "via", TGW["r1"], "table", "300")
    topo.ip("cr", "addr", "add", f"{SRC['r2']}/32", "dev", "e2")
    pins = pins_from_policy(load_policy(topo.policy_file(tmp_path)))
    original = _state(topo)

    first = Pinning(pins, netns=cr)
    first.install()
    installed = _state(topo)
    assert installed != original
    assert f"from {SRC['r1']} lookup {TABLE['r1']} proto 200" in installed[0]
    assert f"default via {TGW['r1']} dev e1 proto 200" in installed[1]
    Pinning(pins, netns=cr).install()  # a second install (another run, a restart) changes nothing
    first.install()
    assert _state(topo) == installed
    assert first.state()["r1/p"] == {
        "rules": 1,
        "routes": [{"default": True, "gateway": TGW["r1"], "proto": RT_PROTO_BGPCTL}],
        "address_owned": True,
    }
    assert first.state()["r2/p"]["address_owned"] is False  # the operator's address stays the operator's

    second = Pinning(pins, netns=cr)
    second.install()
    second.remove()  # created nothing, so removes nothing: the first one's pins stay
    assert _state(topo) == installed
    first.remove()
    assert _state(topo) == original

    first.install()
    Pinning(pins, netns=cr).purge()  # clean-up after a crash: everything with bgpctl's marks
    assert _state(topo) == original


def test_async_pinning_on_a_running_event_loop_installs_and_removes_the_same(topo: Topo, tmp_path: Path) -> None:
    # The daemon's way: AsyncIPRoute on its own loop, no thread. The sync API refuses to nest a loop.
    cr = topo.ns("cr")
    pins = pins_from_policy(load_policy(topo.policy_file(tmp_path)))
    original = _state(topo)

    async def main() -> tuple[dict[str, object], tuple[str, str, str, str]]:
        async with Pinning(pins, netns=cr) as pinning:
            with pytest.raises(ProbeError, match=r"await Pinning.install_async\(\) there instead"):
                pinning.install()
            await pinning.install_async()  # idempotent on the loop too
            return await pinning.state_async(), _state(topo)

    state, installed = asyncio.run(main())
    assert state["r1/p"] == {
        "rules": 1,
        "routes": [{"default": True, "gateway": TGW["r1"], "proto": RT_PROTO_BGPCTL}],
        "address_owned": True,
    }
    assert f"from {SRC['r1']} lookup {TABLE['r1']} proto 200" in installed[0]
    assert f"from {SRC['r2']} lookup {TABLE['r2']} proto 200" in installed[0]
    assert _state(topo) == original  # __aexit__ took away exactly what it added


def test_pinning_in_a_missing_namespace_is_refused_without_creating_it() -> None:
    name = f"tbprbmissing{os.getpid()}"
    with pytest.raises(ProbeError, match=f"network namespace '{name}' does not exist"):
        Pinning([Pin(SRC["r1"], 201, TGW["r1"], "r1/p")], netns=name).install()
    assert not Path(f"/run/netns/{name}").exists()


def test_pinning_refuses_a_table_holding_foreign_routes(topo: Topo) -> None:
    topo.ip("cr", "route", "add", "198.51.100.0/24", "via", TGW["r1"], "table", "201")
    before = _state(topo)
    with pytest.raises(ProbeError, match="table 201 holds 1 route"):
        Pinning([Pin(SRC["r1"], 201, TGW["r1"], "r1/p")], netns=topo.ns("cr")).install()
    assert _state(topo) == before


def test_pinning_refuses_an_unreachable_next_hop(topo: Topo) -> None:
    with pytest.raises(ProbeError, match=r"198\.51\.100\.1 is not on a connected network"):
        Pinning([Pin(SRC["r1"], 201, "198.51.100.1", "r1/p")], netns=topo.ns("cr")).install()


# ------------------------------------------------------------------------------ DSCP, kinds, loss


def test_dscp_ef_is_on_the_wire_both_ways(topo: Topo, pinned: Pinning) -> None:
    probe = StampProbe(source=SRC["r1"], target=TARGET, dscp=46, netns=topo.ns("cr"))
    _, counters = asyncio.run(_probe(topo, probe, count=30))
    assert counters["answered"] == 30
    c = topo.counters("tgw1")
    assert (c["stamp_ef"], c["reply_ef"]) == (30, 30)  # the reflector answers with the probe's DSCP

    plain = StampProbe(source=SRC["r1"], target=TARGET, dscp=0, netns=topo.ns("cr"))
    asyncio.run(_probe(topo, plain, count=10))
    c = topo.counters("tgw1")
    assert (c["stamp_ef"], c["reply_ef"], c["from_r1"]) == (30, 30, 40)


def test_icmp_probes_work_and_are_pinned(topo: Topo, pinned: Pinning) -> None:
    probe = IcmpProbe(source=SRC["r1"], target=TARGET, dscp=46, netns=topo.ns("cr"))
    samples, counters = asyncio.run(_probe(topo, probe, count=50))
    assert counters["answered"] == 50, counters
    assert sorted(s.seq for s in samples) == list(range(50))  # samples come in settle order
    assert all(0 < r < 0.05 for r in _rtts(samples))
    assert topo.counters("tgw1")["icmp_from_r1"] == 50
    assert topo.counters("tgw2")["icmp_from_r1"] == 0


def test_tcp_connect_probes_work_and_refusals_count_as_lost(topo: Topo, pinned: Pinning) -> None:
    probe = TcpConnectProbe(source=SRC["r1"], target=API_TARGET, port=443, dscp=18, netns=topo.ns("cr"))
    samples, counters = asyncio.run(_probe(topo, probe, count=30, interval_s=0.02, timeout_s=0.5))
    assert counters["answered"] == 30, counters
    assert all(0 < r < 0.05 for r in _rtts(samples))
    assert topo.counters("tgw1")["tcp_from_r1"] >= 30 * 2  # SYN and RST at least, all through tgw1

    closed = TcpConnectProbe(source=SRC["r1"], target=API_TARGET, port=444, netns=topo.ns("cr"))
    samples, counters = asyncio.run(_probe(topo, closed, count=10, timeout_s=0.3))
    assert counters["lost"] == 10 and counters[Problem.REFUSED] == 10
    assert all(s.received is None for s in samples)


def test_timeouts_count_as_lost_exactly(topo: Topo, pinned: Pinning) -> None:
    # numgen inc: every 4th probe forwarded by tgw1 is dropped, deterministically: exactly 25 of 100.
    topo.nft(
        "tgw1",
        "add",
        "rule",
        "inet",
        "tbprb",
        "through",
        "udp",
        "dport",
        "862",
        "numgen",
        "inc",
        "mod",
        "4",
        "==",
        "3",
        "drop",
    )
    probe = StampProbe(source=SRC["r1"], target=TARGET, netns=topo.ns("cr"))
    samples, counters = asyncio.run(_probe(topo, probe, count=100, timeout_s=0.1))
    assert (counters["sent"], counters["answered"], counters["lost"]) == (100, 75, 25)
    assert sorted(s.seq for s in samples) == list(range(100))  # samples come in settle order
    assert [s.seq for s in samples if s.received is None] == list(range(3, 100, 4))


# ----------------------------------------------------------------------------------- bad replies


def _raw_sender(topo: Topo, node: str) -> socket.socket:
    with entered(topo.ns(node)):
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)


def _reply_for(seq: int, sender_ts: int = 0, length: int = 44) -> bytes:
    return stamp.encode_reflector(stamp.ReflectorPacket(seq, 0, 1, 0, seq, sender_ts, 1, 64), length)


def test_bad_replies_are_counted_and_ignored_and_the_loop_keeps_running(topo: Topo, pinned: Pinning) -> None:
    probe = StampProbe(source=SRC["r1"], target=TARGET, netns=topo.ns("cr"))
    raw = _raw_sender(topo, "c1")
    n_each = 5
    # A drop of every 10th probe at tgw1 gives lost probes to send late replies for.
    topo.nft(
        "tgw1",
        "add",
        "rule",
        "inet",
        "tbprb",
        "through",
        "udp",
        "dport",
        "862",
        "numgen",
        "inc",
        "mod",
        "10",
        "==",
        "9",
        "drop",
    )

    def inject(src: str, sport: int, payload: bytes) -> None:
        pkt = IP(src=src, dst=SRC["r1"]) / UDP(sport=sport, dport=probe.local_port) / payload
        raw.sendto(bytes(pkt), (SRC["r1"], 0))

    async def during(prober: PathProber, samples: Samples) -> None:
        await _until("20 samples settled", lambda: len(samples) >= 20)
        answered = next(s for s in samples if s.received is not None)
        lost = next(s for s in samples if s.received is None)
        for _ in range(n_each):
            inject(TARGET, 862, _reply_for(answered.seq)[:30])  # truncated
            inject(TARGET, 862, _reply_for(answered.seq, length=60))  # wrong size
            inject(TARGET, 862, _reply_for(10**6))  # a sequence number never sent
            inject(SPOOF, 862, _reply_for(answered.seq))  # spoofed source address
            inject(TARGET, 863, _reply_for(answered.seq))  # right address, wrong port
            inject(TARGET, 862, _reply_for(answered.seq))  # a forged copy: the echoed timestamp is wrong
        await _until("injected replies counted", lambda: prober.counters[Problem.WRONG_SOURCE] >= 2 * n_each)
        # Valid-looking replies (the right echoed timestamp) for an answered and for a lost probe:
        sent_ntp = probe._sent_ntp[answered.seq % 4096][1]
        inject(TARGET, 862, _reply_for(answered.seq, sent_ntp))  # duplicate
        lost_ntp = probe._sent_ntp[lost.seq % 4096][1]
        inject(TARGET, 862, _reply_for(lost.seq, lost_ntp))  # after its timeout: late
        await _until(
            "late and duplicate counted",
            lambda: prober.counters[Problem.DUPLICATE] > 0 and prober.counters[Problem.LATE] > 0,
        )

    try:
        samples, counters = asyncio.run(_probe(topo, probe, count=200, during=during))
    finally:
        raw.close()
    assert counters[Problem.TRUNCATED] == n_each
    assert counters[Problem.WRONG_SIZE] == n_each
    assert counters[Problem.UNKNOWN_SEQ] == n_each
    assert counters[Problem.WRONG_SOURCE] == 2 * n_each
    assert counters[Problem.MALFORMED] == n_each
    assert counters[Problem.DUPLICATE] == 1 and counters[Problem.LATE] == 1
    # Nothing injected changed a sample: exactly the dropped probes are lost, all others answered.
    assert (counters["answered"], counters["lost"]) == (180, 20)
    assert sorted(s.seq for s in samples) == list(range(200))  # samples come in settle order
    assert [s.seq for s in samples if s.received is None] == list(range(9, 200, 10))


def test_reflector_drops_short_packets_and_answers_padded_ones(topo: Topo, pinned: Pinning) -> None:
    probe = StampProbe(source=SRC["r1"], target=TARGET, length=200, netns=topo.ns("cr"))
    refl = Reflector(netns=topo.ns("c1"), port=862)

    async def main() -> tuple[Counters, dict[str, int]]:
        await refl.start()
        try:
            with entered(topo.ns("cr")):
                junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            junk.bind((SRC["r1"], 0))
            junk.sendto(b"x" * 10, (TARGET, 862))
            junk.close()
            prober = PathProber(
                PathKey("media", "r1", "p"), probe, interval_s=0.02, timeout_s=0.2, sink=lambda _k, _s: None
            )
            counters = await prober.run(20)
            await _until("the short packet counted", lambda: refl.counters["dropped_short"] == 1)
            return counters, dict(refl.counters)
        finally:
            refl.close()

    counters, refl_counts = asyncio.run(main())
    assert counters["answered"] == 20 and counters[Problem.WRONG_SIZE] == 0
    assert refl_counts == {"received": 21, "dropped_short": 1, "reflected": 20}


# ------------------------------------------------------------------------------------------ CLI


def _spawn_reflector(topo: Topo, node: str) -> subprocess.Popen[str]:
    argv = [
        "ip",
        "netns",
        "exec",
        topo.ns(node),
        sys.executable,
        "-m",
        "bgpctl",
        "reflector",
        "--tcp-port",
        "443",
        "--seconds",
        "120",
    ]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen[str]) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out


def _udp_listeners(topo: Topo, node: str) -> Callable[[], str]:
    def listeners() -> str:
        return subprocess.run(
            ["ip", "netns", "exec", topo.ns(node), "ss", "-Hlun"], capture_output=True, text=True, check=True
        ).stdout

    return listeners


def test_cli_probe_all_prints_mtr_like_stats_and_records_jsonl(topo: Topo, tmp_path: Path) -> None:
    policy = topo.policy_file(tmp_path)
    procs = [_spawn_reflector(topo, n) for n in ("c1", "c2")]
    try:
        for node in ("c1", "c2"):
            eventually(
                f"reflector listening in {node}",
                budget=REFLECTOR_START_BUDGET_S,
                probe=_udp_listeners(topo, node),
                check=lambda out: [] if ":862" in out else ["no UDP socket on port 862 yet"],
            )
        record = tmp_path / "samples.jsonl"
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "bgpctl",
                "probe",
                "--all",
                "--count",
                "40",
                "--policy",
                str(policy),
                "--netns",
                topo.ns("cr"),
                "--record",
                str(record),
            ],
            capture_output=True,
            text=True,
            timeout=CLI_BUDGET_S,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        lines = res.stdout.splitlines()
        assert lines[0].split()[:9] == ["PATH", "KIND", "Loss%", "Snt", "Last", "Avg", "Best", "Wrst", "StDev"]
        rows = {ln.split()[0]: ln.split() for ln in lines[1:]}
        assert set(rows) == {"media/r1/p", "media/r2/p", "api/r1/p", "api/r2/p"}
        for row in rows.values():
            assert row[2:4] == ["0.0%", "40"]
        records = [json.loads(ln) for ln in record.read_text().splitlines()]
        assert len(records) == 160
        assert set(records[0]) == {"service", "region", "path", "seq", "sent", "received"}
        assert all(r["received"] is not None and r["received"] > r["sent"] for r in records)
        # pins were installed for the run and taken away after it
        assert "lookup 201" not in topo.ip("cr", "rule")
        c1 = topo.counters("tgw1")
        assert c1["from_r1"] >= 40 + 40 and c1["from_r2"] == 0
    finally:
        outs = [_stop(p) for p in procs]
    events = [[json.loads(line)["event"] for line in out.splitlines()] for out in outs]
    assert events == [[names.REFLECTOR_READY, names.REFLECTOR_STOPPED]] * 2, outs
    stopped = [json.loads(out.splitlines()[-1]) for out in outs]
    assert all(s["reflected"] == 40 for s in stopped), outs


def test_cli_probe_names_the_choices_for_an_unknown_path(topo: Topo, tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "bgpctl", "probe", "nowhere/p", "--policy", str(topo.policy_file(tmp_path))],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode != 0
    assert "no probed path matches 'nowhere/p'" in res.stderr and "r1/p" in res.stderr


# ------------------------------------------------------------------------------------- transmit stamps


def _user_send_times(probe: StampProbe, samples: Samples) -> dict[int, float]:
    """The user-space send time each STAMP probe carried (read just before its sendto())."""
    return {s.seq: stamp.unix_ns_from_ntp(probe._sent_ntp[s.seq % len(probe._sent_ntp)][1]) / 1e9 for s in samples}


def test_stamp_probes_use_the_kernels_transmit_time_over_veth(topo: Topo, pinned: Pinning) -> None:
    probe = StampProbe(source=SRC["r1"], target=TARGET, dscp=46, netns=topo.ns("cr"))
    samples, counters = asyncio.run(_probe(topo, probe, count=100, interval_s=0.01))
    assert counters["answered"] == 100 and counters[Problem.USER_TX_STAMP] == 0, counters
    user = _user_send_times(probe, samples)
    # veth stamps in its transmit routine, inside sendto(): after the user-space stamp, and well before
    # the reply (which is the kernel's receive time).
    assert all(user[s.seq] < s.sent for s in samples), [(s.sent - user[s.seq]) for s in samples]
    assert all(s.sent - user[s.seq] < 0.1 and s.rtt is not None and s.rtt > 0 for s in samples)


def test_icmp_probes_use_the_kernels_transmit_time_over_veth(topo: Topo, pinned: Pinning) -> None:
    probe = IcmpProbe(source=SRC["r1"], target=TARGET, netns=topo.ns("cr"))
    samples, counters = asyncio.run(_probe(topo, probe, count=50))
    assert counters["answered"] == 50 and counters[Problem.USER_TX_STAMP] == 0, counters
    assert probe._tx.kernel_at(49) == next(s.sent for s in samples if s.seq == 49)


def _stamps_without_transmit(sock: socket.socket) -> bool:
    """A kernel/device that accepts the option but never stamps a transmit: numbering, no TX_SOFTWARE."""
    flags = txstamp.SOF_TIMESTAMPING_SOFTWARE | txstamp.SOF_TIMESTAMPING_OPT_ID | txstamp.SOF_TIMESTAMPING_OPT_TSONLY
    sock.setsockopt(socket.SOL_SOCKET, txstamp.SO_TIMESTAMPING, flags)
    return True


@pytest.mark.parametrize(
    "enable", [lambda _sock: False, _stamps_without_transmit], ids=["option-refused", "no-stamps-come"]
)
def test_without_kernel_transmit_stamps_probes_fall_back_to_user_time_and_count_it(
    topo: Topo, pinned: Pinning, monkeypatch: pytest.MonkeyPatch, enable: Callable[[socket.socket], bool]
) -> None:
    monkeypatch.setattr("bgpctl.probe.datagram.enable_transmit_stamps", enable)
    probe = StampProbe(source=SRC["r1"], target=TARGET, netns=topo.ns("cr"))
    samples, counters = asyncio.run(_probe(topo, probe, count=60, interval_s=0.01))
    assert counters["answered"] == 60 and counters[Problem.USER_TX_STAMP] == 60, counters
    user = _user_send_times(probe, samples)
    assert all(abs(s.sent - user[s.seq]) < 1e-6 for s in samples)


def test_sends_the_kernel_refuses_after_numbering_them_leave_the_other_probes_stamps_right(
    topo: Topo, pinned: Pinning
) -> None:
    """An output-hook drop fails sendto() (EPERM) after the kernel gave the packet its OPT_ID number: the
    probe restarts the numbering, so no later stamp is paired with the wrong probe."""
    topo.nft(
        "cr",
        "-f",
        "-",
        input="table inet tbprb_tx {\n chain out {\n  type filter hook output priority 0; policy accept;\n"
        "  udp dport 862 numgen inc mod 4 == 1 drop\n }\n}\n",
    )
    probe = StampProbe(source=SRC["r1"], target=TARGET, netns=topo.ns("cr"))
    samples, counters = asyncio.run(_probe(topo, probe, count=80, interval_s=0.01))
    assert (counters["answered"], counters[Problem.SEND_FAILED]) == (60, 20), counters
    assert counters[Problem.USER_TX_STAMP] == 0, counters
    answered = [s for s in samples if s.received is not None]
    user = _user_send_times(probe, answered)
    assert all(user[s.seq] < s.sent < user[s.seq] + 0.1 for s in answered)
    assert all(probe._tx.kernel_at(s.seq) == s.sent for s in answered)
