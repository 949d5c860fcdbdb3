"""``bgpctl status`` and ``bgpctl routes``: ask the running daemon through its control socket.

The socket is ``control.sock`` in the daemon's run directory: ``--run-dir DIR`` (environment
``BGPCTL_RUN_DIR``), else the run directory of ``--policy FILE`` (environment ``BGPCTL_POLICY``, default
/etc/bgpctl/policy.yaml, as the systemd unit runs it), else /run/bgpctl.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from bgpctl.control import client, protocol

DEFAULT_POLICY = Path("/etc/bgpctl/policy.yaml")
FALLBACK_RUN_DIR = Path("/run/bgpctl")


def find_run_dir(run_dir: Path | None, policy_file: Path | None) -> Path:
    """Where the daemon's socket is, as the daemon decides it (see the module docstring)."""
    if run_dir is not None:
        return run_dir
    if policy_file is None and not DEFAULT_POLICY.is_file():
        return FALLBACK_RUN_DIR
    from bgpctl.policy.load import load_policy  # noqa: PLC0415 (only when the policy must be read)

    return Path(load_policy(policy_file or DEFAULT_POLICY).speaker.exabgp.run_dir)


def _where(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--policy",
        "policy_file",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="BGPCTL_POLICY",
        default=None,
        help=f"Find the socket in this policy's run directory (default {DEFAULT_POLICY}).",
    )(f)
    f = click.option(
        "--run-dir",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="BGPCTL_RUN_DIR",
        default=None,
        help="The daemon's run directory (its --run-dir); wins over --policy.",
    )(f)
    f = click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (one stable shape).")(f)
    f = click.option(
        "--timeout",
        type=click.FloatRange(0.1, 300),
        default=client.DEFAULT_TIMEOUT_S,
        show_default=True,
        help="Seconds to wait for the daemon.",
    )(f)
    return f


def _print(result: Mapping[str, Any], as_json: bool, text: Callable[[Mapping[str, Any]], list[str]]) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        click.echo("\n".join(text(result)))


@click.command("status")
@_where
@click.option(
    "--decisions",
    "-n",
    type=click.IntRange(0, protocol.MAX_DECISIONS),
    default=protocol.DEFAULT_DECISIONS,
    show_default=True,
    help="How many recent decisions to show.",
)
def status(*, run_dir: Path | None, policy_file: Path | None, as_json: bool, timeout: float, decisions: int) -> None:
    """Ask the running daemon: sessions, ExaBGP, every path's health and stats, overrides, last decisions."""
    from bgpctl.control.render import status_text  # noqa: PLC0415

    where = find_run_dir(run_dir, policy_file)
    _print(client.call(where, "status", {"decisions": decisions}, timeout_s=timeout), as_json, status_text)


def _prefix(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(protocol.prefix_filter(value))
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command("routes")
@_where
@click.option("--peer", metavar="PEER", default=None, help="Only the routes announced to this peer.")
@click.option(
    "--prefix",
    metavar="ADDR|PREFIX",
    default=None,
    callback=_prefix,
    help="Only routes overlapping this address or prefix (203.0.113.10, 203.0.113.0/24).",
)
def routes(
    *,
    run_dir: Path | None,
    policy_file: Path | None,
    as_json: bool,
    timeout: float,
    peer: str | None,
    prefix: str | None,
) -> None:
    """Ask the running daemon what it announces to whom, every attribute and the rule behind each route."""
    from bgpctl.control.render import routes_text  # noqa: PLC0415

    args = {k: v for k, v in (("peer", peer), ("prefix", prefix)) if v is not None}
    where = find_run_dir(run_dir, policy_file)
    _print(client.call(where, "routes", args, timeout_s=timeout), as_json, routes_text)
