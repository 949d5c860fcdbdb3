"""``bgpctl lab meter`` / ``bgpctl lab responder``: arguments and errors (no namespaces needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bgpctl.cli.main import cli
from bgpctl_lab.cli.lab_meter import summary_lines
from bgpctl_lab.meter_report import Gap, MeterReport, MeterSettings, RegionSeen, RttStats, SecondLoss


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    res = CliRunner().invoke(cli, ["lab", *args], env=env)
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--to", "203.0.113.10"], "--from NODE (e.g. --from agents, in --lab NAME)"),
        (["--netns", "x", "--lab", "y", "--from", "agents", "--to", "203.0.113.10"], "not both"),
        (["--netns", "tbmet_nope", "--to", "connect.example"], "not an IP address"),
    ],
)
def test_meter_refuses_what_it_cannot_bound_or_place(args: list[str], needle: str) -> None:
    code, _, err = _run("meter", *args)
    assert code == 1 and needle in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--seconds", "0"], "Invalid value for '--seconds': 0.0 is not in the range 0<x<=3600.0"),
        (["--rate", "100000"], "Invalid value for '--rate': 100000.0 is not in the range 1<=x<=1000.0"),
    ],
)
def test_meter_bounds_are_usage_errors(args: list[str], needle: str) -> None:
    code, _, err = _run("meter", "--netns", "tbmet_nope", "--to", "203.0.113.10", *args)
    assert code == 2 and needle in err


def test_meter_names_a_lab_that_is_not_up(tmp_path: Path) -> None:
    code, _, err = _run(
        "meter",
        "--lab",
        "nolab",
        "--from",
        "agents",
        "--to",
        "203.0.113.10",
        env={"BGPCTL_LAB_STATE_ROOT": str(tmp_path)},
    )
    assert code == 1 and "nolab" in err and "bgpctl lab up" in err


def test_text_summary_shows_gap_regions_and_lossy_seconds() -> None:
    s = MeterSettings(
        netns="agents",
        target="203.0.113.10",
        port=9000,
        flows=4,
        spacing_ms=2.0,
        rate_pps=500.0,
        fine=True,
        dscp=46,
        seconds=2.0,
        count=1000,
        drain_s=1.0,
    )
    r = MeterReport(
        settings=s,
        started_unix=0.0,
        duration_s=2.0,
        sent=1000,
        received=900,
        lost=100,
        loss_pct=10.0,
        duplicates=0,
        reordered=0,
        send_errors=0,
        longest_gap_ms=202.0,
        longest_gap=Gap(ms=202.0, start_s=0.5, end_s=0.702, after_seq=250, before_seq=351),
        longest_gap_raw_ms=202.4,
        longest_flow_gap_ms=208.0,
        longest_flow_gap_flow=2,
        per_second_loss=[
            SecondLoss(second=0, sent=500, lost=100, loss_pct=20.0),
            SecondLoss(second=1, sent=500, lost=0, loss_pct=0.0),
        ],
        rtt=RttStats(min_ms=1.0, p50_ms=1.0, p95_ms=1.0, max_ms=1.0, mean_ms=1.0),
        server_hold_ms_p50=0.05,
        jitter_ms=0.1,
        mos=3.9,
        regions={
            "use1": RegionSeen(answered=250, first_s=0.0, last_s=0.5),
            "usw2": RegionSeen(answered=650, first_s=0.702, last_s=2.0),
        },
        flows=[],
        send_late_p99_ms=0.0,
        send_late_max_ms=0.0,
        user_tx_stamps=0,
        tx_delay_max_ms=0.01,
        realtime_sched=True,
        kernel_rx_timestamps=True,
    )
    text = "\n".join(summary_lines(r))
    assert "1000 sent, 900 received, 100 lost (10.00 %)" in text
    assert "longest gap 202.0 ms (at 0.500-0.702 s" in text and "worst flow's longest gap 208.0 ms" in text
    assert "region use1: 250 answers" in text and "region usw2: 650 answers, 0.702-2.000 s" in text
    assert "loss per second: 0s:100/500" in text and "1s:" not in text
    assert "MOS 3.90" in text
    assert "kernel transmit stamp" not in text
    counted = "\n".join(summary_lines(r.model_copy(update={"user_tx_stamps": 3})))
    assert "3 echoes timed from the user-space send time (no kernel transmit stamp)" in counted


def test_help_lists_the_bounds() -> None:
    code, out, _ = _run("meter", "--help")
    assert code == 0 and all(o in out for o in ("--seconds", "--count", "--fine", "--flows", "--json"))
    code, out, _ = _run("responder", "--help")
    assert code == 0 and all(o in out for o in ("--region", "--bind", "--seconds", "--hold-ms"))
