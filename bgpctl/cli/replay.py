"""``bgpctl replay --policy FILE SAMPLES.jsonl``: what a policy would have done with recorded probes.

Runs the recording through the probe windows, decide() and plan() on the recording's own clock
(see :mod:`bgpctl.core.replay` for the tick and the settling rules) and prints the timeline: time
since the first sample, the path, old -> new health with decide's reasons, then the route changes
that plan() sends in make-before-break order. ``--json`` prints one JSON object per line instead,
and a last ``{"summary": ...}`` line.
"""

from __future__ import annotations

import json
from typing import TextIO

import click

from bgpctl.core.replay import (
    ReplaySummary,
    event_to_dict,
    read_recording,
    render_event,
    render_summary,
    summary_to_dict,
)
from bgpctl.core.replay import (
    replay as run_replay,
)
from bgpctl.policy.load import load_policy


@click.command()
@click.option("--policy", "policy_file", required=True, type=click.Path(dir_okay=False, path_type=str),
              help="the policy to judge the recording with (e.g. the one you are about to merge)")
@click.option("--tick", type=click.FloatRange(min=0.001, max=60.0), default=None,
              help="seconds between decide() runs (default: the policy's smallest probe interval)")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: one per plan() call, then a summary")
@click.argument("samples", type=click.File("r", encoding="utf-8"))
def replay(policy_file: str, tick: float | None, as_json: bool, samples: TextIO) -> None:
    """Replay recorded probe SAMPLES (JSON lines, '-' for stdin) through decide and plan.

    Each line: {"service", "region", "path", "seq", "sent", "received"} with times in seconds and
    "received": null for a lost probe. Prints the timeline of health and route changes.
    """
    policy = load_policy(policy_file)
    recording = read_recording(samples, samples.name)
    summary = ReplaySummary()
    shown: tuple[str, ...] = ()
    for event in run_replay(policy, recording, tick, summary):
        if as_json:
            click.echo(json.dumps(event_to_dict(event)))
        else:
            click.echo("\n".join(render_event(event, shown)))
            shown = event.plan.notes
    if as_json:
        click.echo(json.dumps(summary_to_dict(summary)))
    else:
        click.echo("\n".join(render_summary(summary)))
