"""pytest plugin of the lab tests: one reference lab per session, always torn down; a dump of it when a test fails.

Registered by ``pytest_plugins = ["bgpctl_lab.pytest_plugin"]`` (bgpctl's tests/conftest.py).

* ``lab``: the session's lab (the ``--lab-topology`` file in mode no-controller), named ``bt<pid>`` so
  that several pytest runs on one machine never share a lab. Skipped, with the reason, when not root or
  FRR is missing. Torn down at the end of the session, also when tests fail, unless
  ``--keep-lab-on-failure`` was given and a test failed (then the message says how to remove it).
* ``lab_topology``: the topology file (``--lab-topology``, else ``$BGPCTL_LAB_TOPOLOGY``, else
  ``containerlab.yml`` in pytest's root directory).
* On a failing test that uses ``lab``, every node's logs, the state, ``show ... json`` of each FRR
  node and ``ip -j ...`` of each node go to /tmp/bgpctl-test-runs/<test>/; the report names the path.
* ``controller_lab``: the reference lab in controller mode (the daemon on cr), converged on every hop
  (:func:`bgpctl_lab.reference.converged_problems`), one per test module, named ``<LAB_PREFIX><pid>`` from
  the module's ``LAB_PREFIX`` (which must be one of TEST_LAB's prefixes); always torn down.
* ``lab_name_factory``: unique names for the extra labs a test brings up itself (torn down by the test).
* ``topology_lab`` / ``module_topology_lab``: ``topology_lab(path)`` brings up the test's own containerlab
  file (e.g. tests/topologies/probe.clab.yml) as lab ``tl<pid>_<n>`` and takes it down when the test (or
  the module) ends, also when it fails; a failing test's labs are dumped like ``lab``.
* Labs left by a test run that was killed (SIGKILL, timeout) are taken down when the next session starts.

Tests that need root, namespaces or FRR carry the ``lab`` marker (``pytest -m "not lab"`` is the
developer's tier; see docs/testing.md).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from bgpctl_lab import frr, netns, runner
from bgpctl_lab.poll import eventually
from bgpctl_lab.reference import wait_converged
from bgpctl_lab.runner import Lab
from bgpctl_lab.state import STATE_ROOT
from bgpctl_lab.topology import TOPOLOGY_ENV, load

TEST_RUNS = Path("/tmp/bgpctl-test-runs")
# the names of test labs: <prefix><pytest pid>, or tl<pytest pid>_<n> for a test's own topology
# every prefix a test lab is named with (+ the pytest pid): bt/bu/bs/bc/br the session and runner tests,
# tl a test's own topology, dm/dp/dc/dt/sg/hk/rl/od/wg/rd/ha/ds/d6 the daemon and lab modules' (sg: signals, hk:
# hooks, rl: policy reload, od: operations drills, wg: weighted split, rd: reload drills, ha: the HA pair, ds: the
# dual-stack reference lab, d6: the IPv6 drills) and ba/bn the BIRD edge's controller labs (own_reference_lab,
# controller_lab)
TEST_LAB = re.compile(r"^(bt|bu|bs|bc|br|tl|dm|dp|dc|dt|sg|ba|bn|hk|rl|od|wg|rd|ha|ds|d6)(\d+)(?:_\d+)?$")
_FAILED = pytest.StashKey[bool]()
_OWN_LABS = pytest.StashKey[list[Lab]]()
_own_lab_counter = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("bgpctl_lab", "bgpctl lab")
    group.addoption(
        "--keep-lab-on-failure",
        action="store_true",
        default=False,
        help="leave the session's lab up when a test failed (bgpctl lab status/down --lab bt<pid>)",
    )
    group.addoption(
        "--lab-topology",
        default=None,
        metavar="FILE",
        help=f"containerlab topology of the session's lab (default: ${TOPOLOGY_ENV}, else "
        "containerlab.yml in the root directory)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: needs root, network namespaces and FRR (real lab)")


def lab_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, FRR): run them as root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if shutil.which(frr.VTYSH) is None:
        return "vtysh is not installed: apt-get install frr"
    return frr.available()


def own_lab_skip_reason(topology_file: Path) -> str | None:
    """Why a test's own topology cannot run here: root and iproute2 always, FRR only if a node runs it."""
    if load(topology_file).frr_nodes():
        return lab_skip_reason()
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces): run them as root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


def require_lab() -> None:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)


def all_established(lab: Lab) -> dict[str, dict[str, str]]:
    """Every FRR<->FRR session that is not administratively shut is Established (AssertionError otherwise)."""
    sessions = lab.established()
    bad = {n: {p: s for p, s in peers.items() if s != "Established"} for n, peers in sessions.items()}
    bad = {n: p for n, p in bad.items() if p}
    assert sessions and not bad, f"not Established: {bad}"
    return sessions


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    if not rep.failed or rep.when == "teardown":
        return rep
    item.session.stash[_FAILED] = True
    the_lab = getattr(item, "funcargs", {}).get("lab")
    module = item.getparent(pytest.Module)
    own: list[Lab] = item.stash.get(_OWN_LABS, [])
    of_module: list[Lab] = module.stash.get(_OWN_LABS, []) if module is not None else []
    labs = [*([the_lab] if isinstance(the_lab, Lab) else []), *own, *of_module]
    for one in labs:
        dest = TEST_RUNS / safe_name(item.nodeid)
        if len(labs) > 1:
            dest = dest / one.name
        try:
            dump_lab(one, dest)
            rep.sections.append(("lab dump", f"logs and show ... json of every node of {one.name}: {dest}"))
        except Exception as e:  # never mask the test's own failure
            rep.sections.append(("lab dump", f"could not dump the lab to {dest}: {e!r}"))
    return rep


def reap_stale_test_labs() -> list[str]:
    """Take down the labs of test runs that were killed before their teardown (named <prefix><pid>,
    whose pid is no longer a pytest process)."""
    reaped = []
    if STATE_ROOT.is_dir():
        for d in STATE_ROOT.iterdir():
            m = TEST_LAB.match(d.name)
            if m and int(m.group(2)) != os.getpid():
                # alive and Python: a running pytest, or one of its pytest-xdist workers (whose command
                # line is "python -c ..."); a killed run's pid is gone or reused by something else
                cmd = netns.proc_cmdline(int(m.group(2))) or []
                if not any("pytest" in part or os.path.basename(part).startswith("python") for part in cmd):
                    runner.down(d.name)
                    reaped.append(d.name)
    return reaped


@contextlib.contextmanager
def own_reference_lab(prefix: str, topology: Path, *, mode: str) -> Iterator[Lab]:
    """A module's own copy of a reference topology in ``mode`` (e.g. ``controller``), named ``<prefix><pid>``:
    skipped where the lab cannot run, stale copies of killed runs reaped first, always taken down."""
    if not TEST_LAB.match(f"{prefix}1"):
        raise ValueError(f"lab prefix {prefix!r} is not in TEST_LAB: killed runs' labs would never be reaped")
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    reap_stale_test_labs()
    name = f"{prefix}{os.getpid()}"
    try:
        yield runner.up(topology, name=name, mode=mode)
    finally:
        runner.down(name)


# from `up` to the daemon's routes on every hop (first start: ExaBGP, sessions, probes' first window)
CONTROLLER_CONVERGED_S = 40.0


@pytest.fixture(scope="module")
def controller_lab(request: pytest.FixtureRequest, lab_topology: Path) -> Iterator[Lab]:
    prefix = getattr(request.module, "LAB_PREFIX", None)
    if not isinstance(prefix, str):
        pytest.fail(f"{request.module.__name__} uses controller_lab but sets no LAB_PREFIX (one of TEST_LAB's)")
    with own_reference_lab(prefix, lab_topology, mode="controller") as lab:
        wait_converged(lab, "daemon converged after up", budget=CONTROLLER_CONVERGED_S)
        yield lab


@pytest.fixture(scope="session")
def lab_topology(request: pytest.FixtureRequest) -> Path:
    given = request.config.getoption("--lab-topology") or os.environ.get(TOPOLOGY_ENV)
    path = Path(given) if given else request.config.rootpath / "containerlab.yml"
    if not path.is_file():
        pytest.fail(f"lab topology {path} does not exist: give --lab-topology FILE or set {TOPOLOGY_ENV}")
    return path.resolve()


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest, lab_topology: Path) -> Iterator[Lab]:
    require_lab()
    reap_stale_test_labs()
    name = f"bt{os.getpid()}"
    try:
        the_lab = runner.up(lab_topology, name=name, mode="no-controller")
        eventually(f"lab {name} sessions", budget="bgp_established", probe=lambda: all_established(the_lab))
        yield the_lab
    finally:
        keep = request.config.getoption("--keep-lab-on-failure", default=False)
        if keep and request.session.stash.get(_FAILED, False):
            msg = (
                f"--keep-lab-on-failure: lab {name} left up; inspect with `bgpctl lab status --lab {name}`, "
                f"remove with `bgpctl lab down --lab {name}`"
            )
            reporter = request.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(msg, yellow=True)
            else:
                print(msg)
        else:
            runner.down(name)


@pytest.fixture
def lab_name_factory() -> Callable[[str], str]:
    """``make("s")`` -> a lab name unique to this pytest process (``s<pid>``)."""

    def make(prefix: str) -> str:
        return f"{prefix}{os.getpid()}"

    return make


TopologyLab = Callable[[Path], Lab]


def own_lab_name() -> str:
    """A fresh lab name for a test's own topology, ``tl<pid>_<n>`` (reaped if this run is killed)."""
    return f"tl{os.getpid()}_{next(_own_lab_counter)}"


@contextlib.contextmanager
def _own_labs(request: pytest.FixtureRequest) -> Iterator[TopologyLab]:
    """Bring up topology files on demand; every lab brought up is taken down on the way out."""
    with contextlib.ExitStack() as stack:

        def bring_up(topology_file: Path) -> Lab:
            reason = own_lab_skip_reason(topology_file)
            if reason:
                pytest.skip(reason)
            reap_stale_test_labs()
            the_lab = stack.enter_context(runner.running(topology_file, own_lab_name()))
            request.node.stash.setdefault(_OWN_LABS, []).append(the_lab)
            return the_lab

        yield bring_up


@pytest.fixture
def topology_lab(request: pytest.FixtureRequest) -> Iterator[TopologyLab]:
    """``topology_lab(path)``: the containerlab file ``path`` up as a lab of this test (see module docstring)."""
    with _own_labs(request) as bring_up:
        yield bring_up


@pytest.fixture(scope="module")
def module_topology_lab(request: pytest.FixtureRequest) -> Iterator[TopologyLab]:
    """``topology_lab`` shared by the tests of one module (up once, down after the module's last test)."""
    with _own_labs(request) as bring_up:
        yield bring_up


# ---------------------------------------------------------------------- failure dumps


def safe_name(nodeid: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")[:150]


IP_DUMPS = {
    "ip-addr.json": ["ip", "-j", "addr"],
    "ip-route.json": ["ip", "-j", "route"],
    "ip-6-route.json": ["ip", "-6", "-j", "route"],
    "ip-link-stats.json": ["ip", "-j", "-s", "link"],
    "ip-neigh.json": ["ip", "-j", "neigh"],
    "ip-rule.txt": ["ip", "rule"],
    "nft-ruleset.txt": ["nft", "list", "ruleset"],
}
DUMP_COMMANDS = (
    "show bgp summary json",
    "show bgp ipv4 unicast json",
    "show bgp ipv6 unicast json",
    "show ip route json",
    "show ipv6 route json",
    "show bgp neighbors json",
    "show running-config",
)


def dump_lab(lab: Lab, dest: Path) -> Path:
    """Copy every node's run directory (daemon logs, helper output) and the state, and dump
    ``show ... json`` of every FRR node and ``ip -j addr/route/link`` of every node, into ``dest``."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if lab.run_dir.exists():
        shutil.copytree(lab.run_dir, dest / "run", dirs_exist_ok=True)
    for node in lab.nodes():
        ndir = dest / "nodes" / node
        ndir.mkdir(parents=True, exist_ok=True)
        for fname, args in IP_DUMPS.items():
            _write(ndir / fname, functools.partial(_exec_out, lab, node, args))
        if node in lab.frr_nodes():
            for cmd in DUMP_COMMANDS:
                suffix = ".json" if cmd.endswith(" json") else ".txt"
                _write(
                    ndir / f"{cmd.removesuffix(' json').replace(' ', '-')}{suffix}",
                    functools.partial(lab.vtysh, node, cmd),
                )
        if node in lab.bird_nodes():
            for cmd in ("show protocols all", "show route all"):
                _write(ndir / f"birdc-{cmd.replace(' ', '-')}.txt", functools.partial(lab.birdc, node, cmd))
    return dest


def _exec_out(lab: Lab, node: str, argv: list[str]) -> str:
    return lab.exec(node, argv, check=False, timeout=10).stdout


def _write(path: Path, produce: Callable[[], str]) -> None:
    try:
        path.write_text(produce())
    except Exception as e:  # a dump must never hide the test's own failure
        path.write_text(f"(could not dump: {e})\n")
