"""``bgpctl policy ...`` (being written)."""

import click


@click.group()
def policy() -> None:
    """Check, show and plan policy files."""
