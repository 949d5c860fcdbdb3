"""Lab fixtures: one reference lab per test session, always torn down; a dump of it when a test fails.

* ``lab``: the session's lab (``containerlab.yml`` in mode no-controller), named ``bt<pid>`` so that
  several pytest runs on one machine never share a lab. Skipped, with the reason, when not root or
  FRR is missing. Torn down at the end of the session, also when tests fail, unless
  ``--keep-lab-on-failure`` was given and a test failed (then the message says how to remove it).
* On a failing test that uses ``lab``, every node's logs, the state, ``show ... json`` of each FRR
  node and ``ip -j ...`` of each node go to /tmp/bgpctl-test-runs/<test>/; the report names the path.
* ``lab_name_factory``: unique names for the extra labs a test brings up itself (torn down by the test).
* Labs left by a test run that was killed (SIGKILL, timeout) are taken down when the next session starts.

The ``--keep-lab-on-failure`` option itself is declared in tests/conftest.py (pytest reads options only
from the root conftest).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Generator, Iterator

import pytest

from bgpctl.lab import frr, netns, runner
from bgpctl.lab.runner import Lab
from bgpctl.lab.state import STATE_ROOT
from tests.lab.helpers import TEST_RUNS, TOPOLOGY, all_established, dump_lab, eventually, safe_name

_FAILED = pytest.StashKey[bool]()


def lab_skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces, FRR): run them as root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    if shutil.which(frr.VTYSH) is None:
        return "vtysh is not installed: apt-get install frr"
    return frr.available()


def require_lab() -> None:
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    rep = yield
    if not rep.failed or rep.when == "teardown":
        return rep
    item.session.stash[_FAILED] = True
    the_lab = getattr(item, "funcargs", {}).get("lab")
    if isinstance(the_lab, Lab):
        dest = TEST_RUNS / safe_name(item.nodeid)
        try:
            dump_lab(the_lab, dest)
            rep.sections.append(("lab dump", f"logs and show ... json of every node: {dest}"))
        except Exception as e:  # never mask the test's own failure
            rep.sections.append(("lab dump", f"could not dump the lab to {dest}: {e!r}"))
    return rep


TEST_LAB = re.compile(r"^(bt|bu|bs|bc|br)(\d+)$")  # the names these fixtures and tests/lab/test_runner.py use


def reap_stale_test_labs() -> list[str]:
    """Take down the labs of test runs that were killed before their teardown (named <prefix><pid>,
    whose pid is no longer a pytest process)."""
    reaped = []
    if STATE_ROOT.is_dir():
        for d in STATE_ROOT.iterdir():
            m = TEST_LAB.match(d.name)
            if m and int(m.group(2)) != os.getpid():
                cmd = netns.proc_cmdline(int(m.group(2))) or []
                if not any("pytest" in part for part in cmd):
                    runner.down(d.name)
                    reaped.append(d.name)
    return reaped


@pytest.fixture(scope="session")
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    require_lab()
    reap_stale_test_labs()
    name = f"bt{os.getpid()}"
    try:
        the_lab = runner.up(TOPOLOGY, name=name, mode="no-controller")
        eventually(lambda: all_established(the_lab), "bgp_established", what=f"lab {name} sessions")
        yield the_lab
    finally:
        keep = request.config.getoption("--keep-lab-on-failure", default=False)
        if keep and request.session.stash.get(_FAILED, False):
            msg = (f"--keep-lab-on-failure: lab {name} left up; inspect with `bgpctl lab status -n {name}`, "
                   f"remove with `bgpctl lab down -n {name}`")
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
