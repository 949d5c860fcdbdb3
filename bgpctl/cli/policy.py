"""``bgpctl policy check|show|schema``: validate policy files, print them with defaults, export the schema.

Problems go to stderr as ``FILE:LINE FIELD.PATH: what is wrong (hint)``, one per line; a refused file
makes the command exit 3 (refused input, docs/cli.md). Other modules attach more sub-commands to the
:data:`policy` group.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import click
from ruamel.yaml import YAML

from bgpctl.errors import PolicyError
from bgpctl.policy.load import check_policy, summary
from bgpctl.policy.model import Policy

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@click.group()
def policy() -> None:
    """Check, show and plan policy files."""


def _fail(e: PolicyError) -> None:
    for p in e.problems:
        click.echo(p.render(), err=True)


@policy.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
def check(files: tuple[str, ...]) -> None:
    """Validate policy FILES; print 'FILE: ok (...)' for each good one, every problem of each bad one.

    Exits 0 only if every file is good, 3 (refused input) otherwise. Warnings (a secret's file or variable missing
    now) do not fail the check: the daemon reads secrets when it starts.
    """
    failed = False
    for name in files:
        try:
            checked = check_policy(name)
        except PolicyError as e:
            _fail(e)
            failed = True
            continue
        for w in checked.warnings:
            click.echo(w.render(), err=True)
        click.echo(f"{name}: ok ({summary(checked.policy)})")
    if failed:
        sys.exit(PolicyError.exit_code)


def dump_yaml(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def effective(policy_: Policy, *, defaults: bool = True) -> dict[str, Any]:
    """The policy as YAML-ready data, by alias; with ``defaults`` every unset field shows its default."""
    return policy_.model_dump(mode="json", by_alias=True, exclude_unset=not defaults)


@policy.command("show")
@click.option(
    "--effective", "show_effective", is_flag=True, help="include every default (what the daemon actually runs with)"
)
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
def show(file: str, show_effective: bool) -> None:
    """Print the validated policy FILE as YAML; with --effective, with defaults applied.

    Secrets are never in a policy (only where to find them), so nothing is hidden.
    """
    try:
        checked = check_policy(file)
    except PolicyError as e:
        _fail(e)
        sys.exit(PolicyError.exit_code)
    click.echo(dump_yaml(effective(checked.policy, defaults=show_effective)), nl=False)


def schema() -> dict[str, Any]:
    """The policy's JSON Schema (draft 2020-12), by alias: what editors use to complete and check files."""
    out: dict[str, Any] = {"$schema": SCHEMA_DIALECT}
    out.update(Policy.model_json_schema(by_alias=True))
    out["title"] = "bgpctl policy"
    return out


@policy.command("schema")
def schema_cmd() -> None:
    """Print the JSON Schema of policy files (draft 2020-12) for editors, e.g. yaml-language-server."""
    click.echo(json.dumps(schema(), indent=2))
