"""The meter's tests' topologies and responder processes.

Topologies (tests/topologies/meter-*.clab.yml, brought up by the lab runner through the ``topology_lab``
fixture; nothing touches the root namespace):

* ``pair``: ``snd`` 198.18.60.1/30 -- ``r1`` 198.18.60.2/30, with 203.0.113.10/32 and 2001:db8:60::10/128
  on ``r1``'s lo (the Connect endpoint).
* ``ecmp``: ``snd`` has a second link 198.18.60.5/30 -- ``r2`` 198.18.60.6/30, ``r2`` has the same
  endpoint address on lo, and ``snd`` routes 203.0.113.10 over both next hops with an L4 hash.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bgpctl import events
from bgpctl_lab.pytest_plugin import TopologyLab
from bgpctl_lab.runner import Lab

TOPOLOGIES = {
    kind: Path(__file__).resolve().parents[1] / "topologies" / f"meter-{kind}.clab.yml" for kind in ("pair", "ecmp")
}


ENDPOINT = "203.0.113.10"


ENDPOINT6 = "2001:db8:60::10"


READY_BUDGET_S = 15.0


EXIT_BUDGET_S = 10.0


NEEDS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")


def responder_argv(region: str, *extra: str) -> list[str]:
    """What the lab runner runs on a connect host (``python -m bgpctl lab responder ...``)."""
    return [sys.executable, "-m", "bgpctl", "lab", "responder", "--region", region, *extra]


@dataclass
class Responder:
    """One ``bgpctl lab responder`` process started by a test, in one namespace."""

    netns: str
    region: str
    proc: subprocess.Popen[str]
    ready: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] | None = None

    def wait_ready(self, budget_s: float = READY_BUDGET_S) -> None:
        assert self.proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            end = time.monotonic() + budget_s
            while time.monotonic() < end:
                if sel.select(max(0.0, end - time.monotonic())):
                    line = self.proc.stdout.readline()
                    if not line:
                        break
                    msg = json.loads(line)
                    if msg.get("event") == events.RESPONDER_READY:
                        self.ready = msg
                        return
        err = self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
        raise AssertionError(
            f"responder {self.region} in {self.netns} not ready within {budget_s} s (exit {self.proc.poll()}): {err}"
        )

    def wait_exit(self, budget_s: float = EXIT_BUDGET_S) -> dict[str, Any]:
        """Wait for it to end by itself; its summary line."""
        out, err = self.proc.communicate(timeout=budget_s)
        assert self.proc.returncode == 0, f"responder exited {self.proc.returncode}: {err}"
        lines = [json.loads(x) for x in out.splitlines() if x.strip()]
        summaries = [x for x in lines if x.get("event") == events.RESPONDER_SUMMARY]
        assert len(summaries) == 1, lines
        self.summary = summaries[0]
        return self.summary

    def stop(self) -> dict[str, Any]:
        """SIGTERM (the process is ours: Popen holds it, so the pid cannot have been reused); its summary."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.wait_exit()


@dataclass
class Net:
    lab: Lab
    responders: list[Responder] = field(default_factory=list)

    def node(self, role: str) -> str:
        """The network namespace of node ``role``."""
        return self.lab.netns(role)

    @property
    def names(self) -> list[str]:
        return [self.node(n) for n in self.lab.nodes()]

    def responder(self, role: str, region: str, *extra: str, wait: bool = True) -> Responder:
        argv = ["ip", "netns", "exec", self.node(role), *responder_argv(region, *extra)]
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        r = Responder(self.node(role), region, proc)
        self.responders.append(r)
        if wait:
            r.wait_ready()
        return r

    def sysctl(self, role: str, key: str, value: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.node(role), "sysctl", "-q", "-w", f"{key}={value}"], check=True)

    def nft(self, role: str, script: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.node(role), "nft", "-f", "-"], input=script, text=True, check=True)

    def nft_json(self, role: str, *args: str) -> Any:
        out = subprocess.run(
            ["ip", "netns", "exec", self.node(role), "nft", "-j", *args], text=True, check=True, capture_output=True
        ).stdout
        return json.loads(out)

    def stop_responders(self) -> None:
        for r in self.responders:
            if r.proc.poll() is None:
                r.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.proc.communicate(timeout=EXIT_BUDGET_S)


@contextlib.contextmanager
def topology(make: TopologyLab, kind: str) -> Iterator[Net]:
    """``pair`` or ``ecmp`` (see the module docstring) from the ``topology_lab`` fixture ``make``; every
    responder started in it is stopped on the way out (the fixture then takes the lab down)."""
    net = Net(make(TOPOLOGIES[kind]))
    try:
        yield net
    finally:
        net.stop_responders()
