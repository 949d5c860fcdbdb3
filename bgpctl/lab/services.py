"""Long-running lab services (echo responders, STAMP reflectors) from ``lab/services.yaml``.

containerlab's ``exec`` lines run once and must return, and its images do not carry bgpctl, so the
services a lab needs beyond FRR are listed in a file of their own next to the topology file. The
namespace runner starts each one with ``Lab.spawn`` (tag ``service:<name>``) after the nodes are up,
restarts those that died on an idempotent ``up``, and ``down`` stops them with everything else.
On real containerlab, start them yourself in the nodes (``docker exec``), as lab/README.md says.

    connect-use1:
      - name: responder
        argv: ["{python}", -m, bgpctl, lab, responder, --region, use1, --seconds, "86400"]

Placeholders: ``{python}`` the interpreter bgpctl runs under, ``{root}`` the directory of the topology
file, ``{node_dir}`` the node's run directory. ``modes`` limits a service to some lab modes (the
bgpctl daemon on cr runs only in ``controller`` mode); an ``up`` in another mode stops it. Every
service is bounded by its own ``--seconds`` lifetime, or is the daemon, which ``down`` stops.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bgpctl.errors import LabError

if TYPE_CHECKING:
    from bgpctl.lab.runner import Lab

TAG_PREFIX = "service:"


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    argv: list[str] = Field(min_length=1)
    modes: list[str] | None = Field(None, description="lab modes this service runs in (default: all)")

    def resolved_argv(self, *, root: Path, node_dir: Path) -> list[str]:
        values = {"python": sys.executable, "root": str(root), "node_dir": str(node_dir)}
        return [a.format_map(values) if "{" in a else a for a in self.argv]

    def runs_in(self, mode: str) -> bool:
        return self.modes is None or mode in self.modes


def services_file(topology_file: Path) -> Path:
    return topology_file.resolve().parent / "lab" / "services.yaml"


def load_services(path: Path) -> dict[str, list[Service]]:
    """Node name -> services; an absent file means no services."""
    if not path.exists():
        return {}
    try:
        data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    except YAMLError as e:
        raise LabError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise LabError(f"{path}: expected a mapping of node name -> list of services")
    try:
        return {str(node): [Service.model_validate(s) for s in items or []] for node, items in data.items()}
    except ValidationError as e:
        raise LabError(f"{path}: {e}") from e


def ensure_services(lab: Lab, services: dict[str, list[Service]], *, root: Path) -> list[str]:
    """Start every service of the lab's mode that is not running, stop those of other modes; returns
    the ``node/name`` of those started."""
    unknown = sorted(set(services) - set(lab.nodes()))
    if unknown:
        raise LabError(f"lab/services.yaml names nodes the topology does not have: {', '.join(unknown)}")
    running: set[tuple[str, str]] = set()
    for p in lab.spawned():
        if not p.tag.startswith(TAG_PREFIX):
            continue
        if lab.spawned_alive(p):
            running.add((p.node, p.tag))
        else:
            lab.kill_spawned(pid=p.pid)  # forget the dead one (it is not ours any more: nothing is signalled)
    mode = lab.mode
    started = []
    for node, items in services.items():
        for svc in items:
            tag = TAG_PREFIX + svc.name
            if not svc.runs_in(mode):
                for p in lab.spawned():
                    if p.node == node and p.tag == tag:
                        lab.kill_spawned(pid=p.pid, grace=10.0)
            elif (node, tag) not in running:
                argv = svc.resolved_argv(root=root, node_dir=lab.node_dir(node))
                lab.spawn(node, argv, tag=tag, log_name=f"{svc.name}.log")
                started.append(f"{node}/{svc.name}")
    return started
