"""The meter's test topologies and responders are removed even when a test fails (tests/lab/meter_support.py)."""

from __future__ import annotations

import os

import pytest

from bgpctl_lab import netns as ns
from bgpctl_lab import runner
from bgpctl_lab.pytest_plugin import own_lab_name
from tests.lab.meter_support import (
    NEEDS_ROOT,
    TOPOLOGIES,
    Net,
)

pytestmark = pytest.mark.lab


def _namespaces(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix)) if os.path.isdir("/run/netns") else []


@NEEDS_ROOT
def test_topology_and_responders_are_removed_even_when_the_test_fails() -> None:
    # the mechanism behind the topology_lab fixture (runner.running), with a failure inside it
    name = own_lab_name()
    prefix = f"{name}-"
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="boom"), runner.running(TOPOLOGIES["ecmp"], name) as lab:
        net = Net(lab)
        pids.append(net.responder("r1", "use1").proc.pid)
        assert _namespaces(prefix) == sorted(net.names) == sorted(net.node(r) for r in ("snd", "r1", "r2"))
        assert ns.alive(pids[0])
        raise RuntimeError("boom")
    assert _namespaces(prefix) == []
    assert not ns.alive(pids[0])
