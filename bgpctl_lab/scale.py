"""The scale lab (issue 13 point 3): a containerlab topology, FRR configs, lab services and a bgpctl policy
of any size, generated into a directory that ``bgpctl lab up --topology DIR/containerlab.yml`` (the
namespace runner) and real containerlab (``containerlab deploy -t DIR/containerlab.yml``) both run.

Shape (every address from 198.18.0.0/15, 192.0.2.0/24; nothing touches the root namespace)::

    edge01..edgeNN (AS 65101..) --+                                      +-- tgw-use1a (AS64512) --+-- connect-use1
                                  +--- ic: interconnect 198.18.1.0/24 ---+-- tgw-use1b (AS64513) --+
                     cr (AS65000) +                                      +-- tgw-usw2a (AS64514) --+-- connect-usw2
                                                                         +-- tgw-usw2b (AS64515) --+

* two regions with two paths each (one TGW per path): ``services`` services x 4 = the probed paths;
* ``prefixes`` Connect prefixes (/27s of 198.19.0.0/16, at most 2048), dealt to the services in turn
  (contiguous blocks); every service's probe target is an address of its first prefix, on both regions'
  Connect nodes' loopback, answered by the lab's reflector (STAMP, TCP) or the kernel (ICMP);
* the services, their SLA classes and actions are the reference lab's (``policies/lab.yaml``): service
  ``i`` copies media, signalling or api in turn (probe protocol, interval, timeout, mode, order), so the
  probe load grows like the reference lab's mix;
* every edge takes the Connect prefixes from cr with ADD-PATH and installs both regions as ECMP (as the
  reference edge); the TGWs take the agents' prefix from cr. A region failure is its TGWs' links to the
  region's Connect node going down (``lab/drills/region-blackhole.yaml`` for both of the region's TGWs).

Pure: :func:`render` returns the files as text; :func:`write` puts them in a directory.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from bgpctl.errors import LabError

REFERENCE_POLICY = Path(__file__).resolve().parents[1] / "policies" / "lab.yaml"
"""The reference lab's policy: its SLA classes, actions, speaker and service templates are reused."""

FRR_IMAGE = "quay.io/frrouting/frr:10.2.1"  # what containerlab.yml names; the namespace runner ignores it
HOST_IMAGE = "nicolaka/netshoot:v0.13"

LOCAL_AS = 65000
CR = "198.18.1.2"
EDGE_AS_BASE = 65100  # edgeNN: AS 65100 + NN
EDGE_ADDR_BASE = 100  # edgeNN: 198.18.1.(100 + NN)
INTERCONNECT = "198.18.1.0/24"
CONNECT_SPACE = ipaddress.IPv4Network("198.19.0.0/16")
PREFIX_LEN = 27
MAX_PREFIXES = 2 ** (PREFIX_LEN - CONNECT_SPACE.prefixlen)
MAX_EDGES = 64
MAX_SERVICES = 64
AGENTS = "192.0.2.0/24"
TEMPLATES = ("media", "signalling", "api")  # services of the reference policy, dealt in turn
REGIONS = ("use1", "usw2")


@dataclass(frozen=True)
class Tgw:
    """One path into a region: its TGW node, BGP and the /30 towards the region's Connect node."""

    region: str
    path: str  # "a" or "b"
    address: str  # on the interconnect
    asn: int
    probe_source: str  # cr's extra address pinned to this path
    table: int
    link_tgw: str  # /30 address on the TGW's eth2
    link_connect: str  # /30 address on the Connect node's side

    @property
    def name(self) -> str:
        return f"tgw-{self.region}{self.path}"


TGWS: tuple[Tgw, ...] = (
    Tgw("use1", "a", "198.18.1.11", 64512, "198.18.1.21", 101, "198.18.11.1/30", "198.18.11.2/30"),
    Tgw("use1", "b", "198.18.1.12", 64513, "198.18.1.22", 102, "198.18.11.5/30", "198.18.11.6/30"),
    Tgw("usw2", "a", "198.18.1.13", 64514, "198.18.1.23", 103, "198.18.12.1/30", "198.18.12.2/30"),
    Tgw("usw2", "b", "198.18.1.14", 64515, "198.18.1.24", 104, "198.18.12.5/30", "198.18.12.6/30"),
)


@dataclass(frozen=True)
class Size:
    """How big the scale lab is; :meth:`check` refuses what the address plan cannot hold."""

    prefixes: int = 1000
    edges: int = 16
    services: int = 16
    interval_ms: float | None = None  # every service probes this often; None: the reference template's

    def check(self) -> Size:
        problems = []
        if not self.services <= self.prefixes <= MAX_PREFIXES:
            problems.append(
                f"--prefixes {self.prefixes}: give {self.services}-{MAX_PREFIXES} (at least one per service; "
                f"/{PREFIX_LEN}s of {CONNECT_SPACE})"
            )
        if not 1 <= self.edges <= MAX_EDGES:
            problems.append(f"--edges {self.edges}: give 1-{MAX_EDGES} (edge addresses 198.18.1.101-164)")
        if not 1 <= self.services <= MAX_SERVICES:
            problems.append(f"--services {self.services}: give 1-{MAX_SERVICES} (each has 4 probed paths)")
        if self.interval_ms is not None and not 20 <= self.interval_ms <= 60000:
            problems.append(f"--interval-ms {self.interval_ms:g}: give 20-60000 (the policy's probe interval range)")
        if problems:
            raise LabError("scale lab: " + "; ".join(problems))
        return self

    @property
    def paths(self) -> int:
        return self.services * len(TGWS)

    def label(self) -> str:
        return f"{self.prefixes} prefixes, {self.edges} edges, {self.paths} paths"


def edge_names(size: Size) -> list[str]:
    return [f"edge{i:02d}" for i in range(1, size.edges + 1)]


def edge_address(index: int) -> str:
    """Interconnect address of edge number ``index`` (1-based)."""
    return f"198.18.1.{EDGE_ADDR_BASE + index}"


def service_names(size: Size) -> list[str]:
    return [f"svc{i:02d}" for i in range(1, size.services + 1)]


def service_prefixes(size: Size) -> dict[str, list[str]]:
    """Service -> its prefixes: contiguous /27 blocks, the first services one larger when they do not divide."""
    nets = CONNECT_SPACE.subnets(new_prefix=PREFIX_LEN)
    per, extra = divmod(size.prefixes, size.services)
    out: dict[str, list[str]] = {}
    for i, name in enumerate(service_names(size)):
        out[name] = [str(next(nets)) for _ in range(per + (1 if i < extra else 0))]
    return out


def probe_target(prefixes: list[str]) -> str:
    """The service's probe target: address 10 of its first prefix."""
    return str(ipaddress.IPv4Network(prefixes[0]).network_address + 10)


def all_prefixes(size: Size) -> list[str]:
    return [p for ps in service_prefixes(size).values() for p in ps]


def region_tgws(region: str) -> list[Tgw]:
    return [t for t in TGWS if t.region == region]


# ---------------------------------------------------------------------------------------------- policy


def _reference() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(REFERENCE_POLICY.read_text(encoding="utf-8"))
    return data


def policy(size: Size, *, group_updates: bool | None = None) -> dict[str, Any]:
    """The bgpctl policy of the scale lab, built from the reference policy's vocabulary."""
    ref = _reference()
    speaker = dict(ref["speaker"])
    if group_updates is not None:
        speaker["exabgp"] = {**speaker["exabgp"], "group_updates": group_updates}
    peers: list[dict[str, Any]] = [
        {
            "name": name,
            "address": edge_address(i),
            "peer_as": EDGE_AS_BASE + i,
            "role": "edge",
            "timers": {"hold_time": 9},
            "add_path": "send",
        }
        for i, name in enumerate(edge_names(size), start=1)
    ]
    peers += [
        {"name": t.name, "address": t.address, "peer_as": t.asn, "role": "transit-gateway", "timers": {"hold_time": 9}}
        for t in TGWS
    ]
    regions = {
        region: {
            "description": ref["regions"][region].get("description", region),
            "paths": {
                t.path: {"peer": t.name, "next_hop": t.address, "probe_source": t.probe_source, "table": t.table}
                for t in region_tgws(region)
            },
        }
        for region in REGIONS
    }
    services: dict[str, Any] = {}
    for i, (name, prefixes) in enumerate(service_prefixes(size).items()):
        template = TEMPLATES[i % len(TEMPLATES)]
        svc = dict(ref["services"][template])
        probe = dict(svc["probe"])
        if size.interval_ms is not None:
            probe["interval_ms"] = size.interval_ms
        target = probe_target(prefixes)
        probe["targets"] = {region: {**probe["targets"][region], "address": target} for region in REGIONS}
        svc.update(description=f"scale lab service {i + 1} (as the reference lab's {template})", prefixes=prefixes)
        svc["probe"] = probe
        services[name] = svc
    first = service_names(size)[0]
    return {
        "version": ref["version"],
        "speaker": speaker,
        "peers": peers,
        "regions": regions,
        "services": services,
        "sla_classes": ref["sla_classes"],
        "actions": ref["actions"],
        "corporate": {"prefixes": [AGENTS], "next_hop": edge_address(1), "follow_service": first},
        # every change of a failover must go at once: the largest limit the policy allows
        "guards": {
            "allowlist": [str(CONNECT_SPACE), AGENTS],
            "fail_static": True,
            "max_route_changes_per_minute": 100000,
        },
    }


# ---------------------------------------------------------------------------------------------- FRR

_HEADER = """\
frr version 8.4.4
frr defaults traditional
hostname {name}
log timestamp precision 3
service integrated-vtysh-config
!
ip forwarding
!
"""

DAEMONS = """\
# FRR daemons for this node: read by FRR's container start script under real containerlab, and by
# `bgpctl lab up` (zebra and staticd always run; the daemons set to yes here run as well).
bgpd=yes
bfdd=no
vtysh_enable=yes
zebra_options="  -A 127.0.0.1 -s 90000000"
bgpd_options="   -A 127.0.0.1"
staticd_options="-A 127.0.0.1"
"""


def edge_frr(name: str, index: int) -> str:
    """An edge: the Connect prefixes from cr (ADD-PATH receive is FRR's default), both regions as ECMP."""
    return _HEADER.format(name=name) + (
        f"ip prefix-list CONNECT seq 10 permit {CONNECT_SPACE} le {PREFIX_LEN}\n"
        f"ip prefix-list AGENTS seq 10 permit {AGENTS}\n"
        "!\n"
        "route-map FROM-CONNECT permit 10\n match ip address prefix-list CONNECT\nexit\n!\n"
        "route-map TO-CONNECT permit 10\n match ip address prefix-list AGENTS\nexit\n!\n"
        f"router bgp {EDGE_AS_BASE + index}\n"
        f" bgp router-id {edge_address(index)}\n"
        " bgp log-neighbor-changes\n"
        " bgp bestpath as-path multipath-relax\n"
        " timers bgp 3 9\n"
        " neighbor CONTROLLER peer-group\n"
        f" neighbor CONTROLLER remote-as {LOCAL_AS}\n"
        " neighbor CONTROLLER description bgpctl (ExaBGP on cr): Connect prefixes via add-path\n"
        " neighbor CONTROLLER timers connect 1\n"
        " neighbor CONTROLLER advertisement-interval 0\n"
        f" neighbor {CR} peer-group CONTROLLER\n"
        " !\n"
        " address-family ipv4 unicast\n"
        "  maximum-paths 8\n"
        "  neighbor CONTROLLER route-map FROM-CONNECT in\n"
        "  neighbor CONTROLLER route-map TO-CONNECT out\n"
        " exit-address-family\n"
        "exit\n!\n"
    )


def tgw_frr(tgw: Tgw) -> str:
    """A TGW: the Connect space by a static route to its region's Connect node; the agents' prefix from cr."""
    connect_hop = ipaddress.IPv4Interface(tgw.link_connect).ip
    return _HEADER.format(name=tgw.name) + (
        f"ip route {CONNECT_SPACE} {connect_hop}\n"
        "!\n"
        f"ip prefix-list CONNECT seq 10 permit {CONNECT_SPACE} le {PREFIX_LEN}\n"
        f"ip prefix-list AGENTS seq 10 permit {AGENTS}\n"
        "!\n"
        "route-map TO-CORPORATE permit 10\n match ip address prefix-list CONNECT\nexit\n!\n"
        "route-map FROM-CORPORATE permit 10\n match ip address prefix-list AGENTS\nexit\n!\n"
        f"router bgp {tgw.asn}\n"
        f" bgp router-id {tgw.address}\n"
        " bgp log-neighbor-changes\n"
        " timers bgp 3 9\n"
        " neighbor CONTROLLER peer-group\n"
        f" neighbor CONTROLLER remote-as {LOCAL_AS}\n"
        " neighbor CONTROLLER description bgpctl (ExaBGP on cr): agents prefix, next hop = an edge\n"
        " neighbor CONTROLLER timers connect 1\n"
        " neighbor CONTROLLER advertisement-interval 0\n"
        f" neighbor {CR} peer-group CONTROLLER\n"
        " !\n"
        " address-family ipv4 unicast\n"
        "  neighbor CONTROLLER route-map FROM-CORPORATE in\n"
        "  neighbor CONTROLLER route-map TO-CORPORATE out\n"
        " exit-address-family\n"
        "exit\n!\n"
    )


# ---------------------------------------------------------------------------------------------- topology


def _frr_node(name: str) -> dict[str, Any]:
    return {
        "kind": "linux",
        "image": FRR_IMAGE,
        "binds": [f"lab/{name}/frr.conf:/etc/frr/frr.conf", f"lab/{name}/daemons:/etc/frr/daemons"],
    }


def topology(size: Size, name: str = "bgpctl-scale") -> dict[str, Any]:
    """The containerlab topology (``kind: linux`` nodes, brief links, a bridge inside node ic)."""
    edges = edge_names(size)
    targets = sorted({probe_target(ps) for ps in service_prefixes(size).values()}, key=ipaddress.IPv4Address)
    ports = ["cr", *edges, *(t.name for t in TGWS)]
    nodes: dict[str, Any] = {
        "ic": {
            "kind": "linux",
            "image": HOST_IMAGE,
            "exec": ["ip link add br0 type bridge", "ip link set br0 up"]
            + [f"ip link set {p} master br0" for p in ports],
        },
        "cr": {
            "kind": "linux",
            "image": HOST_IMAGE,
            "exec": [f"ip addr add {CR}/24 dev eth1"] + [f"ip addr add {t.probe_source}/24 dev eth1" for t in TGWS],
        },
    }
    for i, edge in enumerate(edges, start=1):
        nodes[edge] = {**_frr_node(edge), "exec": [f"ip addr add {edge_address(i)}/24 dev eth1"]}
    for t in TGWS:
        nodes[t.name] = {**_frr_node(t.name), "exec": [f"ip addr add {t.address}/24 dev eth1"]}
    for region in REGIONS:
        tgws = region_tgws(region)
        lines = [f"ip addr add {a}/32 dev lo" for a in targets]
        # each path's probes come in over its own TGW and are answered back over it
        lines += [
            f"ip route add {t.probe_source}/32 via {ipaddress.IPv4Interface(t.link_tgw).ip} dev eth{k}"
            for k, t in enumerate(tgws, start=1)
        ]
        lines.append(f"ip route add default via {ipaddress.IPv4Interface(tgws[0].link_tgw).ip} dev eth1")
        nodes[f"connect-{region}"] = {"kind": "linux", "image": HOST_IMAGE, "exec": lines}
    links: list[dict[str, Any]] = [{"endpoints": [f"{p}:eth1", f"ic:{p}"]} for p in ports]
    for region in REGIONS:
        for k, t in enumerate(region_tgws(region), start=1):
            links.append(
                {"endpoints": [f"{t.name}:eth2", f"connect-{region}:eth{k}"], "ipv4": [t.link_tgw, t.link_connect]}
            )
    return {
        "name": name,
        "prefix": "",
        "mgmt": {"network": f"{name}-mgmt", "ipv4-subnet": "198.18.254.0/24"},
        "topology": {"nodes": nodes, "links": links},
    }


def services(reflector_seconds: int = 900) -> dict[str, Any]:
    """``lab/services.yaml``: a reflector per Connect node (per-source rate raised: one probe source
    carries every service of its path) and bgpctl on cr in controller mode with the generated policy."""
    reflector = {
        "name": "reflector",
        "argv": ["{python}", "-m", "bgpctl", "reflector", "--port", "862", "--tcp-port", "443",
                 "--rate", "5000", "--burst", "5000", "--seconds", str(reflector_seconds)],
    }  # fmt: skip
    daemon = {
        "name": "daemon",
        "modes": ["controller"],
        "argv": ["{python}", "-m", "bgpctl", "daemon", "--policy", "{root}/policy.yaml", "--run-dir",
                 "{node_dir}/bgpctl", "--metrics", "127.0.0.1:9477", "--log-format", "json"],
    }  # fmt: skip
    return {f"connect-{r}": [reflector] for r in REGIONS} | {"cr": [daemon]}


# ---------------------------------------------------------------------------------------------- files


def _yaml(data: Any, header: str) -> str:
    out = StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.representer.sort_base_mapping_type_on_output = False  # keys in the order written here
    yaml.representer.ignore_aliases = lambda _data: True  # shared values written out, not as &anchors
    yaml.dump(data, out)
    return "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + out.getvalue()


def render(
    size: Size, *, name: str = "bgpctl-scale", group_updates: bool | None = None, reflector_seconds: int = 900
) -> dict[str, str]:
    """Every file of the scale lab, by path relative to its directory."""
    size.check()
    what = f"scale lab ({size.label()}), generated by bgpctl_lab.scale"
    files = {
        "containerlab.yml": _yaml(
            topology(size, name),
            f"{what}.\nReal containerlab deploys it as is; `bgpctl lab up --topology THIS` runs it on namespaces.",
        ),
        "policy.yaml": _yaml(policy(size, group_updates=group_updates), f"bgpctl policy of the {what}."),
        "lab/services.yaml": _yaml(services(reflector_seconds), f"Services of the {what}."),
    }
    for i, edge in enumerate(edge_names(size), start=1):
        files[f"lab/{edge}/frr.conf"] = f"! {edge}: edge router of the {what}\n" + edge_frr(edge, i)
        files[f"lab/{edge}/daemons"] = DAEMONS
    for t in TGWS:
        files[f"lab/{t.name}/frr.conf"] = f"! {t.name}: {t.region} path {t.path} of the {what}\n" + tgw_frr(t)
        files[f"lab/{t.name}/daemons"] = DAEMONS
    return files


def write(directory: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` under ``directory`` (created); returns the topology file."""
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory / "containerlab.yml"
