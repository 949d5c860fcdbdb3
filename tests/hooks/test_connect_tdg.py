"""deploy/hooks/connect-traffic-distribution against botocore's own Connect service model: every request it
builds validates there (ParamValidator, and a Stubber client that checks the exact parameters), and bad
input is one line and exit 3. AWS itself cannot be reached from here."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber
from botocore.validate import ParamValidator
from click.testing import CliRunner

from bgpctl.errors import EXIT_REFUSED
from bgpctl.hooks import connect_tdg
from bgpctl.hooks.connect_tdg import Config, config, distribution, main, run

REPO = Path(__file__).resolve().parents[2]
TDG = "12345678-90ab-cdef-1234-567890abcdef"
ARN = f"arn:aws:connect:us-east-1:123456789012:traffic-distribution-group/{TDG}"
FLAGS = [
    "--tdg",
    TDG,
    "--region",
    "use1=us-east-1",
    "--region",
    "usw2=us-west-2",
    "--split",
    "us-east-1=60,us-west-2=40",
]


def event(type_: str, region: str, usable: list[str]) -> str:
    return json.dumps(
        {
            "version": 1,
            "id": "0" * 32,
            "time": "2026-12-01T07:00:00.000000Z",
            "type": type_,
            "host": "cr",
            "payload": {"region": region, "usable_regions": usable, "lost_regions": [], "paths": []},
        }
    )


@functools.cache
def _session() -> botocore.session.Session:
    """One botocore session for the module: its loader reads the Connect model (a large JSON file) once."""
    return botocore.session.get_session()


def model_problems(params: dict[str, Any]) -> list[str]:
    """What botocore's Connect model says of the parameters (types, required members, ranges, lengths) and
    the Id pattern (the validator leaves patterns to the service)."""
    model = _session().get_service_model("connect")
    op = model.operation_model(connect_tdg.OPERATION)
    report = ParamValidator().validate(params, op.input_shape)
    problems = [report.generate_report()] if report.has_errors() else []
    pattern = op.input_shape.members["Id"].metadata["pattern"]
    if not re.fullmatch(pattern, params["Id"]):
        problems.append(f"Id {params['Id']!r} does not match {pattern}")
    return problems


def stubbed(expected: dict[str, Any]) -> tuple[Any, Stubber]:
    client = _session().create_client(
        "connect", region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="not-a-secret"
    )
    stub = Stubber(client)
    stub.add_response(
        "update_traffic_distribution", {"ResponseMetadata": {"RequestId": "req-1"}}, expected_params=expected
    )
    stub.activate()
    return client, stub


def cfg(tdg: str = TDG) -> Config:
    return config(tdg, ("use1=us-east-1", "usw2=us-west-2"), "us-east-1=60,us-west-2=40", None)


@pytest.mark.parametrize(
    ("type_", "region", "usable", "shares"),
    [
        ("region.lost", "use1", ["usw2"], {"us-east-1": 0, "us-west-2": 100}),
        ("region.lost", "usw2", ["use1"], {"us-east-1": 100, "us-west-2": 0}),
        ("region.regained", "use1", ["use1", "usw2"], {"us-east-1": 60, "us-west-2": 40}),
    ],
)
def test_lost_and_regained_requests_validate_against_the_service_model(
    type_: str, region: str, usable: list[str], shares: dict[str, int]
) -> None:
    want = {
        "Id": ARN,
        "TelephonyConfig": {"Distributions": [{"Region": r, "Percentage": p} for r, p in shares.items()]},
    }
    assert model_problems(want) == []
    client, stub = stubbed(want)
    out = run(cfg(ARN), event(type_, region, usable), dry_run=False, client=lambda c: client)
    stub.assert_no_pending_responses()  # called once, with exactly these parameters
    assert out == {"operation": "UpdateTrafficDistribution", "parameters": want, "request_id": "req-1"}


def test_dry_run_prints_the_request_and_calls_nothing() -> None:
    def no_client(c: Config) -> Any:
        raise AssertionError("a dry run must not make a client")

    out = run(cfg(), event("region.lost", "use1", ["usw2"]), dry_run=True, client=no_client)
    assert out["operation"] == "UpdateTrafficDistribution" and out["dry_run"] is True
    assert model_problems(out["parameters"]) == []
    result = CliRunner().invoke(main, [*FLAGS, "--dry-run"], input=event("region.lost", "use1", ["usw2"]))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == out


def test_the_shipped_script_runs_as_an_exec_hook_would() -> None:
    script = REPO / "deploy" / "hooks" / "connect-traffic-distribution"
    done = subprocess.run(
        [sys.executable, str(script), *FLAGS, "--dry-run"],
        input=event("region.regained", "use1", ["use1", "usw2"]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    params = json.loads(done.stdout)["parameters"]
    assert params["TelephonyConfig"]["Distributions"] == [
        {"Region": "us-east-1", "Percentage": 60},
        {"Region": "us-west-2", "Percentage": 40},
    ]


def test_other_events_and_nowhere_to_go_change_nothing() -> None:
    def no_client(c: Config) -> Any:
        raise AssertionError("nothing to change")

    assert run(cfg(), event("route.change", "use1", []), dry_run=False, client=no_client)["operation"] is None
    out = run(cfg(), event("region.lost", "usw2", []), dry_run=False, client=no_client)
    assert out["operation"] is None and out["result"].startswith("unchanged: no region of the split is usable")


SHORT = {"us-east-1": "use1", "us-west-2": "usw2", "eu-west-2": "euw2"}


@pytest.mark.parametrize(
    ("split", "usable", "want"),
    [
        ("us-east-1=50,us-west-2=50", ["use1", "usw2"], {"us-east-1": 50, "us-west-2": 50}),
        ("us-east-1=100,us-west-2=0", ["usw2"], {"us-east-1": 0, "us-west-2": 100}),  # a 0 survivor takes all
        (
            "us-east-1=33,us-west-2=33,eu-west-2=34",
            ["use1", "usw2"],
            {"us-east-1": 50, "us-west-2": 50, "eu-west-2": 0},
        ),
        (
            "us-east-1=20,us-west-2=30,eu-west-2=50",
            ["use1", "euw2"],
            {"us-east-1": 29, "us-west-2": 0, "eu-west-2": 71},
        ),
        (
            "us-east-1=34,us-west-2=33,eu-west-2=33",
            ["use1", "usw2", "euw2"],
            {"us-east-1": 34, "us-west-2": 33, "eu-west-2": 33},
        ),
    ],
)
def test_survivors_take_the_lost_share_in_proportion_whole_percents(
    split: str, usable: list[str], want: dict[str, int]
) -> None:
    regions = tuple(f"{SHORT[r.split('=')[0]]}={r.split('=')[0]}" for r in split.split(","))
    dist = distribution(config(TDG, regions, split, "us-east-1"), usable)
    assert dist is not None
    assert {d["Region"]: d["Percentage"] for d in dist} == want
    assert model_problems({"Id": TDG, "TelephonyConfig": {"Distributions": dist}}) == []


@pytest.mark.parametrize(
    ("flags", "stdin", "message"),
    [
        (
            ["--region", "use1=us-east-1", "--region", "usw2=us-west-2", "--split", "us-east-1=50,us-west-2=50"],
            "",
            "no traffic distribution group: give --tdg",
        ),
        ([*FLAGS[:6], "--split", "us-east-1=60,us-west-2=50"], "", "--split: the shares sum to 110, not 100"),
        ([*FLAGS[:6], "--split", "us-east-1=50,eu-west-1=50"], "", "--split: unknown region 'eu-west-1'"),
        (
            [*FLAGS[:2], "--region", "use1=us-east-1", "--region", "usw2=mars-1", "--split", "x=1"],
            "",
            "--region: 'mars-1' is not an AWS region",
        ),
        (["--tdg", "tdg-1", *FLAGS[2:]], "", "--tdg 'tdg-1' is not a traffic distribution group id"),
        (FLAGS, event("region.lost", "euw2", ["use1"]), "the event names region 'euw2', which --region does not map"),
        (FLAGS, "not json", "standard input is not a JSON event"),
    ],
)
def test_bad_input_is_one_line_and_exit_3(flags: list[str], stdin: str, message: str) -> None:
    result = CliRunner().invoke(main, [*flags, "--dry-run"], input=stdin)
    assert result.exit_code == EXIT_REFUSED, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"connect-traffic-distribution: {message}"), line


def test_an_aws_error_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _session().create_client(
        "connect", region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="not-a-secret"
    )
    stub = Stubber(client)
    stub.add_client_error("update_traffic_distribution", "AccessDeniedException", "not allowed", 403)
    stub.activate()
    monkeypatch.setattr(connect_tdg, "boto3_client", lambda c: client)
    result = CliRunner().invoke(
        main, [*FLAGS, "--aws-region", "us-east-1"], input=event("region.lost", "use1", ["usw2"])
    )
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert "UpdateTrafficDistribution failed: AccessDeniedException" in line and "not allowed" in line


def test_without_an_endpoint_a_real_call_is_refused_before_anything_is_read() -> None:
    result = CliRunner(env={"AWS_REGION": None}).invoke(main, FLAGS, input=event("region.lost", "use1", ["usw2"]))
    assert result.exit_code == EXIT_REFUSED
    assert result.stderr == (
        "connect-traffic-distribution: no Connect endpoint: give --aws-region (or AWS_REGION), or --tdg as an ARN\n"
    )
