"""``bgpctl status``, ``routes``, the runtime overrides (``drain``, ``undrain``, ``pin``, ``unpin``,
``freeze``, ``thaw``, ``weight``, ``unweight``) and ``reload``: ask the running daemon through its control socket.

The socket is ``control.sock`` in the daemon's run directory: ``--run-dir DIR`` (environment
``BGPCTL_RUN_DIR``), else the run directory of ``--policy FILE`` (environment ``BGPCTL_POLICY``, default
/etc/bgpctl/policy.yaml, as the systemd unit runs it), else /run/bgpctl.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from bgpctl.control import client, protocol
from bgpctl.core import override_args as overrides

DEFAULT_POLICY = Path("/etc/bgpctl/policy.yaml")
FALLBACK_RUN_DIR = Path("/run/bgpctl")


def find_run_dir(run_dir: Path | None, policy_file: Path | None, *, lenient: bool = False) -> Path:
    """Where the daemon's socket is, as the daemon decides it (see the module docstring). A policy file with
    problems is refused here (exit 3, naming them), except with ``lenient`` (``reload``: the file is being
    changed, and the daemon is to judge it): then its ``speaker.exabgp.run_dir`` if that reads as an absolute
    path, else the default."""
    if run_dir is not None:
        return run_dir
    if policy_file is None and not DEFAULT_POLICY.is_file():
        return FALLBACK_RUN_DIR
    # only when the policy must be read
    from bgpctl.errors import PolicyError  # noqa: PLC0415
    from bgpctl.policy.load import check_policy_text, read_policy_text  # noqa: PLC0415

    path = policy_file or DEFAULT_POLICY
    text = read_policy_text(path)  # a file that cannot be read at all: its one-line error, exit 3
    try:
        return Path(check_policy_text(text, str(path)).policy.speaker.exabgp.run_dir)
    except PolicyError:
        if not lenient:
            raise
        return run_dir_of_text(text, str(path))


def run_dir_of_text(text: str, filename: str) -> Path:
    """``speaker.exabgp.run_dir`` of a policy's text that does not check, if it reads as an absolute path."""
    from bgpctl.policy.yamlsource import parse_yaml  # noqa: PLC0415

    data: Any = parse_yaml(text, filename).data
    for key in ("speaker", "exabgp", "run_dir"):
        data = data.get(key) if isinstance(data, dict) else None
    if isinstance(data, str) and data.startswith("/") and "\x00" not in data:
        return Path(data)
    return FALLBACK_RUN_DIR


@dataclass(frozen=True)
class Daemon:
    """The running daemon as the options common to every verb name it: where its socket is, how long to
    wait, and how to print the answer."""

    run_dir: Path | None
    policy_file: Path | None
    as_json: bool
    timeout: float

    def ask(
        self,
        verb: str,
        args: Mapping[str, Any],
        text: Callable[[Mapping[str, Any]], list[str]],
        *,
        lenient: bool = False,
    ) -> None:
        """Send ``verb`` with ``args`` (None values left out) and print the answer: JSON, or ``text`` of it."""
        where = find_run_dir(self.run_dir, self.policy_file, lenient=lenient)
        sent = {k: v for k, v in args.items() if v is not None}
        result = client.call(where, verb, sent, timeout_s=self.timeout)
        click.echo(json.dumps(result, indent=2) if self.as_json else "\n".join(text(result)))

    def change(self, verb: str, args: Mapping[str, Any]) -> None:
        """An override verb: its answer printed as a change."""
        from bgpctl.control.render import change_text  # noqa: PLC0415

        self.ask(verb, args, change_text)


def _where(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options every verb has (--policy, --run-dir, --json, --timeout), given to ``f`` as ``daemon``."""

    @functools.wraps(f)
    def command(*, run_dir: Path | None, policy_file: Path | None, as_json: bool, timeout: float, **kw: Any) -> Any:
        return f(daemon=Daemon(run_dir, policy_file, as_json, timeout), **kw)

    g: Callable[..., Any] = command
    g = click.option(
        "--policy",
        "policy_file",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="BGPCTL_POLICY",
        default=None,
        help=f"Find the socket in this policy's run directory (default {DEFAULT_POLICY}).",
    )(g)
    g = click.option(
        "--run-dir",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="BGPCTL_RUN_DIR",
        default=None,
        help="The daemon's run directory (its --run-dir); wins over --policy.",
    )(g)
    g = click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON (one stable shape).")(g)
    g = click.option(
        "--timeout",
        type=click.FloatRange(0.1, 300),
        default=client.DEFAULT_TIMEOUT_S,
        show_default=True,
        help="Seconds to wait for the daemon.",
    )(g)
    return g


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
def status(*, daemon: Daemon, decisions: int) -> None:
    """Ask the running daemon: sessions, ExaBGP, every path's health and stats, overrides, last decisions."""
    from bgpctl.control.render import status_text  # noqa: PLC0415

    daemon.ask("status", {"decisions": decisions}, status_text)


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
def routes(*, daemon: Daemon, peer: str | None, prefix: str | None) -> None:
    """Ask the running daemon what it announces to whom, every attribute and the rule behind each route."""
    from bgpctl.control.render import routes_text  # noqa: PLC0415

    daemon.ask("routes", {"peer": peer, "prefix": prefix}, routes_text)


# --------------------------------------------------------------------------------------------
# runtime overrides


def _checked(check: Callable[[Any], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback from one of bgpctl.core.overrides' checkers (the daemon checks again)."""

    def callback(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None

    return callback


def _reason(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    check = _checked(protocol.reason_text)

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None and required:
            raise click.MissingParameter(ctx=ctx, param=param)
        return check(ctx, param, value)

    return click.option(
        "--reason",
        metavar="TEXT",
        required=required,
        default=None if required else "ended by hand",
        callback=callback,
        help="Why (logged with who asked, shown in status)" + ("." if required else "; default 'ended by hand'."),
    )


def _for(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--for",
        "for_",
        metavar="DURATION",
        default=None,
        callback=_checked(overrides.duration),
        help="Expire after this long: 90s, 15m, 2h30m, 1d (at most 30 days); default: until removed.",
    )(f)


_TARGET = click.argument("target", metavar="REGION[/PATH]", callback=_checked(overrides.drain_target))
_SERVICE_OPT = click.option(
    "--service", metavar="S", default=None, callback=_checked(overrides.name), help="Only this service."
)


@click.command("drain")
@_where
@_TARGET
@_SERVICE_OPT
@_reason(True)
@_for
@click.option("--force", is_flag=True, help="Drain even the last healthy region of a service.")
def drain(
    *,
    daemon: Daemon,
    target: tuple[str, str | None],
    service: str | None,
    reason: str,
    for_: float | None,
    force: bool,
) -> None:
    """Make the up paths of REGION (or REGION/PATH) standby: de-preferred, still announced."""
    where = target[0] if target[1] is None else f"{target[0]}/{target[1]}"
    daemon.change("drain", {"target": where, "service": service, "reason": reason, "for": for_, "force": force or None})


@click.command("undrain")
@_where
@_TARGET
@_SERVICE_OPT
@_reason(False)
@click.option(
    "--now", "at_once", is_flag=True, help="Return at once, skipping the rise rules (ends a return already running)."
)
def undrain(*, daemon: Daemon, target: tuple[str, str | None], service: str | None, reason: str, at_once: bool) -> None:
    """End a runtime drain (the same REGION[/PATH] and --service it was set with).

    The region's traffic returns after each service's rise rules (its SLA class's rise_s), as after a
    recovery; until then its paths stay standby ("returning" in bgpctl status). --now returns it at once."""
    where = target[0] if target[1] is None else f"{target[0]}/{target[1]}"
    daemon.change("undrain", {"target": where, "service": service, "reason": reason, "now": at_once or None})


@click.command("pin")
@_where
@click.argument("service", callback=_checked(overrides.name))
@click.argument("region", callback=_checked(overrides.name))
@_reason(True)
@_for
def pin(*, daemon: Daemon, service: str, region: str, reason: str, for_: float | None) -> None:
    """Prefer SERVICE only in REGION while it has an up path there."""
    daemon.change("pin", {"service": service, "region": region, "reason": reason, "for": for_})


@click.command("unpin")
@_where
@click.argument("service", callback=_checked(overrides.name))
@_reason(False)
def unpin(*, daemon: Daemon, service: str, reason: str) -> None:
    """End SERVICE's runtime pin."""
    daemon.change("unpin", {"service": service, "reason": reason})


@click.command("weight")
@_where
@click.argument("service", callback=_checked(overrides.name))
@click.argument("weights", nargs=-1, required=True, metavar="REGION=WEIGHT...", callback=_checked(overrides.weights))
@_reason(True)
@_for
def weight(*, daemon: Daemon, service: str, weights: dict[str, int], reason: str, for_: float | None) -> None:
    """Split SERVICE between the regions by weight, e.g. use1=80 usw2=20 (each 0-1000, relative).

    Every region is named; a region of weight 0 gets traffic only while no other is up. The edge splits
    the flows by the link-bandwidth community; a region that is not preferred (degraded, down, drained)
    gives its share to the others."""
    daemon.change("weight", {"service": service, "weights": weights, "reason": reason, "for": for_})


@click.command("unweight")
@_where
@click.argument("service", callback=_checked(overrides.name))
@_reason(False)
def unweight(*, daemon: Daemon, service: str, reason: str) -> None:
    """End SERVICE's runtime weights: the policy's own weights (or an equal split) apply again."""
    daemon.change("unweight", {"service": service, "reason": reason})


@click.command("freeze")
@_where
@_reason(True)
@_for
def freeze(*, daemon: Daemon, reason: str, for_: float | None) -> None:
    """Announce nothing new: the routes stay as they are until thaw (or --for runs out)."""
    daemon.change("freeze", {"reason": reason, "for": for_})


@click.command("thaw")
@_where
@_reason(False)
def thaw(*, daemon: Daemon, reason: str) -> None:
    """End a runtime freeze: plan from the current health again."""
    daemon.change("thaw", {"reason": reason})


@click.command("reload")
@_where
@click.option("--dry-run", is_flag=True, help="Only print the route changes the new policy would make.")
@click.option(
    "--reason",
    metavar="TEXT",
    default="bgpctl reload",
    show_default=True,
    callback=_checked(protocol.reason_text),
    help="Why (logged with who asked, shown in status).",
)
def reload(*, daemon: Daemon, dry_run: bool, reason: str) -> None:
    """Make the daemon read its policy file again: applied as a diff, or refused whole (the old one runs on).

    A refused policy exits 3 with every problem as FILE:LINE; --dry-run prints the route changes the new
    policy would make and changes nothing."""
    from bgpctl.control.render import reload_text  # noqa: PLC0415

    # lenient: the daemon, not the CLI, judges the file
    daemon.ask("reload", {"dry_run": dry_run, "reason": reason}, reload_text, lenient=True)
