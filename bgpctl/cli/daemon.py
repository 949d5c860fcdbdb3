"""``bgpctl daemon --policy FILE``: the controller, in the foreground."""

from __future__ import annotations

from pathlib import Path

import click

from bgpctl.listen import parse_listen


def _check_listen(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The shape of ADDR:PORT, refused as a usage error (exit 2) before anything starts; whether it can be
    bound is found out when the daemon binds it."""
    if value is None:
        return None
    try:
        parse_listen(value)
    except ValueError as e:
        raise click.BadParameter(str(e), ctx, param) from None
    return value


@click.command("daemon")
@click.option(
    "--policy",
    "policy_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Policy file (checked first: a bad one is refused whole).",
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Run directory: ExaBGP config (0600), API socket, lock. Default: speaker.exabgp.run_dir.",
)
@click.option(
    "--metrics",
    "metrics_listen",
    metavar="ADDR:PORT",
    default=None,
    callback=_check_listen,
    help="Serve Prometheus metrics here (e.g. 127.0.0.1:9477, [::1]:9477).",
)
@click.option(
    "--withdraw-on-exit",
    is_flag=True,
    help="Withdraw every route before stopping (default: keep them; graceful restart holds them).",
)
@click.option(
    "--record",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Append every settled probe sample to this JSONL file (for `bgpctl replay`).",
)
@click.option("--log-format", type=click.Choice(["json", "console", "auto"]), default="auto", show_default=True)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
def daemon(
    *,
    policy_file: Path,
    run_dir: Path | None,
    metrics_listen: str | None,
    withdraw_on_exit: bool,
    record: Path | None,
    log_format: str,
    log_level: str,
) -> None:
    """Run the controller: probe every path, decide, announce through ExaBGP. Stops on SIGTERM/SIGINT."""
    from bgpctl import log as logging_setup  # noqa: PLC0415 (`bgpctl daemon --help` starts fast without these)
    from bgpctl.daemon.run import Options, run  # noqa: PLC0415

    logging_setup.configure(json={"json": True, "console": False, "auto": None}[log_format], level=log_level)
    run(
        Options(
            policy_file=policy_file,
            run_dir=run_dir,
            metrics_listen=metrics_listen,
            withdraw_on_exit=withdraw_on_exit,
            record=record,
        ),
        logging_setup.get("bgpctl"),
    )
