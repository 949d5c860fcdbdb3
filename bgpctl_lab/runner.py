"""Run a containerlab topology on plain network namespaces: ``up``, ``down`` and the ``Lab`` handle.

One namespace per node (``<lab>-<node>``), one veth pair per link (created inside a node's namespace
with its peer placed directly in the other's: nothing ever touches the root namespace), each node's
``exec`` commands, FRR daemons per FRR node (pathspace = namespace name), one BIRD per BIRD node (its
control socket and pid file in the node's run directory: the edge variants ``--edge bird`` and
``bird-no-addpath``), and a run directory per node
(``/run/bgpctl-lab/<lab>/<node>/``) with the daemons' logs and the output of spawned helpers.

``up`` records what it is about to create before creating it, so ``down`` removes everything even after
a crash: every process whose network namespace is one of the lab's (compared by nsfs inode), every
recorded process that is provably still ours (start time and cmdline, see ``_is_ours``), the namespaces
(and with them the veths), FRR's socket directories and the run directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bgpctl.errors import LabError
from bgpctl_lab import bird, frr, netns
from bgpctl_lab.poll import BUDGETS, BudgetExceeded, eventually
from bgpctl_lab.services import SUPERVISED_PREFIX, TAG_PREFIX, Service, load_services, option, service, services_file
from bgpctl_lab.state import LabState, NodeState, Proc, lab_dir, locked, read, write
from bgpctl_lab.topology import EDGE_VARIANTS, Topology, load

DEFAULT_NAME = "bgpctl"
DEFAULT_MODE = "no-controller"
UP_BUDGET_S = BUDGETS["lab_up"]  # every session between the lab's FRR nodes Established (issue: "< 20 s")
SOCKET_BUDGET_S = BUDGETS["frr_socket"]  # an FRR daemon's vty socket appears
IP = "ip"


def _ns_name(lab: str, node: str) -> str:
    return f"{lab}-{node}"


def _ns_argv(ns: str, argv: Sequence[str]) -> list[str]:
    return [IP, "netns", "exec", ns, *argv]


def _frr_user() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam("frr")
    except KeyError as e:
        raise LabError("user frr does not exist: install FRR (apt-get install frr)") from e
    return pw.pw_uid, pw.pw_gid


def _require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise LabError(f"`bgpctl lab {what}` needs root (network namespaces, FRR): run it with sudo")


def _is_ours(proc: Proc, ns: str) -> bool:
    """A recorded pid is still the process we started: same start time (pids are reused, start times
    are not) and either the cmdline we started (before or after `ip netns exec`) or, for a helper that
    exec'd another program, still inside the node's namespace."""
    # /proc/PID/cmdline reads empty while the process is inside execve() (CI: `sh -c '...; exec sleep 60'`
    # judged not ours in that instant): an empty command line is decided by start time and namespace
    cmd = netns.proc_cmdline(proc.pid)
    if proc.start is not None and netns.proc_starttime(proc.pid) != proc.start:
        return False
    if cmd is not None and cmd in (proc.argv, _ns_argv(ns, proc.argv)):
        return True
    return proc.start is not None and netns.alive(proc.pid) and netns.proc_netns(proc.pid) == netns.ns_id(ns)


class Lab:
    """A running lab, from its on-disk state. Cheap to create: the node inventory is read once, the
    process lists and the mode are re-read on every call (other processes may change them)."""

    def __init__(self, state: LabState) -> None:
        self._state = state
        self.name = state.name
        self.run_dir = Path(state.run_dir)

    @classmethod
    def attach(cls, name: str = DEFAULT_NAME) -> Lab:
        st = read(name)
        if st is None:
            raise LabError(f"lab {name!r} is not up; start it with `bgpctl lab up --lab {name}`")
        if st.phase != "up":
            raise LabError(
                f"lab {name!r} did not finish coming up (phase {st.phase!r}); run "
                f"`bgpctl lab down --lab {name}` and `bgpctl lab up --lab {name}`"
            )
        return cls(st)

    # ------------------------------------------------------------------ inventory

    def _refresh(self) -> LabState:
        st = read(self.name)
        if st is None:
            raise LabError(f"lab {self.name!r} is no longer up (it was taken down)")
        self._state = st
        return st

    @property
    def mode(self) -> str:
        return self._refresh().mode

    @property
    def topology_file(self) -> Path:
        return Path(self._state.topology)

    def nodes(self) -> list[str]:
        return list(self._state.nodes)

    def frr_nodes(self) -> list[str]:
        return [n for n, ns in self._state.nodes.items() if ns.frr_conf is not None]

    def edge_variant(self) -> str:
        """Which ``--edge`` the lab runs (the variant whose topology file it was brought up from; else frr)."""
        name = self.topology_file.name
        return next((v for v, f in EDGE_VARIANTS.items() if f == name), "frr")

    def bird_nodes(self) -> list[str]:
        return [n for n, ns in self._state.nodes.items() if ns.bird_conf is not None]

    def bgpd_nodes(self) -> list[str]:
        """FRR nodes that run bgpd (the HA lab's controller hosts run FRR for bfdd alone)."""
        return [n for n in self.frr_nodes() if "bgpd" in self._state.nodes[n].daemons]

    def routing_nodes(self) -> list[str]:
        """Nodes that run a BGP daemon the lab started (FRR's bgpd or BIRD)."""
        return [n for n in self._state.nodes if n in self.bgpd_nodes() or n in self.bird_nodes()]

    def _node(self, node: str) -> NodeState:
        try:
            return self._state.nodes[node]
        except KeyError:
            raise LabError(f"lab {self.name!r} has no node {node!r}; nodes: {', '.join(self._state.nodes)}") from None

    def netns(self, node: str) -> str:
        return self._node(node).netns

    def env(self, node: str) -> dict[str, str]:
        """The node's ``env`` from the topology (exec'd commands and spawned helpers get it)."""
        return dict(self._node(node).env)

    def node_dir(self, node: str) -> Path:
        return Path(self._node(node).dir)

    # ------------------------------------------------------------------ commands in a node

    def exec(
        self, node: str, argv: Sequence[str], *, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        ns = self._node(node)
        env = {**os.environ, **ns.env}
        try:
            proc = subprocess.run(
                _ns_argv(ns.netns, argv),
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            raise LabError(f"{node}: {' '.join(argv)} did not finish within {timeout:g} s") from e
        if check and proc.returncode != 0:
            raise LabError(
                f"{node}: {' '.join(argv)} exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-500:]}"
            )
        return proc

    def _frr_node(self, node: str) -> NodeState:
        ns = self._node(node)
        if ns.frr_conf is None:
            raise LabError(f"node {node!r} runs no FRR; FRR nodes: {', '.join(self.frr_nodes())}")
        return ns

    def vtysh(self, node: str, command: str) -> str:
        return frr.vtysh(self._frr_node(node).netns, [command])

    def configure(self, node: str, lines: Sequence[str]) -> None:
        """Apply configuration lines in one vtysh call (``configure terminal`` ... ``end``), e.g.
        ``["router bgp 65010", "neighbor 198.18.1.12 shutdown"]``. Not written back to frr.conf."""
        frr.vtysh(self._frr_node(node).netns, ["configure terminal", *lines, "end"])

    def vtysh_json(self, node: str, command: str) -> Any:
        ns = self._frr_node(node).netns
        return frr.parse_json(ns, command, frr.vtysh(ns, [command]))

    def sessions(self, node: str) -> dict[str, str]:
        """{peer: BGP state} of one node: FRR's peer addresses, or BIRD's enabled BGP protocols."""
        if node in self.bird_nodes():
            return bird.bgp_sessions(bird.parse_protocols(self.birdc(node, "show protocols")))
        return frr.session_states(self.vtysh_json(node, "show bgp summary json"))

    # ------------------------------------------------------------------ BIRD

    def _bird_node(self, node: str) -> NodeState:
        ns = self._node(node)
        if ns.bird_conf is None:
            raise LabError(f"node {node!r} runs no BIRD; BIRD nodes: {', '.join(self.bird_nodes()) or 'none'}")
        return ns

    def birdc(self, node: str, command: str) -> str:
        return bird.birdc(Path(self._bird_node(node).dir), command)

    def bird_routes(self, node: str, prefix: str) -> list[bird.Route]:
        """BIRD's routes for ``prefix`` (every path it holds, the best one marked)."""
        return bird.parse_routes(self.birdc(node, f"show route for {prefix} all"))

    def kernel_next_hops(self, node: str, prefix: str) -> list[str]:
        """The next hops the node's kernel forwards ``prefix`` on (``ip -j route``: structured; either family:
        without ``-6`` ip would look for an IPv6 prefix in the IPv4 table and find nothing)."""
        family = "-6" if ":" in prefix else "-4"
        out = self.exec(node, [IP, "-j", family, "route", "show", "exact", prefix]).stdout
        return bird.kernel_hops(out)

    def query_json(self, node: str, command: str) -> Any:
        """A drill check's structured state: FRR's vtysh JSON, or for a BIRD node the same shape as FRR's
        ``show ip route PREFIX json`` (the only command a BIRD node answers), from birdc and the kernel."""
        if node not in self.bird_nodes():
            return self.vtysh_json(node, command)
        prefix = bird.route_command(command)
        if prefix is None:
            raise LabError(
                f"node {node!r} runs BIRD: a check there must be 'show ip route PREFIX json' "
                f"(answered from birdc and the kernel), not {command!r}"
            )
        return bird.route_json(prefix, self.bird_routes(node, prefix), self.kernel_next_hops(node, prefix))

    def bird_alive(self, node: str) -> bool:
        ns = self.netns(node)
        procs = [p for p in self._refresh().frr if p.node == node and p.tag == "bird"]
        return bool(procs) and all(netns.alive(p.pid) and _is_ours(p, ns) for p in procs)

    def clear_bgp(self, node: str, peer: str) -> None:
        self.vtysh(node, f"clear bgp {peer}")

    def link_set(self, node: str, ifname: str, up: bool) -> None:
        netns.set_link(self.netns(node), ifname, up)

    # ------------------------------------------------------------------ FRR

    def frr_pids(self, node: str | None = None) -> list[Proc]:
        return [p for p in self._refresh().frr if node is None or p.node == node]

    def frr_alive(self, node: str) -> bool:
        ns = self.netns(node)
        procs = self.frr_pids(node)
        return bool(procs) and all(netns.alive(p.pid) and _is_ours(p, ns) for p in procs)

    def stop_frr(self, node: str) -> None:
        ns = self._frr_node(node).netns
        with locked(self.name):
            st = self._refresh()
            mine = [p for p in st.frr if p.node == node]
            netns.terminate([p.pid for p in mine if _is_ours(p, ns)])
            st.frr = [p for p in st.frr if p.node != node]
            write(st)
        _clear_sockets(ns)

    def start_frr(self, node: str) -> None:
        """Start the node's FRR daemons (if they are not running), push its frr.conf, apply the lab mode."""
        self._frr_node(node)
        if self.frr_alive(node):
            return
        self.stop_frr(node)  # whatever is left of a partial start
        _start_frr(self.name, [node])
        st = self._refresh()
        _configure_frr(st, [node])

    def set_mode(self, mode: str) -> None:
        with locked(self.name):
            st = self._refresh()
            _check_bird_mode(st, mode)
            _apply_mode(st, self.frr_nodes(), mode)
            _apply_bird_mode(st, self.bird_nodes(), mode)
            st.mode = mode
            write(st)

    def established(self) -> dict[str, dict[str, str]]:
        """{node: {peer: state}} for the sessions that must be Established: those not administratively
        shut between the lab's FRR nodes, and in controller mode (bgpctl's daemon runs on cr) also those
        with cr."""
        frr_addrs = self._frr_addresses()
        everyone = not frr.frr_only(self.mode)
        out: dict[str, dict[str, str]] = {}
        for node in self.bgpd_nodes():
            out[node] = {
                p: s for p, s in self.sessions(node).items() if (everyone or p in frr_addrs) and not frr.admin_down(s)
            }
        for node in self.bird_nodes():  # the mode disabled the protocols that must not be up
            out[node] = self.sessions(node)
        return out

    def wait_established(self, budget: float = UP_BUDGET_S) -> float:
        """Poll until every session of ``established()`` is Established; returns the seconds it took."""

        def pending(sessions: dict[str, dict[str, str]]) -> list[str]:
            if not sessions:
                return ["no FRR sessions yet"]
            return [f"{n}: {p} {s}" for n, peers in sessions.items() for p, s in peers.items() if s != "Established"]

        try:
            return eventually(
                f"lab {self.name}: BGP sessions Established",
                budget=budget,
                probe=self.established,
                check=pending,
                interval_s=0.1,
            ).elapsed_s
        except BudgetExceeded as e:
            raise LabError(f"{e}\nlook at {self.run_dir}/<node>/bgpd.log") from None

    def _frr_addresses(self) -> set[str]:
        addrs: set[str] = set()
        for node in self.routing_nodes():
            with netns.ipr(self.netns(node)) as ip:
                addrs.update(str(a.get_attr("IFA_ADDRESS")) for a in ip.get_addr())
        return addrs

    # ------------------------------------------------------------------ helper processes

    def spawn(self, node: str, argv: Sequence[str], *, tag: str, log_name: str) -> int:
        """Start a long-running helper in the node's namespace; stdout+stderr go to ``<node dir>/<log_name>``.
        Recorded in the state and killed by ``down`` (or ``kill_spawned``). Returns its pid."""
        ns = self._node(node)
        if "/" in log_name or not log_name:
            raise LabError(f"log_name {log_name!r} must be a plain file name (it goes in {ns.dir})")
        log = Path(ns.dir) / log_name
        with locked(self.name), log.open("ab") as out:
            st = self._refresh()
            proc = subprocess.Popen(
                _ns_argv(ns.netns, argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **ns.env},
            )
            st.spawned.append(Proc(proc.pid, node, tag, list(argv), str(log), netns.proc_starttime(proc.pid)))
            write(st)
        return proc.pid

    def spawned(self) -> list[Proc]:
        return list(self._refresh().spawned)

    def kill_spawned(
        self, *, tag: str | None = None, pid: int | None = None, node: str | None = None, grace: float = 1.0
    ) -> list[int]:
        """Stop spawned helpers selected by tag, pid and/or node (all when none is given); returns their pids.
        A tag alone selects that tag on every node (a service's tag is the same on each node that runs it)."""
        with locked(self.name):
            st = self._refresh()
            chosen = [
                p
                for p in st.spawned
                if (tag is None or p.tag == tag) and (pid is None or p.pid == pid) and (node is None or p.node == node)
            ]
            netns.terminate([p.pid for p in chosen if _is_ours(p, st.nodes[p.node].netns)], grace)
            st.spawned = [p for p in st.spawned if p not in chosen]
            write(st)
        return [p.pid for p in chosen]

    def spawned_alive(self, proc: Proc) -> bool:
        return netns.alive(proc.pid) and _is_ours(proc, self.netns(proc.node))


# ---------------------------------------------------------------------- services (lab/services.yaml)


def ensure_services(lab: Lab, services: dict[str, list[Service]], *, root: Path) -> list[str]:
    """Start every service of the lab's mode that is not running, stop those of other modes; returns
    the ``node/name`` of those started."""
    unknown = sorted(set(services) - set(lab.nodes()))
    if unknown:
        raise LabError(f"lab/services.yaml names nodes the topology does not have: {', '.join(unknown)}")
    running: set[tuple[str, str]] = set()
    for p in lab.spawned():
        if not p.tag.startswith((TAG_PREFIX, SUPERVISED_PREFIX)):
            continue
        if lab.spawned_alive(p):  # a supervised service counts as running (its supervisor restarts it)
            running.add((p.node, TAG_PREFIX + p.tag.split(":", 1)[1]))
        else:
            lab.kill_spawned(pid=p.pid)  # forget the dead one (it is not ours any more: nothing is signalled)
    mode = lab.mode
    started = []
    for node, items in services.items():
        for svc in items:
            tag = TAG_PREFIX + svc.name
            if not svc.runs_in(mode):
                for p in lab.spawned():
                    if p.node == node and p.tag in (tag, SUPERVISED_PREFIX + svc.name):
                        lab.kill_spawned(pid=p.pid, grace=20.0)
            elif (node, tag) not in running:
                install_files(svc, root=root, node_dir=lab.node_dir(node))
                argv = svc.resolved_argv(root=root, node_dir=lab.node_dir(node))
                lab.spawn(node, argv, tag=tag, log_name=f"{svc.name}.log")
                started.append(f"{node}/{svc.name}")
    return started


def install_files(svc: Service, *, root: Path, node_dir: Path, replace: bool = False) -> list[Path]:
    """Copy the service's ``install`` files into place (atomically); one already there is kept unless
    ``replace``. Returns the files written."""
    written = []
    for source, dest in svc.resolved_install(root=root, node_dir=node_dir):
        if dest.exists() and not replace:
            continue
        try:
            data = source.read_bytes()
        except OSError as e:
            raise LabError(f"lab/services.yaml: {svc.name}: cannot install {source}: {e.strerror}") from e
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        written.append(dest)
    return written


def lab_services(lab: Lab) -> dict[str, list[Service]]:
    return load_services(services_file(lab.topology_file))


def start_services(lab: Lab) -> list[str]:
    """Start the lab's services that are not running (``ensure_services`` with the topology's file)."""
    return ensure_services(lab, lab_services(lab), root=lab.topology_file.parent)


def service_run_dir(lab: Lab, node: str = "cr", name: str = "daemon") -> Path:
    """The ``--run-dir`` the service is started with (the daemon's control socket is there)."""
    argv = service(lab_services(lab), node, name).resolved_argv(
        root=lab.topology_file.parent, node_dir=lab.node_dir(node)
    )
    value = option(argv, "--run-dir")
    if value is None:
        raise LabError(f"lab/services.yaml: {node}/{name} has no --run-dir")
    return Path(value)


def service_file(lab: Lab, node: str, name: str, flag: str) -> tuple[Path, Path | None]:
    """The file the service is given with ``flag`` (the daemon's ``--policy``) and the file ``install`` copies
    there (None: it is not an installed copy)."""
    svc = service(lab_services(lab), node, name)
    root, node_dir = lab.topology_file.parent, lab.node_dir(node)
    value = option(svc.resolved_argv(root=root, node_dir=node_dir), flag)
    if value is None:
        raise LabError(f"lab/services.yaml: {node}/{name} has no {flag}")
    sources = [src for src, dest in svc.resolved_install(root=root, node_dir=node_dir) if dest == Path(value)]
    return Path(value), (sources[0] if sources else None)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _one(lab: Lab, node: str, tag: str) -> Proc | None:
    procs = [p for p in lab.spawned() if p.node == node and p.tag == tag and lab.spawned_alive(p)]
    if len(procs) > 1:
        raise LabError(f"{node}: {len(procs)} processes tagged {tag}: {[p.pid for p in procs]}")
    return procs[0] if procs else None


def supervisor_of(lab: Lab, node: str, name: str) -> Proc | None:
    """The running supervisor of service ``name`` (tag ``supervised:<name>``), if any."""
    return _one(lab, node, SUPERVISED_PREFIX + name)


def service_pid(lab: Lab, node: str, name: str) -> int | None:
    """The pid of the service's process: the plain one, or the supervisor's child (None: not running now,
    e.g. between a kill and the supervisor's restart)."""
    sup = supervisor_of(lab, node, name)
    if sup is not None:
        kids = [c for c in _children(sup.pid) if netns.alive(c)]
        return kids[0] if kids else None
    plain = _one(lab, node, TAG_PREFIX + name)
    return plain.pid if plain is not None else None


def supervise_service(lab: Lab, node: str, name: str, *, restart_sec: float, seconds: float = 86400) -> int:
    """Run service ``name`` under :mod:`bgpctl_lab.supervise` (systemd's ``Restart=always``) instead of
    plainly: the plain one is stopped (SIGTERM), the supervisor started (tag ``supervised:<name>``, its
    output appended to the service's log). Returns the supervisor's pid; a running supervisor is kept."""
    running = supervisor_of(lab, node, name)
    if running is not None:
        return running.pid
    svc = service(lab_services(lab), node, name)
    lab.kill_spawned(tag=TAG_PREFIX + name, node=node, grace=20.0)  # this node's only: cr2 runs a "daemon" too
    argv = [
        sys.executable, "-m", "bgpctl_lab.supervise", "--restart-sec", f"{restart_sec:g}", "--seconds", f"{seconds:g}",
        "--", *svc.resolved_argv(root=lab.topology_file.parent, node_dir=lab.node_dir(node)),
    ]  # fmt: skip
    return lab.spawn(node, argv, tag=SUPERVISED_PREFIX + name, log_name=f"{svc.name}.log")


def unsupervise_service(lab: Lab, node: str, name: str) -> None:
    """Stop the supervisor (it stops the service, like ``systemctl stop``) and start the plain service again."""
    lab.kill_spawned(tag=SUPERVISED_PREFIX + name, node=node, grace=25.0)
    start_services(lab)


def restart_service(lab: Lab, node: str, name: str, *, grace: float = 15.0) -> None:
    """``systemctl restart``: SIGTERM the service and wait until it exited (SIGKILL after ``grace``), then
    start it again, under its supervisor if it has one."""
    sup = supervisor_of(lab, node, name)
    if sup is not None:
        restart_sec = float(option(sup.argv, "--restart-sec") or 0.5)
        lab.kill_spawned(pid=sup.pid, grace=grace + 5.0)  # the supervisor stops its child first
        supervise_service(lab, node, name, restart_sec=restart_sec)
        return
    lab.kill_spawned(tag=TAG_PREFIX + name, node=node, grace=grace)
    start_services(lab)


# ---------------------------------------------------------------------- up


def up(
    topology_file: Path,
    name: str = DEFAULT_NAME,
    mode: str = DEFAULT_MODE,
    *,
    wait: bool = True,
    budget: float = UP_BUDGET_S,
) -> Lab:
    """Bring the lab up (idempotent: an already running lab is checked, repaired and put into ``mode``)."""
    if mode not in frr.MODES:
        raise LabError(f"unknown lab mode {mode!r}; use one of: {', '.join(frr.MODES)}")
    _require_root("up")
    topo = load(topology_file)
    if topo.frr_nodes() and (why := frr.available()) is not None:
        raise LabError(why)  # a topology of plain linux nodes runs without FRR
    if topo.bird_nodes() and (why := bird.available()) is not None:
        raise LabError(why)
    existing = read(name)
    if existing is not None and existing.phase == "up":
        if Path(existing.topology) != topo.file:
            raise LabError(
                f"lab {name!r} is already up from {existing.topology}; run `bgpctl lab down "
                f"--lab {name}` first, or choose another --lab"
            )
        lab = Lab(existing)
        for node in lab.frr_nodes():
            lab.start_frr(node)  # no-op where FRR runs
        for node in lab.bird_nodes():
            if not lab.bird_alive(node):
                _start_bird(name, [node])
        lab.set_mode(mode)
    else:
        if existing is not None:
            down(name)  # the remains of a crashed or failed `up`
        lab = _create(topo, name, mode)
    ensure_services(lab, load_services(services_file(topo.file)), root=topo.file.parent)
    if wait and lab.frr_nodes():
        lab.wait_established(budget)
    return lab


@contextlib.contextmanager
def running(topology_file: Path, name: str, mode: str = DEFAULT_MODE, *, wait: bool = True) -> Iterator[Lab]:
    """``up`` for the length of a ``with`` block, then ``down``, also when the block (or ``up``) fails.
    For tests and benchmarks that describe their own topology (docs/testing.md)."""
    try:
        yield up(topology_file, name=name, mode=mode, wait=wait)
    finally:
        down(name)


def _create(topo: Topology, name: str, mode: str) -> Lab:
    run_dir = lab_dir(name)
    nodes = {
        n: NodeState(
            netns=_ns_name(name, n),
            dir=str(run_dir / n),
            env=dict(node.env),
            frr_conf=str(node.frr_conf) if node.frr_conf else None,
            daemons=frr.daemons(node.frr_daemons) if node.frr_conf else [],
            bird_conf=str(node.bird_conf) if node.bird_conf else None,
        )
        for n, node in topo.nodes.items()
    }
    taken = [ns.netns for ns in nodes.values() if netns.exists(ns.netns)]
    if taken:
        raise LabError(
            f"namespaces {', '.join(taken)} already exist but lab {name!r} has no state; "
            f"they belong to something else: choose another --lab or remove them (ip netns del)"
        )
    st = LabState(name=name, topology=str(topo.file), mode=mode, phase="creating", run_dir=str(run_dir), nodes=nodes)
    _check_bird_mode(st, mode)
    with locked(name):
        write(st)  # before anything exists: `down` knows every namespace we may create
    for n, ns in nodes.items():
        Path(ns.dir).mkdir(parents=True, exist_ok=True)
        if ns.frr_conf:
            os.chown(ns.dir, *_frr_user())
        netns.create(ns.netns)
        for key, value in topo.nodes[n].sysctls.items():
            _run(n, _ns_argv(ns.netns, ["sysctl", "-q", "-w", f"{key}={value}"]))
    for link in topo.links:
        a, b = nodes[link.a.node].netns, nodes[link.b.node].netns
        netns.add_veth(a, link.a.ifname, b, link.b.ifname, link.mtu)
        for ep, ep_ns in ((link.a, a), (link.b, b)):
            for addr in (ep.ipv4, ep.ipv6):
                if addr is not None:
                    netns.add_address(ep_ns, ep.ifname, addr)
    for n, node in topo.nodes.items():
        for argv in node.exec:
            _run(n, _ns_argv(nodes[n].netns, argv), env={**os.environ, **node.env})
        nodes[n].created = True
    with locked(name):
        write(st)
    frr_nodes = topo.frr_nodes()
    _start_frr(name, frr_nodes)
    _start_bird(name, topo.bird_nodes())
    with locked(name):
        st = read(name) or st
        _configure_frr(st, frr_nodes, mode)
        _apply_bird_mode(st, topo.bird_nodes(), mode)
        st.phase = "up"
        write(st)
    return Lab(st)


def _check_bird_mode(st: LabState, mode: str) -> None:
    if any(ns.bird_conf for ns in st.nodes.values()):
        bird.mode_commands(mode)  # LabError for a mode a BIRD edge cannot run


def _start_bird(name: str, nodes: Sequence[str]) -> None:
    """One ``bird -f`` per node, its socket and pid file in the node's directory; recorded at once."""
    for node in nodes:
        with locked(name):
            st = read(name)
            assert st is not None
            ns = st.nodes[node]
            assert ns.bird_conf is not None
            d = Path(ns.dir)
            (d / bird.SOCKET_NAME).unlink(missing_ok=True)
            argv = bird.daemon_argv(Path(ns.bird_conf), d)
            with (d / bird.LOG_NAME).open("ab") as out:
                proc = subprocess.Popen(
                    _ns_argv(ns.netns, argv),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            st.frr.append(Proc(proc.pid, node, "bird", argv, str(d / bird.LOG_NAME), netns.proc_starttime(proc.pid)))
            write(st)
        sock = d / bird.SOCKET_NAME
        try:
            eventually(
                f"{node}: BIRD control socket {sock}",
                budget=SOCKET_BUDGET_S,
                probe=sock.exists,
                check=lambda there: [] if there else ["not yet"],
                interval_s=0.02,
            )
        except BudgetExceeded as e:
            raise LabError(f"{e}; see {d / bird.LOG_NAME}") from None


def _apply_bird_mode(st: LabState, nodes: Sequence[str], mode: str) -> None:
    for n in nodes:
        for cmd in bird.mode_commands(mode):
            bird.birdc(Path(st.nodes[n].dir), cmd)


def _run(node: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=30, env=env, check=False, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as e:
        raise LabError(f"{node}: {' '.join(argv[4:])} did not finish within 30 s") from e
    if proc.returncode != 0:
        raise LabError(
            f"{node}: exec {' '.join(argv[4:])!r} failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()}; fix the topology file, then "
            "`bgpctl lab down` and `bgpctl lab up`"
        )


def _clear_sockets(ns: str) -> None:
    d = frr.socket_dir(ns)
    if d.is_dir():
        for f in d.iterdir():
            if f.suffix in (".vty", ".api", ".pid") or f.name.endswith(".api"):
                f.unlink(missing_ok=True)


def _start_frr(name: str, nodes: Sequence[str]) -> None:
    """Start zebra on every node, then the other daemons; each pid is recorded as soon as it exists."""
    if not nodes:
        return
    st = read(name)
    if st is None:
        raise LabError(f"lab {name!r} has no state")
    uid, gid = _frr_user()
    for n in nodes:
        d = frr.socket_dir(st.nodes[n].netns)
        d.mkdir(parents=True, exist_ok=True)
        os.chown(d, uid, gid)
    first = [(n, d) for n in nodes for d in st.nodes[n].daemons if d == "zebra"]
    rest = [(n, d) for n in nodes for d in st.nodes[n].daemons if d != "zebra"]
    for batch in (first, rest):
        for n, daemon in batch:
            _spawn_daemon(name, n, daemon)
        _wait_sockets(st, batch)


def _spawn_daemon(name: str, node: str, daemon: str) -> None:
    with locked(name):
        st = read(name)
        assert st is not None
        ns = st.nodes[node]
        log_dir = Path(ns.dir)
        argv = frr.daemon_argv(daemon, ns.netns, log_dir / f"{daemon}.log")
        with (log_dir / f"{daemon}.out").open("ab") as out:
            proc = subprocess.Popen(
                _ns_argv(ns.netns, argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        st.frr.append(
            Proc(proc.pid, node, f"frr:{daemon}", argv, str(log_dir / f"{daemon}.log"), netns.proc_starttime(proc.pid))
        )
        write(st)


def _wait_sockets(st: LabState, batch: Sequence[tuple[str, str]]) -> None:
    def missing() -> list[str]:
        return [
            f"{n}/{d} (see {st.nodes[n].dir}/{d}.out and {d}.log)"
            for n, d in batch
            if not (frr.socket_dir(st.nodes[n].netns) / f"{d}.vty").exists()
        ]

    try:
        eventually(
            "FRR daemons started (vty sockets)",
            budget=SOCKET_BUDGET_S,
            probe=missing,
            check=lambda left: left,
            interval_s=0.02,
        )
    except BudgetExceeded as e:
        raise LabError(str(e)) from None


def _configure_frr(st: LabState, nodes: Sequence[str], mode: str | None = None) -> None:
    """Push each node's frr.conf (all nodes at once), then apply the lab mode."""
    procs = []
    for n in nodes:
        ns = st.nodes[n]
        assert ns.frr_conf is not None
        procs.append((n, ns.netns, Path(ns.frr_conf)))
    errors = []
    running = [
        (
            n,
            conf,
            subprocess.Popen(
                frr.config_argv(ns_name, conf),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                stdin=subprocess.DEVNULL,
            ),
        )
        for n, ns_name, conf in procs
    ]
    for n, conf, p in running:
        try:
            out, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        if p.returncode != 0:
            errors.append(f"{n}: {conf}: {frr.strip_noise(err or out).strip()[-300:]}")
    if errors:
        raise LabError("FRR refused a configuration: " + "; ".join(errors))
    _apply_mode(st, nodes, mode or st.mode)


def _apply_mode(st: LabState, nodes: Sequence[str], mode: str) -> None:
    for n in nodes:
        ns = st.nodes[n]
        assert ns.frr_conf is not None
        cmds = frr.mode_commands(Path(ns.frr_conf).read_text(encoding="utf-8"), mode)
        if cmds:
            frr.vtysh(ns.netns, cmds)


# ---------------------------------------------------------------------- down


def down(name: str = DEFAULT_NAME) -> bool:
    """Remove everything the lab created; works from any phase, also after a crash. False if nothing was up."""
    d = lab_dir(name)
    if not d.exists():
        return False
    _require_root("down")
    with locked(name):
        st = read(name)
        if st is not None:
            _teardown(st)
        shutil.rmtree(d, ignore_errors=True)
    return True


def _teardown(st: LabState) -> None:
    ns_names = [ns.netns for ns in st.nodes.values()]
    by_node = {n: ns.netns for n, ns in st.nodes.items()}
    recorded = [p.pid for p in (*st.spawned, *st.frr) if p.node in by_node and _is_ours(p, by_node[p.node])]
    netns.terminate(recorded, grace=0.5)
    ids = [i for i in (netns.ns_id(n) for n in ns_names) if i is not None]
    for _ in range(3):  # a process started while we were killing is caught by the next round
        pids = netns.pids_in(ids)
        if not pids:
            break
        netns.terminate(pids, grace=0.5)
    for ns in ns_names:
        netns.remove(ns)
        shutil.rmtree(frr.socket_dir(ns), ignore_errors=True)
