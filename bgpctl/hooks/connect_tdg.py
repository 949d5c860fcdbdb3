"""``connect-traffic-distribution``: an exec hook that moves an Amazon Connect traffic distribution group's
telephony share to the regions bgpctl can still reach, and back.

It reads one bgpctl hook event (JSON, bgpctl/schemas/hook-event.schema.json) on standard input:

* ``region.lost`` / ``region.regained``: the group's telephony split becomes the configured ``--split``
  restricted to the AWS regions whose bgpctl region is usable (the event's ``payload.usable_regions``):
  a lost region's share goes to the surviving ones in proportion to their configured shares (whole
  percents, summing to 100); once every region is usable again that is the configured split itself.
  When no region of the split is usable nothing is changed (there is nowhere to move the calls to).
* any other event type: ignored (exit 0), so the hook may subscribe to more.

It calls UpdateTrafficDistribution (``TelephonyConfig.Distributions``) through boto3 (``pip install
'bgpctl[aws]'``); ``--dry-run`` prints the request (operation and parameters, JSON) instead. Every
setting is a flag or an environment variable (docs/hooks.md). Bad input (an unknown region, a split not
summing to 100, no group id, an event that is not JSON) is one line on stderr and exit 3; an AWS error
is one line and exit 1.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import click

from bgpctl import events
from bgpctl.errors import EXIT_FAILURE, EXIT_REFUSED

OPERATION = "UpdateTrafficDistribution"
METHOD = "update_traffic_distribution"
_TDG = re.compile(
    r"(arn:(aws|aws-us-gov):connect:(?P<region>[a-z]{2}-[a-z-]+-[0-9]):[0-9]{1,20}:traffic-distribution-group/)?"
    r"[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}"
)
"""The Id pattern of Connect's service model (UpdateTrafficDistributionRequest.Id)."""
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+){1,2}-[0-9]")
_BGPCTL_REGION = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class BadInput(Exception):
    """One clear line: what is wrong and what to do."""


@dataclass(frozen=True)
class Config:
    tdg: str
    regions: Mapping[str, str]  # bgpctl region -> AWS region
    split: Mapping[str, int]  # AWS region -> percent of telephony when every region is usable
    aws_region: str | None  # the endpoint; default: the group ARN's region


def _pairs(text: str, what: str, example: str) -> list[tuple[str, str]]:
    out = []
    for item in (p.strip() for p in text.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise BadInput(f"{what}: {item!r} is not NAME=VALUE; write e.g. {example}")
        out.append((key.strip(), value.strip()))
    return out


def parse_regions(texts: Sequence[str]) -> dict[str, str]:
    example = "--region use1=us-east-1 --region usw2=us-west-2"
    regions: dict[str, str] = {}
    for text in texts:
        for name, aws in _pairs(text, "--region", example):
            if not _BGPCTL_REGION.fullmatch(name):
                raise BadInput(f"--region: {name!r} is not a bgpctl region name (the policy's regions: keys)")
            if not _AWS_REGION.fullmatch(aws):
                raise BadInput(f"--region: {aws!r} is not an AWS region; write e.g. {name}=us-east-1")
            if name in regions:
                raise BadInput(f"--region: {name} is given twice; give each bgpctl region once")
            regions[name] = aws
    if len(regions) < 2:
        raise BadInput(f"--region: map at least two bgpctl regions to AWS regions, e.g. {example}")
    if len(set(regions.values())) != len(regions):
        raise BadInput("--region: two bgpctl regions map to one AWS region; a group spans distinct regions")
    return regions


def parse_split(text: str, regions: Mapping[str, str]) -> dict[str, int]:
    aws = sorted(set(regions.values()))
    example = ",".join(f"{r}={100 // len(aws) + (1 if i < 100 % len(aws) else 0)}" for i, r in enumerate(aws))
    split: dict[str, int] = {}
    for region, value in _pairs(text, "--split", example):
        if region not in aws:
            raise BadInput(f"--split: unknown region {region!r}; --region maps only {', '.join(aws)}")
        if not value.isascii() or not value.isdigit() or int(value) > 100:
            raise BadInput(f"--split: {region}={value} is not a whole percent 0-100")
        if region in split:
            raise BadInput(f"--split: {region} is given twice")
        split[region] = int(value)
    missing = [r for r in aws if r not in split]
    if missing:
        raise BadInput(f"--split: no share for {', '.join(missing)}; give every mapped region one, e.g. {example}")
    if sum(split.values()) != 100:
        raise BadInput(f"--split: the shares sum to {sum(split.values())}, not 100; e.g. {example}")
    return split


def config(tdg: str | None, regions: Sequence[str], split: str | None, aws_region: str | None) -> Config:
    if not tdg:
        raise BadInput("no traffic distribution group: give --tdg ID-or-ARN (or set BGPCTL_CONNECT_TDG)")
    m = _TDG.fullmatch(tdg)
    if m is None:
        raise BadInput(f"--tdg {tdg!r} is not a traffic distribution group id (a UUID) or its ARN")
    if not regions:
        raise BadInput("no regions: give --region use1=us-east-1 --region usw2=us-west-2 (or BGPCTL_CONNECT_REGIONS)")
    mapped = parse_regions(regions)
    if not split:
        raise BadInput("no split: give --split us-east-1=50,us-west-2=50 (or set BGPCTL_CONNECT_SPLIT)")
    endpoint = aws_region or m.group("region")
    if endpoint is not None and not _AWS_REGION.fullmatch(endpoint):
        raise BadInput(f"--aws-region {endpoint!r} is not an AWS region, e.g. us-east-1")
    return Config(tdg, mapped, parse_split(split, mapped), endpoint)


def distribution(cfg: Config, usable: Sequence[str]) -> list[dict[str, Any]] | None:
    """The telephony distribution for the usable bgpctl regions; None when no region of the split is usable.

    Survivors keep their configured shares and take the others' in proportion to them (evenly if all of
    theirs are 0); whole percents by largest remainder, ties to the region listed first."""
    alive = sorted({cfg.regions[r] for r in usable if r in cfg.regions})
    if not alive:
        return None
    weights = {r: cfg.split[r] for r in alive}
    if sum(weights.values()) == 0:
        weights = dict.fromkeys(alive, 1)
    total = sum(weights.values())
    exact = {r: 100 * w / total for r, w in weights.items()}
    shares = {r: int(v) for r, v in exact.items()}
    for r in sorted(alive, key=lambda r: (-(exact[r] - shares[r]), alive.index(r)))[: 100 - sum(shares.values())]:
        shares[r] += 1
    return [{"Region": r, "Percentage": shares.get(r, 0)} for r in sorted(cfg.split)]


def read_event(text: str) -> dict[str, Any]:
    try:
        event = json.loads(text)
    except ValueError as e:
        raise BadInput(f"standard input is not a JSON event ({e}); bgpctl's exec hooks send one") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise BadInput(
            "standard input is not a bgpctl hook event: no 'type' (see bgpctl/schemas/hook-event.schema.json)"
        )
    return event


def request_for(cfg: Config, event: Mapping[str, Any]) -> dict[str, Any] | str:
    """The UpdateTrafficDistribution parameters for ``event``, or why nothing is to be done."""
    if event["type"] not in (events.REGION_LOST, events.REGION_REGAINED):
        return f"ignored: {event['type']} (this hook acts on region.lost and region.regained)"
    payload = event.get("payload")
    region = payload.get("region") if isinstance(payload, dict) else None
    usable = payload.get("usable_regions") if isinstance(payload, dict) else None
    if not isinstance(region, str) or not isinstance(usable, list) or not all(isinstance(u, str) for u in usable):
        raise BadInput(f"the {event['type']} event has no payload.region and payload.usable_regions")
    if region not in cfg.regions:
        raise BadInput(
            f"the event names region {region!r}, which --region does not map; "
            f"add --region {region}=AWS-REGION (mapped: {', '.join(sorted(cfg.regions))})"
        )
    dist = distribution(cfg, usable)
    if dist is None:
        return f"unchanged: no region of the split is usable ({event['type']} {region}), nowhere to move calls to"
    return {"Id": cfg.tdg, "TelephonyConfig": {"Distributions": dist}}


class ConnectClient(Protocol):
    def update_traffic_distribution(self, **kwargs: Any) -> Mapping[str, Any]: ...


def boto3_client(cfg: Config) -> ConnectClient:
    try:
        import boto3  # noqa: PLC0415 (the optional extra: imported only to call AWS)
    except ImportError:
        raise RuntimeError("boto3 is not installed: pip install 'bgpctl[aws]' (or use --dry-run)") from None
    return boto3.client("connect", region_name=cfg.aws_region)  # type: ignore[no-any-return]


def run(
    cfg: Config, event_text: str, *, dry_run: bool, client: Callable[[Config], ConnectClient] = boto3_client
) -> dict[str, Any]:
    """What the command prints (one JSON object): the request, and the response unless ``dry_run``."""
    req = request_for(cfg, read_event(event_text))
    if isinstance(req, str):
        return {"operation": None, "result": req}
    out: dict[str, Any] = {"operation": OPERATION, "parameters": req}
    if dry_run:
        out["dry_run"] = True
        return out
    response = client(cfg).update_traffic_distribution(**req)
    meta = response.get("ResponseMetadata", {}) if isinstance(response, Mapping) else {}
    out["request_id"] = meta.get("RequestId")
    return out


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--tdg", envvar="BGPCTL_CONNECT_TDG", help="traffic distribution group id or ARN [BGPCTL_CONNECT_TDG]")
@click.option(
    "--region",
    "regions",
    multiple=True,
    envvar="BGPCTL_CONNECT_REGIONS",
    help="bgpctl region=AWS region, e.g. use1=us-east-1; repeat, or comma-separate [BGPCTL_CONNECT_REGIONS]",
)
@click.option(
    "--split",
    envvar="BGPCTL_CONNECT_SPLIT",
    help="telephony %% per AWS region when all are usable, e.g. us-east-1=50,us-west-2=50 [BGPCTL_CONNECT_SPLIT]",
)
@click.option(
    "--aws-region", envvar="AWS_REGION", help="the Connect endpoint; default: the group ARN's region [AWS_REGION]"
)
@click.option("--dry-run", is_flag=True, help="print the API request (operation and parameters, JSON); call nothing")
def main(tdg: str | None, regions: tuple[str, ...], split: str | None, aws_region: str | None, dry_run: bool) -> None:
    """Move an Amazon Connect traffic distribution group's telephony to the regions bgpctl can reach.

    Reads one bgpctl hook event on standard input (an exec hook: docs/hooks.md)."""
    try:
        cfg = config(tdg, regions, split, aws_region)
        if cfg.aws_region is None and not dry_run:
            raise BadInput("no Connect endpoint: give --aws-region (or AWS_REGION), or --tdg as an ARN")
        out = run(cfg, sys.stdin.read(), dry_run=dry_run, client=boto3_client)
    except BadInput as e:
        click.echo(f"connect-traffic-distribution: {e}", err=True)
        sys.exit(EXIT_REFUSED)
    except Exception as e:  # boto3/botocore errors: one line, not a traceback
        click.echo(f"connect-traffic-distribution: {OPERATION} failed: {type(e).__name__}: {e}", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(json.dumps(out, sort_keys=True))
