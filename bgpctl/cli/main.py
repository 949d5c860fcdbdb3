"""The ``bgpctl`` command. Each sub-command group lives in its own module, imported only when it runs.

``bgpctl --help`` imports nothing but click: the table below gives each command's module and its
one-line help (``tests/cli/test_startup.py`` checks that the line matches the command's own). The lab
commands (``lab``, ``demo``) live in the separate package :mod:`bgpctl_lab`, installed with the
``lab`` extra; without it they say how to install it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass

import click

from bgpctl import __version__
from bgpctl.errors import BgpctlError

LAB_MISSING = "the lab is not installed: pip install 'bgpctl[lab]'"


@dataclass(frozen=True)
class Lazy:
    """A sub-command imported on first use: ``module`` defines ``attr``; ``also`` are imported first
    (modules that attach sub-commands to the group); ``lab`` marks the commands of the lab package."""

    module: str
    attr: str
    short_help: str
    also: tuple[str, ...] = ()
    lab: bool = False


COMMANDS: dict[str, Lazy] = {
    "daemon": Lazy(
        "bgpctl.cli.daemon", "daemon", "Run the controller: probe every path, decide, announce through ExaBGP."
    ),
    "demo": Lazy(
        "bgpctl_lab.cli.demo",
        "demo",
        "Bring up the reference lab with bgpctl on cr, run a failover drill, print what happened.",
        lab=True,
    ),
    "lab": Lazy(
        "bgpctl_lab.cli.lab",
        "lab",
        "Run the reference lab (containerlab.yml) on network namespaces.",
        also=("bgpctl_lab.cli.lab_drill", "bgpctl_lab.cli.lab_fault", "bgpctl_lab.cli.lab_meter"),
        lab=True,
    ),
    "policy": Lazy(
        "bgpctl.cli.policy", "policy", "Check, show and plan policy files.", also=("bgpctl.cli.policy_plan",)
    ),
    "probe": Lazy(
        "bgpctl.cli.probe", "probe", "Probe paths the way the daemon does and print per-path stats like mtr."
    ),
    "reflector": Lazy(
        "bgpctl.cli.probe", "reflector", "Answer STAMP (RFC 8762) / TWAMP-light probes, as the lab's Connect hosts do."
    ),
    "replay": Lazy(
        "bgpctl.cli.replay", "replay", "Replay a RECORDING (JSON lines, '-' for stdin) through the daemon's controller."
    ),
    "drain": Lazy(
        "bgpctl.cli.control",
        "drain",
        "Make the up paths of REGION (or REGION/PATH) standby: de-preferred, still announced.",
    ),
    "undrain": Lazy(
        "bgpctl.cli.control", "undrain", "End a runtime drain (the same REGION[/PATH] and --service it was set with)."
    ),
    "pin": Lazy("bgpctl.cli.control", "pin", "Prefer SERVICE only in REGION while it has an up path there."),
    "unpin": Lazy("bgpctl.cli.control", "unpin", "End SERVICE's runtime pin."),
    "weight": Lazy(
        "bgpctl.cli.control",
        "weight",
        "Split SERVICE between the regions by weight, e.g. use1=80 usw2=20 (each 0-1000, relative).",
    ),
    "unweight": Lazy(
        "bgpctl.cli.control",
        "unweight",
        "End SERVICE's runtime weights: the policy's own weights (or an equal split) apply again.",
    ),
    "freeze": Lazy(
        "bgpctl.cli.control",
        "freeze",
        "Announce nothing new: the routes stay as they are until thaw (or --for runs out).",
    ),
    "thaw": Lazy("bgpctl.cli.control", "thaw", "End a runtime freeze: plan from the current health again."),
    "reload": Lazy(
        "bgpctl.cli.control",
        "reload",
        "Make the daemon read its policy file again: applied as a diff, or refused whole (the old one runs on).",
    ),
    "routes": Lazy(
        "bgpctl.cli.control",
        "routes",
        "Ask the running daemon what it announces to whom, every attribute and the rule behind each route.",
    ),
    "status": Lazy(
        "bgpctl.cli.control",
        "status",
        "Ask the running daemon: sessions, ExaBGP, every path's health and stats, overrides, last decisions.",
    ),
}


def lab_missing() -> str | None:
    """Why the lab commands cannot run here (the package or a module it needs is absent), or None."""
    if importlib.util.find_spec("bgpctl_lab") is None:
        return LAB_MISSING
    import bgpctl_lab  # noqa: PLC0415 (tiny: names the modules the lab needs)

    missing = [m for m in bgpctl_lab.REQUIRES if importlib.util.find_spec(m) is None]
    return f"{LAB_MISSING} ({', '.join(missing)} missing)" if missing else None


def load(name: str) -> click.Command:
    """Import the command ``name`` of :data:`COMMANDS`."""
    spec = COMMANDS[name]
    if spec.lab and (why := lab_missing()) is not None:
        raise BgpctlError(why)
    for module in (*spec.also, spec.module):
        importlib.import_module(module)
    command = getattr(sys.modules[spec.module], spec.attr)
    assert isinstance(command, click.Command)
    return command


class _Root(click.Group):
    """Loads sub-commands lazily, and turns every BgpctlError into its message on stderr and its exit
    code: no tracebacks for operators."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        try:
            return load(cmd_name)
        except BgpctlError as e:
            click.echo(f"bgpctl: {e}", err=True)
            sys.exit(e.exit_code)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # the one-line help from the table: listing the commands must not import them
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name].short_help) for name in self.list_commands(ctx)])

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BgpctlError as e:
            click.echo(f"bgpctl: {e}", err=True)
            sys.exit(e.exit_code)


@click.group(cls=_Root)
@click.version_option(__version__, prog_name="bgpctl")
def cli() -> None:
    """Route controller for active-active Amazon Connect regions (BGP through ExaBGP)."""


_GROUPS = {("policy",), ("lab",), ("lab", "fault")}


def _path_from_argv(args: list[str]) -> str:
    """The command path for an error click raised without its context (e.g. a flag given a value)."""
    words: list[str] = []
    for arg in args:
        if arg.startswith("-") or (words and tuple(words) not in _GROUPS) or (not words and arg not in COMMANDS):
            break
        words.append(arg)
    return " ".join(["bgpctl", *words])


def usage_line(e: click.UsageError) -> str:
    """Click's usage error as one line naming the command, the option and where the help is (click's own
    form is four lines: usage, a hint, a blank line, the error)."""
    message = " ".join(e.format_message().split()).rstrip(".")
    path = e.ctx.command_path if e.ctx is not None else _path_from_argv(sys.argv[1:])
    where = path.partition(" ")[2]
    return f"bgpctl: {where + ': ' if where else ''}{message}; see '{path} --help'"


def main() -> None:
    """The ``bgpctl`` entry point: every failure is one line on stderr and its exit code (docs/cli.md)."""
    try:
        rv = cli.main(prog_name="bgpctl", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as e:  # `bgpctl` / `bgpctl policy` alone: the help, as usual
        e.show()
        sys.exit(e.exit_code)
    except click.UsageError as e:
        click.echo(usage_line(e), err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        click.echo(f"bgpctl: {' '.join(e.format_message().split())}", err=True)
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("bgpctl: aborted", err=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
