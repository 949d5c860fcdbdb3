"""Helpers shared by the plan and replay tests: policies from YAML (with patches) and health maps."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from bgpctl.core.decide import path_keys
from bgpctl.core.types import Health, PathHealth, PathKey
from bgpctl.policy.load import load_policy_text
from bgpctl.policy.model import Policy

REPO = Path(__file__).resolve().parents[3]
POLICIES = REPO / "policies"
CASES = Path(__file__).resolve().parent


def read_yaml(text: str) -> Any:
    return YAML(typ="safe").load(StringIO(text))


def deep_merge(base: Any, patch: Any) -> Any:
    """``patch`` laid over ``base``: mappings merge key by key, anything else (lists too) replaces."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = deep_merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(patch)


def policy_from_data(data: Any, name: str = "<test>") -> Policy:
    """A validated Policy from plain data, through the project's loader (cross-references included)."""
    return load_policy_text(json.dumps(data), name)


def lab_data(patch: Mapping[str, Any] | None = None, file: str = "lab.yaml") -> Any:
    data = read_yaml((POLICIES / file).read_text())
    return deep_merge(data, dict(patch)) if patch else data


def lab_policy(patch: Mapping[str, Any] | None = None, file: str = "lab.yaml", drop: tuple[str, ...] = ()) -> Policy:
    """The lab policy with ``patch`` laid over it and the top-level sections ``drop`` removed (e.g. "signals",
    which a policy with ``fail_static: false`` may not have)."""
    data = {k: v for k, v in lab_data(patch, file).items() if k not in drop}
    return policy_from_data(data, f"{file} (patched)" if patch or drop else file)


TWO_PATHS: dict[str, Any] = {
    "regions": {
        "use1": {
            "paths": {
                "interconnect": {
                    "peer": "tgw-use1",
                    "next_hop": "198.18.1.11",
                    "probe_source": "198.18.1.21",
                    "table": 101,
                },
                "vpn": {
                    "peer": "tgw-use1",
                    "next_hop": "198.18.1.31",
                    "probe_source": "198.18.1.41",
                    "table": 111,
                    "priority": 10,
                },
            }
        },
        "usw2": {
            "paths": {
                "interconnect": {
                    "peer": "tgw-usw2",
                    "next_hop": "198.18.1.12",
                    "probe_source": "198.18.1.22",
                    "table": 102,
                },
                "vpn": {
                    "peer": "tgw-usw2",
                    "next_hop": "198.18.1.32",
                    "probe_source": "198.18.1.42",
                    "table": 112,
                    "priority": 10,
                },
            }
        },
    },
}
"""Patch for lab.yaml: a VPN backup path (priority 10) next to the interconnect in each region."""


NO_ADD_PATH: dict[str, Any] = {
    "peers": [
        {"name": "edge", "address": "198.18.1.1", "peer_as": 65010, "role": "edge"},
        {"name": "tgw-use1", "address": "198.18.1.11", "peer_as": 64512, "role": "transit-gateway"},
        {"name": "tgw-usw2", "address": "198.18.1.12", "peer_as": 64513, "role": "transit-gateway"},
    ]
}
"""Patch for lab.yaml: the same peers without ADD-PATH (one best route per prefix to the edge)."""


def all_keys(policy: Policy) -> list[PathKey]:
    """Every path of every service, then the IPv6 measurements of dual-stack ones (decide's path_keys)."""
    paths = [PathKey(s, r, p) for s in policy.services for r, region in policy.regions.items() for p in region.paths]
    return paths + [k for k in path_keys(policy) if k.family]


def health_map(policy: Policy, spec: Mapping[str, str], at: float = 0.0) -> dict[PathKey, PathHealth]:
    """``{"default": "up", "media/use1/interconnect": "down", "*/use1/*": "degraded"}`` -> health per path.

    Keys are service/region/path with ``*`` for any part (every measurement of the path), or
    service/region/path/ipv6 (a dual-stack path's IPv6 measurement only); later keys win over earlier ones.
    """
    out: dict[PathKey, PathHealth] = {}
    default = spec.get("default")
    for key in all_keys(policy):
        if default is not None:
            out[key] = PathHealth(Health(default), since=at)
        for pattern, value in spec.items():
            if pattern == "default":
                continue
            parts = pattern.split("/")
            if len(parts) not in (3, 4):
                raise ValueError(f"health key {pattern!r}: write service/region/path[/ipv6] ('*' for any)")
            # three parts: every measurement of the path; a fourth (ipv6) only its IPv6 measurement
            if all(want in ("*", have) for want, have in zip(parts, key, strict=False)) and (
                len(parts) == 3 or parts[3] == key.family
            ):
                out[key] = PathHealth(Health(value), since=at)
    return out


def recording_lines(
    rtt_ms: Mapping[PathKey, float],
    seconds: float,
    interval_s: float,
    lost: Any = None,
    extra_ms: Any = None,
    start: float = 100.0,
) -> list[str]:
    """A deterministic JSONL recording: every path probed every ``interval_s`` for ``seconds``.

    ``lost(key, t)`` -> True drops the probe sent at ``t`` seconds after ``start``; ``extra_ms(key, t)``
    adds delay. Without them every probe is answered after the path's base RTT.
    """
    lines: list[str] = []
    n = round(seconds / interval_s)
    for i in range(n):
        t = i * interval_s
        for key, base in rtt_ms.items():
            sent = start + t
            gone = bool(lost(key, t)) if lost is not None else False
            rtt = base + (extra_ms(key, t) if extra_ms is not None else 0.0)
            lines.append(
                json.dumps(
                    {
                        "service": key.service,
                        "region": key.region,
                        "path": key.path,
                        "seq": i,
                        "sent": round(sent, 6),
                        "received": None if gone else round(sent + rtt / 1000.0, 6),
                    }
                )
            )
    return lines


REPLAY_PATCH: dict[str, Any] = {
    "services": {"media": {"probe": {"interval_ms": 20, "timeout_ms": 200}}},
    "sla_classes": {
        "voice": {
            "hysteresis": {
                "down_after_lost": 5,
                "window_s": 5,
                "min_samples": 20,
                "rise_s": 10,
                "hold_down_s": 15,
                "min_dwell_s": 5,
            }
        }
    },
}
"""Patch for lab.yaml pinning what the replay tests' timings depend on (so tuning the lab policy does
not move them): media probed every 20 ms, a probe is lost after 200 ms, 5 lost in a row = down."""


def replay_policy_file(directory: Path, patch: Mapping[str, Any] | None = None) -> Path:
    """lab.yaml + REPLAY_PATCH (+ ``patch``) written as a policy file (JSON is YAML) for CLI tests."""
    data = deep_merge(lab_data(REPLAY_PATCH), dict(patch)) if patch else lab_data(REPLAY_PATCH)
    f = directory / "replay-policy.yaml"
    f.write_text(json.dumps(data, indent=2))
    return f
