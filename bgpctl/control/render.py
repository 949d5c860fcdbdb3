"""Text for people from the control API's answers: one renderer per data type, birdc/gobgp-like tables.

They take the JSON data (``status`` and ``routes`` results, shapes in bgpctl/schemas/), so that what a
person reads and what ``--json`` prints are the same facts. Stdlib only (the CLI stays light).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from bgpctl import events


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [indent + fmt.format(*r).rstrip() for r in [list(headers), *rows]]


def duration(seconds: float | None) -> str:
    """``3d04h``, ``2h05m``, ``4m07s``, ``12.3s``; ``-`` for none."""
    if seconds is None:
        return "-"
    s = max(0.0, seconds)
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    if d:
        return f"{d}d{h:02d}h"
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


def clock(at: float | None) -> str:
    """``HH:MM:SS.mmm`` UTC."""
    if at is None:
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}"


def when(at: float | None) -> str:
    """``YYYY-MM-DD HH:MM:SSZ`` (UTC), for times that may be days away."""
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))


def _num(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}{unit}"


# --------------------------------------------------------------------------------------------
# one renderer per data type


def daemon_text(status: Mapping[str, Any]) -> list[str]:
    d, x = status["daemon"], status["exabgp"]
    rib = "RIB complete" if d["rib_complete"] else "RIB not complete yet (End-of-RIB held back)"
    exa = f"ExaBGP pid {x['pid']}" if x["running"] else "ExaBGP not running"
    api = "API connected" if x["api_connected"] else "API not connected"
    exits = f", exits {x['exits']}" if x["exits"] else ""
    return [
        f"bgpctl daemon pid {d['pid']}, up {duration(d['uptime_s'])}, policy {d['policy']}, {rib}",
        f"{exa}, {api}, started {x['starts']} time(s){exits}",
        *policy_source_text(d.get("policy_source")),
    ]


def policy_source_text(source: Mapping[str, Any] | None) -> list[str]:
    """``status.daemon.policy_source``: what runs, since when, and the last reload."""
    if source is None:
        return []
    lines = [
        f"policy sha256 {source['sha256'][:12]}, file modified {when(source['mtime'])}, "
        f"loaded {when(source['loaded_at'])}"
    ]
    last = source["last_reload"]
    if last is not None:
        error = f": {last['error']}" if last["error"] else ""
        lines.append(f"last reload {when(last['at'])} by {who(last['by'])}: {last['result']}{error}")
    return lines


def sessions_text(sessions: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [
        [
            s["peer"],
            s["address"],
            s["role"],
            str(s["peer_as"]),
            s["state"],
            duration(s["uptime_s"]) if s["state"] == "up" else f"since {clock(s['since'])}" if s["since"] else "-",
            str(s["routes"]),
            s["last_error"] or "-",
        ]
        for s in sessions
    ]
    return table(["PEER", "ADDRESS", "ROLE", "AS", "STATE", "UP/SINCE", "ROUTES", "LAST ERROR"], rows)


def paths_text(paths: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for p in paths:
        st = p["stats"]
        rows.append(
            [
                p["path"],
                p["health"],
                p["state"] or "-",
                f"{_num(st['rtt_p50_ms'])}/{_num(st['rtt_p95_ms'])}",
                _num(st["jitter_ms"]),
                _num(st["loss_pct"], "%"),
                _num(st["mos"], digits=2),
                "; ".join([*p["reasons"], p["why"]]),
            ]
        )
    return table(["PATH", "HEALTH", "STATE", "RTT p50/p95 ms", "JITTER", "LOSS", "MOS", "WHY"], rows)


def overrides_text(overrides: Sequence[Mapping[str, Any]]) -> list[str]:
    if not overrides:
        return ["none"]
    rows = [
        [
            f"{o['kind']} (returning)" if o.get("returning") else o["kind"],
            o["target"],
            o["source"],
            who(o["by"]),
            when(o["since"]),
            when(o["expires"]) if o["expires"] is not None else "never",
            o["reason"] or "-",
        ]
        for o in overrides
    ]
    return table(["KIND", "TARGET", "SOURCE", "BY", "SINCE", "EXPIRES", "REASON"], rows)


def signals_text(signals: Sequence[Mapping[str, Any]]) -> list[str]:
    """Outside signals: what each counts as now, its age, and its marks (fresh) or why it is ignored."""
    if not signals:
        return ["none"]
    rows = []
    for sg in signals:
        marks = [
            f"{m['region'] if m['path'] is None else m['region'] + '/' + m['path']} {m['state']}: {m['reason']}"
            for m in sg["marks"]
        ]
        said = "; ".join(marks) if marks else "-" if sg["state"] == "fresh" else f"ignored: {sg['error'] or '-'}"
        rows.append([sg["name"], sg["kind"], sg["state"], duration(sg["age_s"]), said, sg["source"]])
    return table(["SIGNAL", "KIND", "STATE", "AGE", "SAYS", "SOURCE"], rows)


def who(by: Any) -> str:
    """Peer credentials as text: ``uid 0 (pid 4711)``."""
    if isinstance(by, Mapping):
        if "signal" in by:  # a reload by SIGHUP
            return f"signal {by['signal']}"
        return f"uid {by.get('uid')} (pid {by.get('pid')})"
    return str(by) if by else "-"


def change_text(result: Mapping[str, Any]) -> list[str]:
    """The answer of drain/undrain/pin/unpin/freeze/thaw, for people."""
    lines: list[str] = []
    made = result.get("set")
    if made is not None:
        until = f"until {when(made['expires'])}" if made["expires"] is not None else "until removed"
        lines.append(f"{made['kind']} {made['target']} in force {until} (by {who(made['by'])}: {made['reason']})")
    for o in result.get("removed", []):
        lines.append(f"{o['kind']} {o['target']} removed (it was set by {who(o['by'])}: {o['reason']})")
    rows = result.get("overrides", [])
    removed = {(o["region"], o["path"]) for o in result.get("removed", []) if o["kind"] == "drain"}
    for o in rows:
        if o.get("returning") and o["since"] == result.get("at") and (o["region"], o["path"]) in removed:
            lines.append(
                f"{o['target']} returns at {when(o['expires'])}, after the rise rules (undrain --now: at once)"
            )
    lines += ["", "Runtime overrides in force:"]
    lines += overrides_text(
        [{k: o[k] for k in ("kind", "target", "source", "by", "since", "expires", "reason", "returning")} for o in rows]
    )
    return lines


def reload_text(result: Mapping[str, Any]) -> list[str]:
    """The answer of ``reload`` (and ``reload --dry-run``), for people: what it did and the route changes,
    per peer and prefix with their attributes."""
    d = result["diff"]
    if result["dry_run"]:
        head = "dry run, nothing changed: " + (
            "the policy file holds the running policy" if result["result"] == "unchanged" else "it would apply"
        )
    else:
        head = {"applied": "applied: the new policy runs", "unchanged": "unchanged: the file holds the running policy"}[
            result["result"]
        ]
    lines = [f"{head} ({result['policy']['file']}, sha256 {result['policy']['sha256'][:12]})"]
    if d["sections"]:
        lines.append(f"  sections changed: {', '.join(d['sections'])}")
    paths = (("start probing", "paths_added"), ("stop probing", "paths_removed"), ("probe anew", "paths_reprobed"))
    for what, key in paths:
        if d[key]:
            lines.append(f"  {what}: {', '.join(d[key])}")
    changes, deferred = result["changes"], result["deferred"]
    lines.append(f"Route changes ({len(changes)}):" if changes else "Route changes: none")
    lines += [f"  {_change_row(c)}" for c in changes]
    if deferred:
        lines.append(f"Deferred by the rate limit ({len(deferred)}), made within the next minute:")
        lines += [f"  {_change_row(c)}" for c in deferred]
    if result["notes"]:
        lines += ["Notes:", *(f"  {n}" for n in result["notes"])]
    return lines


def _change_row(c: Mapping[str, Any]) -> str:
    path_id = f" id {c['path_id']}" if c["path_id"] else ""
    attrs = f" {_route_attrs(c)}" if c["kind"] == "announce" else ""
    return f"{c['peer']:<12} {c['kind']:<8} {c['prefix']}{path_id}{attrs}  ({c['why']})"


def _route_attrs(r: Mapping[str, Any]) -> str:
    text = f"nh {r['next_hop']} as-path {' '.join(map(str, r['as_path']))}"
    if r.get("med") is not None:
        text += f" med {r['med']}"
    if r.get("communities"):
        text += f" comm {','.join(r['communities'])}"
    if r.get("large_communities"):
        text += f" lcomm {','.join(r['large_communities'])}"
    if r.get("weight") is not None:
        text += f" weight {r['weight']}"
    return text


def decision_text(d: Mapping[str, Any]) -> str:
    at, event = clock(d["at"]), d["event"]
    if event == events.PATH_HEALTH:
        why = "; ".join(d["reasons"])
        return f"{at}  {event:<14} {d['path']} {d['old']} -> {d['new']}" + (f" ({why})" if why else "")
    if event == events.PLAN_NOTE:
        return f"{at}  {event:<14} {d['note']}"
    text = f"{at}  {event:<14} {d['peer']} {d['kind']} {d['prefix']}"
    if d.get("path_id"):
        text += f" id {d['path_id']}"
    if d["kind"] == "announce":
        text += f" {_route_attrs(d)}"
    return text + (f"  [{d['why']}]" if d.get("why") else "")


def ha_text(ha: Mapping[str, Any] | None) -> list[str]:
    """``status.ha``: this host's role in a controller pair and whether its routes are in use (docs/ha.md)."""
    if ha is None:
        return []
    p = ha["penalty"]
    worse = f"prepend +{p['prepend']}, MED +{p['med']}" + (
        f", TGW communities {' '.join(p['transit_gateway_communities'])}" if p["transit_gateway_communities"] else ""
    )
    lines = [f"HA: role {ha['role']} (the secondary's routes: {worse}); its routes in use: {ha['in_use']}: {ha['why']}"]
    if ha.get("handing_over"):
        lines.append("  handing over: every path was judged down; its routes stay worse than the other's until none is")
    for r in ha["reflected"]:
        whose = "a handing-over controller's" if r["uses"] == "handing-over" else f"the {r['uses']}'s"
        lines.append(f"  {r['peer']} uses {whose} route for {r['prefix']} (as-path {' '.join(map(str, r['as_path']))})")
    return lines


def status_text(status: Mapping[str, Any]) -> list[str]:
    lines = daemon_text(status) + ha_text(status.get("ha"))
    lines += ["", "Sessions:", *sessions_text(status["sessions"])]
    lines += ["", "Paths:", *paths_text(status["paths"])]
    lines += ["", "Overrides:", *overrides_text(status["overrides"])]
    lines += ["", "Signals:", *signals_text(status["signals"])]
    if status["notes"]:
        lines += ["", "Notes:", *(f"  {n}" for n in status["notes"])]
    decisions = status["decisions"]
    lines += ["", f"Last {len(decisions)} decisions:"]
    lines += [f"  {decision_text(d)}" for d in decisions] or ["  none"]
    return lines


def _rule_text(rule: Mapping[str, Any]) -> str:
    if rule["kept"]:
        text = f"kept: {rule['kept']}"
        return text + (f" ({rule['path']})" if rule["path"] else "")
    text = f"{rule['path']} {rule['health']} -> {rule['state']} ({rule['action']})"
    return text + (f" override {rule['override']}" if rule["override"] else "")


def _weight(r: Mapping[str, Any]) -> list[str]:
    # bgpctl.render.weight_text's form, without importing the planner into the light client
    return [] if r.get("weight") is None else [f"weight:{r['weight']}"]


def route_row(r: Mapping[str, Any]) -> list[str]:
    return [
        r["prefix"],
        str(r["path_id"]),
        r["next_hop"],
        " ".join(map(str, r["as_path"])),
        "-" if r["med"] is None else str(r["med"]),
        " ".join([*r["communities"], *r["large_communities"], *_weight(r)]) or "-",
        r["status"],
        _rule_text(r["rule"]),
    ]


def routes_text(result: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for p in result["peers"]:
        if not p["routes"] and result["filter"]["prefix"] is not None:
            continue  # asked about a prefix: peers without a route for it say nothing
        if lines:
            lines.append("")
        lines.append(
            f"peer {p['peer']} {p['address']} ({p['role']}, AS{p['peer_as']}, ADD-PATH {p['add_path']}), "
            f"session {p['session']}:"
        )
        if not p["routes"]:
            lines.append("  (no routes)")
            continue
        lines += table(
            ["PREFIX", "ID", "NEXT HOP", "AS PATH", "MED", "COMMUNITIES", "STATUS", "RULE"],
            [route_row(r) for r in p["routes"]],
            indent="  ",
        )
    if result["deferred"]:
        lines += ["", f"{len(result['deferred'])} change(s) deferred by the rate limit"]
    if result["notes"]:
        lines += ["", *(f"note: {n}" for n in result["notes"])]
    return lines
