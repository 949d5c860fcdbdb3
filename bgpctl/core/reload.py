"""Policy reload: what a new policy changes in the running daemon, decided without I/O.

``bgpctl reload`` (and SIGHUP) load the policy file again; this module says, for the old policy, the new one
and the runtime overrides in force, whether the new one can be applied without touching a BGP session and,
if so, what changes (docs/control.md, "Reload"):

* **Restart-only changes** (:func:`restart_needed`): everything ExaBGP's configuration is rendered from
  (the ``speaker`` section, the peers: added, removed, or any field of one but its ``description``), the
  control socket's group, the outside ``signals`` (their sources and polling tasks are made at start) and
  the ``hooks`` (their queues, workers and secrets, likewise).
  ExaBGP 5 cannot change a neighbour through its API: its ``reload`` command re-reads its whole
  configuration file and re-creates every peer's definition (``Reactor.reload`` in exabgp/reactor/loop.py,
  ``Peer.reconfigure``), replacing the routes the API gave the unchanged peers, so bgpctl never uses it.
  Such a reload is refused whole, each change named, with the hint to restart the daemon (graceful restart
  keeps the routes at the peers meanwhile).
* **Runtime overrides** naming a region, path or service the new policy does not have
  (:func:`stale_overrides`): the reload is refused, naming them, with the hint to end them first. A drain
  or pin is never dropped silently.
* Everything else applies live (:class:`PolicyDiff`): new paths start probing (unknown health, so not
  announced until judged), removed ones stop, paths whose probe changed (target, protocol, port, DSCP,
  interval, timeout, source, table, next hop, window length) start a fresh window but keep their
  health, and the routes follow through the same plan() as any decision (make-before-break, fail-static,
  rate limit, allowlist): :meth:`bgpctl.core.controller.Controller.reload` and ``preview``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bgpctl.core.decide import path_keys
from bgpctl.core.overrides import OverrideRefused, Runtime, check_names
from bgpctl.core.types import PathKey
from bgpctl.policy.model import Peer, Policy

RESTART_HINT = (
    "restart the daemon to apply it (systemctl restart bgpctl: graceful restart keeps the routes at the peers); "
    "the daemon keeps running the old policy"
)
OVERRIDES_HINT = "end them first (bgpctl undrain / unpin), then reload again; the daemon keeps running the old policy"
_PEER_LIVE_FIELDS = frozenset({"description"})
"""Fields of a peer that change nothing in ExaBGP's configuration nor in a session."""


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """What applying ``new`` over ``old`` changes, for a policy that needs no restart."""

    sections: tuple[str, ...]  # top-level sections that differ, in policy order
    added: tuple[PathKey, ...]  # paths measured only by the new policy: start probing
    removed: tuple[PathKey, ...]  # paths the new policy no longer measures: stop probing
    reprobed: tuple[PathKey, ...]  # paths in both whose probe or window changed: probe again, fresh window

    @property
    def unchanged(self) -> bool:
        return not self.sections

    def as_json(self) -> dict[str, Any]:
        return {
            "sections": list(self.sections),
            "paths_added": [str(k) for k in self.added],
            "paths_removed": [str(k) for k in self.removed],
            "paths_reprobed": [str(k) for k in self.reprobed],
        }


def _dump(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    return value


def _changed_fields(old: dict[str, Any], new: dict[str, Any], prefix: str) -> list[str]:
    """Dotted names of the leaves that differ between two dumps (a changed list counts as one leaf)."""
    out: list[str] = []
    for key in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_changed_fields(a, b, f"{prefix}.{key}"))
        else:
            out.append(f"{prefix}.{key}: {_short(a)} -> {_short(b)}")
    return out


def _short(value: Any, limit: int = 60) -> str:
    text = "unset" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _peer_fields(peer: Peer) -> dict[str, Any]:
    return {k: v for k, v in _dump(peer).items() if k not in _PEER_LIVE_FIELDS}


def restart_needed(old: Policy, new: Policy) -> list[str]:
    """Every change of ``new`` over ``old`` that only a restart of the daemon can apply, one line each."""
    out = _changed_fields(_dump(old.speaker), _dump(new.speaker), "speaker")
    old_peers = {p.name: p for p in old.peers}
    new_peers = {p.name: p for p in new.peers}
    out += [f"peers: peer {name} added (a new BGP session)" for name in new_peers if name not in old_peers]
    out += [f"peers: peer {name} removed (its BGP session ends)" for name in old_peers if name not in new_peers]
    for name, peer in new_peers.items():
        if name in old_peers:
            out += _changed_fields(_peer_fields(old_peers[name]), _peer_fields(peer), f"peers.{name}")
    out += _changed_fields(_dump(old.control), _dump(new.control), "control")
    # the outside signals' sources and polling tasks are made at start (bgpctl.signals.feed)
    out += _changed_fields(
        {k: _dump(v) for k, v in old.signals.items()}, {k: _dump(v) for k, v in new.signals.items()}, "signals"
    )
    # the hooks' queues, workers and webhook secrets are made at start (bgpctl.hooks.sink)
    out += _changed_fields(
        {k: _dump(v) for k, v in old.hooks.items()}, {k: _dump(v) for k, v in new.hooks.items()}, "hooks"
    )
    return out


def stale_overrides(new: Policy, runtime: Runtime) -> list[str]:
    """The runtime overrides in force that name something ``new`` does not have: 'drain use1/dx: ...'."""
    out: list[str] = []
    for o in runtime:
        try:
            check_names(new, o)
        except OverrideRefused as e:
            out.append(f"{o.kind} {o.target}: {e.message}")
    return out


def _probe_of(policy: Policy, key: PathKey) -> tuple[Any, ...]:
    """Everything that makes a path's samples what they are: if it differs, old samples say nothing."""
    service = policy.services[key.service]
    path = policy.regions[key.region].paths[key.path]
    return (
        service.probe.interval_ms,
        service.probe.timeout_ms,
        _dump(service.probe.targets[key.region]),
        str(path.probe_source),
        path.table,
        str(path.next_hop),
        policy.sla_classes[service.sla].hysteresis.window_s,
    )


def sections_changed(old: Policy, new: Policy) -> tuple[str, ...]:
    names: Iterable[str] = type(new).model_fields
    return tuple(n for n in names if _dump(getattr(old, n)) != _dump(getattr(new, n)))


def diff(old: Policy, new: Policy) -> PolicyDiff:
    """What ``new`` changes over ``old`` (call :func:`restart_needed` first: this assumes it said nothing)."""
    old_keys, new_keys = path_keys(old), path_keys(new)
    kept = set(old_keys) & set(new_keys)
    return PolicyDiff(
        sections=sections_changed(old, new),
        added=tuple(k for k in new_keys if k not in kept),
        removed=tuple(k for k in old_keys if k not in kept),
        reprobed=tuple(k for k in new_keys if k in kept and _probe_of(old, k) != _probe_of(new, k)),
    )
