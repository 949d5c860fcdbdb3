"""The ``bgpctl`` command. Each sub-command group lives in its own module next to this one."""

from __future__ import annotations

import sys

import click

from bgpctl import __version__
from bgpctl.errors import BgpctlError


class _Root(click.Group):
    """Turns every BgpctlError into its message on stderr and its exit code; no tracebacks for operators."""

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


def _register() -> None:
    # Each module attaches its commands to its group on import.
    from bgpctl.cli import daemon, demo, lab, lab_drill, lab_fault, lab_meter, policy, policy_plan, probe, replay  # noqa: F401, PLC0415

    cli.add_command(policy.policy)
    cli.add_command(replay.replay)
    cli.add_command(lab.lab)
    cli.add_command(daemon.daemon)
    cli.add_command(demo.demo)
    for command in probe.COMMANDS:
        cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="bgpctl")
