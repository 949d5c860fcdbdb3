"""Click parameter types shared by the commands: a bad value is a usage error (exit 2) naming the option."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses NaN and infinities (``nan`` compares false with every bound,
    so a plain FloatRange lets it through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number ({self._describe_range()})", param, ctx)
        return float(number)


def _plot_target(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """Before a long run: matplotlib is there and the picture's directory exists (PlotError otherwise)."""
    if value is not None:
        from bgpctl.render_plot import check_target  # noqa: PLC0415 (imports matplotlib)

        check_target(value)
    return value


def plot_option(draws: str) -> Callable[[F], F]:
    """``--plot FILE.png`` (parameter ``plot_file``): the one definition for every command that draws."""
    return click.option(
        "--plot",
        "plot_file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        callback=_plot_target,
        help=f"Also draw a PNG of {draws} (needs matplotlib: pip install 'bgpctl[plot]').",
    )
