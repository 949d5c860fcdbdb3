"""``bgpctl policy plan FILE [--stats SNAPSHOT.json] [--json]``: the announcements a policy makes.

Without ``--stats`` every measured path is UP. With it, SNAPSHOT.json maps ``"service/region/path"``
to the fields of :class:`~bgpctl.core.types.PathStats` (``samples``, ``lost``, ``consecutive_lost``,
``rtt_p50_ms``, ``rtt_p95_ms``, ``jitter_ms``, ``mos``); decide() judges them from UNKNOWN (a first
judgement: no hysteresis yet) and plan() turns the health into routes, as on a fresh start (no
previous plan, so no fail-static). A path missing from the snapshot has no data: UNKNOWN.
policies/examples/lab-snapshot.json is an example.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click
import jsonschema

from bgpctl.cli.policy import policy
from bgpctl.core.decide import decide, path_keys
from bgpctl.core.plan import ideal_rib, path_states, plan, route_order
from bgpctl.core.types import Health, PathHealth, PathKey, PathStats, Plan, Reason
from bgpctl.errors import RefusedInput
from bgpctl.inputfile import InputFileError, read_text
from bgpctl.policy.load import load_policy
from bgpctl.policy.model import PathState, Policy
from bgpctl.render import (
    attrs_from_dict,
    attrs_to_dict,
    change_from_dict,
    change_text,
    change_to_dict,
    communities_text,
)

MAX_STATS_BYTES = 1024 * 1024
"""A stats snapshot is refused above this size (one path's stats take about 150 bytes)."""
_MAX_DIGITS = 20
_COUNT = {"type": "integer", "minimum": 0, "maximum": 2**32}
_NUMBER_OR_NULL = {"type": ["number", "null"], "minimum": 0, "maximum": 86_400_000}
SNAPSHOT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "bgpctl path stats snapshot",
    "type": "object",
    "propertyNames": {"pattern": "^[^/]+/[^/]+/[^/]+$"},
    "additionalProperties": {
        "type": "object",
        "required": ["samples", "lost", "consecutive_lost"],
        "additionalProperties": False,
        "properties": {
            "samples": _COUNT,
            "lost": _COUNT,
            "consecutive_lost": _COUNT,
            "rtt_p50_ms": _NUMBER_OR_NULL,
            "rtt_p95_ms": _NUMBER_OR_NULL,
            "jitter_ms": _NUMBER_OR_NULL,
            "mos": {"type": ["number", "null"], "minimum": 1, "maximum": 4.5},
        },
    },
}


class SnapshotError(RefusedInput):
    """A stats snapshot file was refused (exit code 3)."""


class _BadToken(ValueError):
    def __init__(self, token: str, what: str, hint: str) -> None:
        super().__init__(what)
        self.token, self.what, self.hint = token, what, hint


def _no_constant(token: str) -> object:
    raise _BadToken(token, f"{token} is not a number JSON allows", "write a finite number, or null for no measurement")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise _BadToken(text, f"the number {text[:20]}... has more than {_MAX_DIGITS} digits", "fix the value")
    return int(text)


def _line_of(text: str, token: str) -> int:
    at = text.find(token)
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


def parse_snapshot_json(text: str, name: str) -> Any:
    """SNAPSHOT.json text -> data; SnapshotError (one line, file:line) for what JSON or its limits refuse.

    Refused: NaN and Infinity (Python's json reads them), integers over 20 digits (Python refuses past
    4300 with a ValueError), nesting deeper than the parser's recursion (RecursionError)."""
    try:
        return json.loads(text, parse_constant=_no_constant, parse_int=_bounded_int)
    except json.JSONDecodeError as e:
        raise SnapshotError(f"{name}:{e.lineno}: not JSON ({e.msg})") from None
    except _BadToken as e:
        raise SnapshotError(f"{name}:{_line_of(text, e.token)}: {e.what} ({e.hint})") from None
    except RecursionError:
        raise SnapshotError(
            f"{name}: nested too deeply (a snapshot is two levels deep: see policies/examples/lab-snapshot.json)"
        ) from None


def read_snapshot_file(path: str, policy_: Policy) -> dict[PathKey, PathStats]:
    """Read SNAPSHOT.json (a regular file, at most :data:`MAX_STATS_BYTES`, UTF-8) and parse it."""
    try:
        text = read_text(path, MAX_STATS_BYTES, "stats snapshot", example="policies/examples/lab-snapshot.json")
    except InputFileError as e:
        p = e.problem  # in this file's style: FILE[:LINE]: what (hint)
        where = p.file if p.line is None else f"{p.file}:{p.line}"
        raise SnapshotError(f"{where}: {p.message} ({p.hint})") from None
    return read_snapshot(text, path, policy_)


def read_snapshot(text: str, name: str, policy_: Policy) -> dict[PathKey, PathStats]:
    """SNAPSHOT.json text -> stats per path of ``policy_``; SnapshotError naming the file and key."""
    data = parse_snapshot_json(text, name)
    errors = sorted(jsonschema.Draft202012Validator(SNAPSHOT_SCHEMA).iter_errors(data), key=lambda e: e.json_path)
    if errors:
        lines = [f"{name}: {e.json_path}: {e.message}" for e in errors]
        lines.append(
            f'{name}: expected {{"service/region/path": {{"samples": N, "lost": N, '
            f'"consecutive_lost": N, "rtt_p50_ms": ms, "rtt_p95_ms": ms, "jitter_ms": ms, '
            f'"mos": 1-4.5}}}} (see policies/examples/lab-snapshot.json)'
        )
        raise SnapshotError("\n".join(lines))
    assert isinstance(data, dict)  # the schema says so
    known = {str(k): k for k in path_keys(policy_)}
    out: dict[PathKey, PathStats] = {}
    for key_text, fields in data.items():
        if key_text not in known:
            raise SnapshotError(
                f"{name}: '{key_text}' is not a path the policy measures; use one of {', '.join(known)}"
            )
        if fields["lost"] > fields["samples"] or fields["consecutive_lost"] > fields["samples"]:
            raise SnapshotError(f"{name}: '{key_text}': lost and consecutive_lost cannot exceed samples")
        out[known[key_text]] = PathStats(
            samples=fields["samples"],
            lost=fields["lost"],
            consecutive_lost=fields["consecutive_lost"],
            rtt_p50_ms=fields.get("rtt_p50_ms"),
            rtt_p95_ms=fields.get("rtt_p95_ms"),
            jitter_ms=fields.get("jitter_ms"),
            mos=fields.get("mos"),
        )
    return out


def all_up(policy_: Policy) -> dict[PathKey, PathHealth]:
    reason = Reason("assumed", None, None, "no --stats: assumed up")
    return {k: PathHealth(Health.UP, reasons=(reason,)) for k in path_keys(policy_)}


# --------------------------------------------------------------------------------------------
# output


def _state_of(source_state: PathState | None) -> str:
    return source_state.value if source_state is not None else "-"


def plan_report(policy_: Policy, health: Mapping[PathKey, PathHealth], result: Plan) -> dict[str, Any]:
    """The plan as JSON-able data: every path's health and state, the routes per peer with their state."""
    states, _ = path_states(policy_, health)
    sources = ideal_rib(policy_, health).sources
    paths = [
        {
            "path": str(k),
            "health": health.get(k, PathHealth()).health.value,
            "state": _state_of(states.get(k)),
            "reasons": [r.text for r in health.get(k, PathHealth()).reasons],
        }
        for k in path_keys(policy_)
    ]
    peers: dict[str, Any] = {}
    for peer in policy_.peers:
        routes = result.desired.get(peer.name, {})
        rows = []
        for key in sorted(routes, key=route_order):
            src = sources.get((peer.name, key))
            rows.append(
                {
                    "prefix": key.prefix,
                    "path_id": key.path_id,
                    **attrs_to_dict(routes[key]),
                    "state": src.state.value if src else None,
                    "via": str(src.path) if src else None,
                }
            )
        peers[peer.name] = {
            "role": peer.role.value,
            "peer_as": peer.peer_as,
            "add_path": peer.add_path.value,
            "routes": rows,
        }
    return {
        "paths": paths,
        "peers": peers,
        "deferred": [change_to_dict(c) for c in result.deferred],
        "notes": list(result.notes),
    }


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]


def render_report(report: Mapping[str, Any]) -> list[str]:
    lines = ["paths:"]
    lines += [
        "  " + line
        for line in _table(
            ["PATH", "HEALTH", "STATE", "WHY"],
            [[p["path"], p["health"], p["state"], "; ".join(p["reasons"]) or "-"] for p in report["paths"]],
        )
    ]
    for name, peer in report["peers"].items():
        lines.append("")
        lines.append(f"peer {name} ({peer['role']}, AS{peer['peer_as']}, ADD-PATH {peer['add_path']}):")
        if not peer["routes"]:
            lines.append("  (no routes)")
            continue
        rows = []
        for r in peer["routes"]:
            attrs = attrs_from_dict(r)
            state = f"{r['state']} ({r['via']})" if r["state"] else "kept"
            rows.append(
                [
                    r["prefix"],
                    str(r["path_id"]),
                    r["next_hop"],
                    " ".join(map(str, r["as_path"])),
                    "-" if r["med"] is None else str(r["med"]),
                    communities_text(attrs),
                    state,
                ]
            )
        lines += [
            "  " + line
            for line in _table(["PREFIX", "PATH ID", "NEXT HOP", "AS PATH", "MED", "COMMUNITIES", "STATE"], rows)
        ]
    if report["deferred"]:
        lines.append("")
        lines.append("deferred by the rate limit:")
        lines += [f"  {change_text(change_from_dict(c))}" for c in report["deferred"]]
    if report["notes"]:
        lines.append("")
        lines += [f"note: {n}" for n in report["notes"]]
    return lines


@policy.command("plan")
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "--stats",
    "stats_file",
    type=click.Path(path_type=str),
    help="SNAPSHOT.json: PathStats per 'service/region/path' (default: every path up)",
)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of tables")
def plan_command(file: str, stats_file: str | None, as_json: bool) -> None:
    """Print the announcements per peer that policy FILE makes for the given measurements."""
    policy_ = load_policy(file)
    if stats_file is None:
        health: Mapping[PathKey, PathHealth] = all_up(policy_)
    else:
        stats = read_snapshot_file(stats_file, policy_)
        health = decide(policy_, stats, {}, 0.0).health
    result = plan(policy_, health, None, 0.0)
    report = plan_report(policy_, health, result)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo("\n".join(render_report(report)))
