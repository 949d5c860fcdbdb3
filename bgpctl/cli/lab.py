"""``bgpctl lab ...`` (being written)."""

import click


@click.group()
def lab() -> None:
    """Run the reference lab on network namespaces."""
