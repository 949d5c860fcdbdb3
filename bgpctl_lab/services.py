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
file, ``{node_dir}`` the node's run directory. ``install`` copies files into place before the service's
first start, as a package install puts its configuration in /etc: the daemon runs a copy of the lab's
policy in its node directory (``{node_dir}/policy.yaml``), which a drill may replace and ``bgpctl reload``
(docs/testing.md, "Operations drills"); a file already there is kept (a restart does not undo a change),
``lab down`` removes it with the node directory. ``modes`` limits a service to some lab modes (the
bgpctl daemon on cr runs only in ``controller`` mode); an ``up`` in another mode stops it. Every
service is bounded by its own ``--seconds`` lifetime, or is the daemon, which ``down`` stops.

This module only describes and reads services; :func:`bgpctl_lab.runner.ensure_services` starts and
stops them (the runner imports this module, never the other way round).
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bgpctl.errors import LabError
from bgpctl_lab.topology import lab_files

TAG_PREFIX = "service:"
SUPERVISED_PREFIX = "supervised:"
"""The tag of a service run under :mod:`bgpctl_lab.supervise` (:func:`bgpctl_lab.runner.supervise_service`)."""


def _resolved(value: str, *, root: Path, node_dir: Path) -> str:
    values = {"python": sys.executable, "root": str(root), "node_dir": str(node_dir)}
    return value.format_map(values) if "{" in value else value


class Install(BaseModel):
    """A file copied into place before the service's first start (``{from: SOURCE, to: PATH}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(alias="from", min_length=1, description="the file to copy ({root}/...)")
    to: str = Field(min_length=1, description="where the service reads it ({node_dir}/...)")


class Service(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    argv: list[str] = Field(min_length=1)
    modes: list[str] | None = Field(None, description="lab modes this service runs in (default: all)")
    install: list[Install] = Field(default_factory=list, description="files copied into place before it starts")

    def resolved_argv(self, *, root: Path, node_dir: Path) -> list[str]:
        return [_resolved(a, root=root, node_dir=node_dir) for a in self.argv]

    def resolved_install(self, *, root: Path, node_dir: Path) -> list[tuple[Path, Path]]:
        """(source, destination) of each file to install."""
        return [
            (
                Path(_resolved(i.source, root=root, node_dir=node_dir)),
                Path(_resolved(i.to, root=root, node_dir=node_dir)),
            )
            for i in self.install
        ]

    def runs_in(self, mode: str) -> bool:
        return self.modes is None or mode in self.modes


def services_file(topology_file: Path) -> Path:
    """``lab/services-<variant>.yaml`` for a topology ``containerlab-<variant>.yml`` when that file exists (the
    HA lab's: lab/services-ha.yaml), else ``lab/services.yaml``."""
    stem = topology_file.name.removesuffix(".yml").removesuffix(".yaml")
    variant = stem.removeprefix("containerlab-") if stem.startswith("containerlab-") else None
    if variant:
        own = lab_files(topology_file) / f"services-{variant}.yaml"
        if own.exists():
            return own
    return lab_files(topology_file) / "services.yaml"


def service(services: dict[str, list[Service]], node: str, name: str) -> Service:
    """The service ``name`` of ``node``; LabError naming those there are."""
    for svc in services.get(node, []):
        if svc.name == name:
            return svc
    known = ", ".join(f"{n}/{s.name}" for n, items in services.items() for s in items) or "none"
    raise LabError(f"lab/services.yaml has no service {name!r} on {node!r}; services: {known}")


def option(argv: list[str], flag: str) -> str | None:
    """The value after ``flag`` in ``argv`` (e.g. the daemon's ``--run-dir``), None if absent."""
    return argv[argv.index(flag) + 1] if flag in argv[:-1] else None


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
