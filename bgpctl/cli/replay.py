"""``bgpctl replay --policy FILE RECORDING.jsonl``: what a policy would have done with recorded probes.

Runs the recording through the daemon's controller (windows, decide(), plan()) on the recording's own
clock: a daemon recording (``bgpctl daemon --record``) step by step as the daemon evaluated, a
samples-only recording on a fixed tick (see :mod:`bgpctl.core.replay`), and prints the timeline: time
since the first sample, the path, old -> new health with decide's reasons, then the route changes
that plan() sends in make-before-break order. ``--json`` prints one JSON object per line instead,
then one ``{"series": ...}`` line per path (RTT, loss and health over time, :mod:`bgpctl.core.series`) and
a last ``{"summary": ...}`` line. ``--plot FILE.png`` draws the same data (:mod:`bgpctl.render_plot`).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import click

from bgpctl.cli.params import FiniteFloatRange, plot_option
from bgpctl.core.recording import Event, RecordingError, read_recording, recording_lines
from bgpctl.core.replay import (
    ReplaySummary,
    event_to_dict,
    render_event,
    render_summary,
    series_to_dicts,
    summary_to_dict,
)
from bgpctl.core.replay import (
    replay as run_replay,
)
from bgpctl.inputfile import special_kind
from bgpctl.policy.load import load_policy
from bgpctl.policy.model import Policy


@contextlib.contextmanager
def open_recording(path: str) -> Iterator[BinaryIO]:
    """A recording to read: stdin for '-', else a regular file or a pipe (``<(zcat rec.gz)``); a directory,
    device or socket is refused. The open never blocks: a named FIFO without a writer reads as empty."""
    if path == "-":
        yield sys.stdin.buffer
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        kind = special_kind(path)  # a socket cannot be opened (ENXIO): say what it is
        if kind is not None:
            raise RecordingError(f"{path}: is {kind} (name the recording file, or '-' for standard input)") from None
        raise RecordingError(f"{path}: cannot open it: {e.strerror} (check the path and its permissions)") from None
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        raise RecordingError(f"{path}: is {kind} (name the recording file, or '-' for standard input)")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as stream:
        yield stream


@click.command()
@click.option(
    "--policy",
    "policy_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="the policy to judge the recording with (e.g. the one you are about to merge)",
)
@click.option(
    "--tick",
    type=FiniteFloatRange(min=0.001, max=60.0),
    default=None,
    help="samples-only recordings: seconds between evaluations (default: the policy's smallest "
    "probe interval); a daemon recording replays at its own evaluation times",
)
@click.option("--json", "as_json", is_flag=True, help="JSON lines: one per plan() call, then a summary")
@plot_option("the replay: per path RTT, loss and health bands, and the route changes")
@click.argument("samples", type=str)
def replay(policy_file: str, tick: float | None, as_json: bool, plot_file: Path | None, samples: str) -> None:
    """Replay a RECORDING (JSON lines, '-' for stdin) through the daemon's controller.

    A daemon recording (bgpctl daemon --record) replays exactly; a samples-only one has a line per
    probe: {"service", "region", "path", "seq", "sent", "received"} with times in seconds and
    "received": null for a lost probe. Prints the timeline of health and route changes.
    """
    policy = load_policy(policy_file)
    with open_recording(samples) as stream:
        name = "<stdin>" if samples == "-" else samples
        objects = _run(policy, tick, as_json, read_recording(recording_lines(stream, name), name))
    if plot_file is not None:
        from bgpctl.render_plot import replay_figure, replay_report, save_png  # noqa: PLC0415 (matplotlib)

        save_png(replay_figure(replay_report(objects)), plot_file)
        click.echo(f"picture written to {plot_file}", err=True)


def _run(policy: Policy, tick: float | None, as_json: bool, recording: Iterator[Event]) -> list[dict[str, Any]]:
    """Print the replay; returns its JSON objects (events, series, summary) for a picture."""
    summary = ReplaySummary()
    shown: tuple[str, ...] = ()
    objects: list[dict[str, Any]] = []
    for event in run_replay(policy, recording, tick, summary):
        objects.append(event_to_dict(event))
        if as_json:
            click.echo(json.dumps(objects[-1]))
        else:
            click.echo("\n".join(render_event(event, shown)))
            shown = event.plan.notes
    for note in summary.notes:
        click.echo(f"note: {note}", err=True)
    tail = [*series_to_dicts(summary), summary_to_dict(summary)]
    if as_json:
        for obj in tail:
            click.echo(json.dumps(obj))
    else:
        click.echo("\n".join(render_summary(summary)))
    return objects + tail
