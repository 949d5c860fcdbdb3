"""``bgpctl replay`` (being written)."""

import click


@click.command()
def replay() -> None:
    """Replay recorded probe samples through decide and plan."""
