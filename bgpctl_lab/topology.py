"""Load a containerlab topology file, validate it, and model the subset the namespace runner supports.

The file is validated whole against containerlab's own JSON Schema (a copy ships next to this module;
it declares draft-07 but uses the 2020-12 keyword ``prefixItems``, so it is checked with
``Draft202012Validator``). Then the runner's subset is checked: ``kind: linux`` nodes with ``image``
(recorded, not used), ``binds``, ``exec``, ``env``, ``sysctls``, and brief links (``endpoints`` plus
optional ``ipv4``/``ipv6``/``mtu``). Node settings merge as containerlab does: node over kind over
defaults. Pure: no I/O beyond reading the file and the schema.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bgpctl.errors import LabError, Problem, ProblemsError

FRR_CONF_TARGET = PurePosixPath("/etc/frr/frr.conf")
FRR_DAEMONS_TARGET = PurePosixPath("/etc/frr/daemons")
BIRD_CONF_TARGET = PurePosixPath("/etc/bird.conf")  # where ghcr.io/srl-labs/bird reads its configuration
IFNAME_MAX = 15  # IFNAMSIZ - 1
SUPPORTED_NODE_KEYS = frozenset({"kind", "image", "binds", "exec", "env", "sysctls", "labels"})
SUPPORTED_LINK_KEYS = frozenset({"endpoints", "ipv4", "ipv6", "mtu"})

# Where the lab's files are: the topology file names them (binds, relative to its directory), and the
# rest sits next to it: <dir>/lab/services.yaml, <dir>/lab/drills/*.yaml. Never the source tree.
TOPOLOGY_ENV = "BGPCTL_LAB_TOPOLOGY"
DEFAULT_TOPOLOGY = Path("containerlab.yml")


EDGE_VARIANTS: Mapping[str, str] = {
    "frr": "containerlab.yml",
    "bird": "containerlab-bird.yml",  # BIRD 2 edge, ADD-PATH receive on
    "bird-no-addpath": "containerlab-bird-no-addpath.yml",  # BIRD 2 edge, ADD-PATH off
}
"""``bgpctl lab up --edge VARIANT``: which router the edge runs, as a topology file next to containerlab.yml."""


def edge_topology(topology_file: Path, edge: str) -> Path:
    """The topology of an edge variant, next to ``topology_file`` (LabError naming the variants)."""
    if edge not in EDGE_VARIANTS:
        raise LabError(f"unknown edge {edge!r}; use one of: {', '.join(EDGE_VARIANTS)}")
    path = topology_file.resolve().parent / EDGE_VARIANTS[edge]
    if not path.is_file():
        raise LabError(f"--edge {edge}: {path} does not exist (the variants sit next to containerlab.yml)")
    return path


def find_topology(given: Path | None = None) -> Path:
    """The topology file: ``given`` (``--topology``), else ``$BGPCTL_LAB_TOPOLOGY``, else
    ``./containerlab.yml``; LabError saying how to name it when there is none."""
    env = os.environ.get(TOPOLOGY_ENV)
    path = given or (Path(env) if env else DEFAULT_TOPOLOGY)
    if not path.is_file():
        if given or env:
            raise LabError(f"topology file {path} (from {'--topology' if given else TOPOLOGY_ENV}) does not exist")
        raise LabError(
            f"no {DEFAULT_TOPOLOGY} in {Path.cwd()}: run from the directory holding it, or give "
            f"--topology FILE (or set {TOPOLOGY_ENV})"
        )
    return path.resolve()


def lab_files(topology_file: Path) -> Path:
    """``<topology dir>/lab``: node configs, services.yaml, drills/."""
    return topology_file.resolve().parent / "lab"


def drills_dir(topology_file: Path) -> Path:
    """The drills of a topology: ``<topology dir>/lab/drills``."""
    return lab_files(topology_file) / "drills"


class TopologyError(ProblemsError, LabError):
    """A topology file was refused; carries every problem found, each naming the file and field."""


@dataclass(frozen=True)
class Bind:
    host: Path
    target: PurePosixPath
    read_only: bool


@dataclass(frozen=True)
class Node:
    name: str
    kind: str
    image: str | None
    binds: tuple[Bind, ...] = ()
    exec: tuple[tuple[str, ...], ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    sysctls: Mapping[str, str] = field(default_factory=dict)

    def bind_for(self, target: PurePosixPath) -> Path | None:
        return next((b.host for b in self.binds if b.target == target), None)

    @property
    def frr_conf(self) -> Path | None:
        """The node runs FRR when its ``/etc/frr/frr.conf`` is bound from a file."""
        return self.bind_for(FRR_CONF_TARGET)

    @property
    def frr_daemons(self) -> Path | None:
        return self.bind_for(FRR_DAEMONS_TARGET)

    @property
    def bird_conf(self) -> Path | None:
        """The node runs BIRD 2 when its ``/etc/bird.conf`` is bound from a file."""
        return self.bind_for(BIRD_CONF_TARGET)


@dataclass(frozen=True)
class Endpoint:
    node: str
    ifname: str
    ipv4: ipaddress.IPv4Interface | None = None
    ipv6: ipaddress.IPv6Interface | None = None


@dataclass(frozen=True)
class Link:
    a: Endpoint
    b: Endpoint
    mtu: int | None = None


@dataclass(frozen=True)
class Topology:
    name: str
    file: Path
    nodes: Mapping[str, Node]
    links: tuple[Link, ...]

    def frr_nodes(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.frr_conf is not None]

    def bird_nodes(self) -> list[str]:
        return [n for n, node in self.nodes.items() if node.bird_conf is not None]

    def interfaces(self, node: str) -> list[str]:
        return [e.ifname for link in self.links for e in (link.a, link.b) if e.node == node]


# The bundled schema is containerlab's own file, unedited (srl-labs/containerlab, schemas/clab.schema.json,
# copied 2026-11-21). To update it, replace the file with a newer release's and change this digest in the
# same commit; tests/lab/test_topology.py holds the two together, so an accidental edit is caught.
CLAB_SCHEMA_SHA256 = "51a7025041d90fcded90911d4947773794464ccd903f01c03d5b2ff988f58d02"


@cache
def clab_schema() -> dict[str, Any]:
    """containerlab's topology JSON Schema (srl-labs/containerlab ``schemas/clab.schema.json``)."""
    text = resources.files("bgpctl_lab").joinpath("clab.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_problems(data: Any, file: str) -> list[Problem]:
    """Every violation of containerlab's schema, sorted by location."""
    validator = Draft202012Validator(clab_schema())
    problems = []
    for top in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        err = _deepest(top)
        path = ".".join(str(p) for p in err.absolute_path)
        problems.append(Problem(file, None, path, err.message, "see https://containerlab.dev/manual/topo-def-file/"))
    return problems


def _deepest(err: ValidationError) -> ValidationError:
    """For anyOf/oneOf failures, the alternative that got furthest into the document names the real
    mistake ("'cr-eth1' does not match '^\\S+:\\S+$'" rather than "not valid under any of the given schemas")."""
    while err.context:
        deeper = max(err.context, key=lambda e: len(e.absolute_path))
        if len(deeper.absolute_path) <= len(err.absolute_path):
            break
        err = deeper
    return err


def _merged_node(raw: Mapping[str, Any], name: str, topo: Mapping[str, Any]) -> dict[str, Any]:
    """containerlab precedence: node settings over ``kinds.<kind>`` over ``defaults``."""
    node = dict(raw or {})
    defaults = dict(topo.get("defaults") or {})
    kind = node.get("kind", defaults.get("kind"))
    kind_cfg = dict((topo.get("kinds") or {}).get(kind) or {}) if kind else {}
    merged: dict[str, Any] = {}
    for layer in (defaults, kind_cfg, node):
        for key, value in layer.items():
            if key == "env" and isinstance(value, Mapping):
                merged["env"] = {**merged.get("env", {}), **value}
            elif key == "binds" and isinstance(value, list):
                merged["binds"] = [*merged.get("binds", []), *value]
            else:
                merged[key] = value
    return merged


def _parse_bind(spec: str, base: Path) -> Bind | None:
    parts = spec.split(":")
    if len(parts) not in (2, 3):
        return None
    host, target = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else ""
    host_path = Path(host)
    if not host_path.is_absolute():
        host_path = base / host_path
    return Bind(host_path, PurePosixPath(target), "ro" in mode.split(","))


def _addr4(spec: str | None) -> ipaddress.IPv4Interface | None:
    return ipaddress.IPv4Interface(spec) if spec else None


def _addr6(spec: str | None) -> ipaddress.IPv6Interface | None:
    return ipaddress.IPv6Interface(spec) if spec else None


@dataclass
class _Reading:
    """What the topology's builders share: the file (for problems), its directory (for binds), the
    declared node names, and the problems found so far (every one is reported, not only the first)."""

    fname: str
    base: Path
    node_names: frozenset[str]
    problems: list[Problem] = field(default_factory=list)

    def problem(self, where: str, what: str, hint: str = "") -> None:
        self.problems.append(Problem(self.fname, None, where, what, hint))


def model(data: Mapping[str, Any], file: Path) -> Topology:
    """Build the runner's model from schema-valid data; raise TopologyError for what the runner cannot do."""
    topo = data["topology"]
    raw_nodes = topo.get("nodes") or {}
    rd = _Reading(str(file), file.parent, frozenset(raw_nodes))
    nodes: dict[str, Node] = {}
    for name, raw in raw_nodes.items():
        node = _node(rd, name, _merged_node(raw, name, topo))
        if node is not None:
            nodes[name] = node
    links: list[Link] = []
    seen: dict[tuple[str, str], str] = {}
    for i, raw_link in enumerate(topo.get("links") or []):
        link = _link(rd, f"topology.links.{i}", raw_link, seen)
        if link is not None:
            links.append(link)
    if rd.problems:
        raise TopologyError(rd.problems)
    return Topology(name=data["name"], file=file, nodes=nodes, links=tuple(links))


def _node(rd: _Reading, name: str, cfg: Mapping[str, Any]) -> Node | None:
    where = f"topology.nodes.{name}"
    kind = cfg.get("kind")
    if kind != "linux":
        rd.problem(
            f"{where}.kind",
            f"kind {kind!r} is not supported by the namespace runner",
            "use kind linux; a bridge is a linux node whose exec creates it (see node ic)",
        )
        return None
    for key in sorted(set(cfg) - SUPPORTED_NODE_KEYS):
        rd.problem(
            f"{where}.{key}",
            "not supported by the namespace runner",
            f"supported: {', '.join(sorted(SUPPORTED_NODE_KEYS))}",
        )
    return Node(
        name=name,
        kind=kind,
        image=cfg.get("image"),
        binds=_binds(rd, where, cfg.get("binds") or []),
        exec=_commands(rd, where, cfg.get("exec") or []),
        env={str(k): _env_str(v) for k, v in (cfg.get("env") or {}).items()},
        sysctls={str(k): _env_str(v) for k, v in (cfg.get("sysctls") or {}).items()},
    )


def _binds(rd: _Reading, where: str, specs: list[str]) -> tuple[Bind, ...]:
    binds: list[Bind] = []
    for i, spec in enumerate(specs):
        bind = _parse_bind(spec, rd.base)
        if bind is None:
            rd.problem(f"{where}.binds.{i}", f"{spec!r} is not host:container[:mode]")
            continue
        if bind.target in (FRR_CONF_TARGET, FRR_DAEMONS_TARGET) and not bind.host.is_file():
            rd.problem(
                f"{where}.binds.{i}",
                f"{bind.host} does not exist",
                "paths are relative to the topology file's directory",
            )
        binds.append(bind)
    return tuple(binds)


def _commands(rd: _Reading, where: str, lines: list[str]) -> tuple[tuple[str, ...], ...]:
    commands: list[tuple[str, ...]] = []
    for i, line in enumerate(lines):
        try:
            argv = tuple(shlex.split(line))
        except ValueError as e:
            rd.problem(f"{where}.exec.{i}", f"cannot split {line!r}: {e}")
            continue
        if argv:
            commands.append(argv)
    return tuple(commands)


def _link(rd: _Reading, where: str, raw_link: Mapping[str, Any], seen: dict[tuple[str, str], str]) -> Link | None:
    for key in sorted(set(raw_link) - SUPPORTED_LINK_KEYS):
        rd.problem(
            f"{where}.{key}",
            "not supported by the namespace runner",
            "use brief links: endpoints [node:if, node:if] with optional ipv4/ipv6",
        )
    eps = raw_link.get("endpoints") or []
    if len(eps) != 2:
        rd.problem(f"{where}.endpoints", "a link needs exactly two endpoints")
        return None
    v4: list[str | None] = [*(raw_link.get("ipv4") or []), None, None]
    v6: list[str | None] = [*(raw_link.get("ipv6") or []), None, None]
    ends = [
        _endpoint(rd, ep, at=f"{where}.endpoints.{j}", where=where, v4=v4[j], v6=v6[j], seen=seen)
        for j, ep in enumerate(eps)
    ]
    return Link(ends[0], ends[1], raw_link.get("mtu"))


def _endpoint(
    rd: _Reading, ep: str, *, at: str, where: str, v4: str | None, v6: str | None, seen: dict[tuple[str, str], str]
) -> Endpoint:
    node, _, ifname = ep.partition(":")
    if node not in rd.node_names:
        rd.problem(at, f"unknown node {node!r}")
    if not ifname or len(ifname) > IFNAME_MAX or "/" in ifname:
        rd.problem(at, f"interface name {ifname!r} is not valid on Linux", f"1 to {IFNAME_MAX} characters, no '/'")
    if (node, ifname) in seen:
        rd.problem(at, f"{ep} is already used by {seen[node, ifname]}")
    seen[node, ifname] = where
    try:
        ip4 = _addr4(v4)
        ip6 = _addr6(v6)
    except ValueError as e:
        rd.problem(where, str(e))
        ip4 = ip6 = None
    return Endpoint(node, ifname, ip4, ip6)


def _env_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def load(file: Path) -> Topology:
    """Read, validate (containerlab schema, then the runner's subset) and model a topology file."""
    file = file.resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        raise LabError(f"cannot read topology file {file}: {e.strerror}; pass --file PATH") from e
    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as e:
        raise TopologyError([Problem(str(file), None, "", f"not valid YAML: {e}")]) from e
    problems = schema_problems(data, str(file))
    if problems:
        raise TopologyError(problems)
    return model(data, file)
