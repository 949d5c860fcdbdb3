"""The HA pair's primary host cut off (containerlab-ha.yml, docs/ha.md): the edge uses the secondary's routes
within a second, by BFD from the edge to the controller hosts; a lab of its own (``ha<pid>``), taken down after.

Kept apart from test_ha_lab.py: this lab is discarded after the isolation. The primary's return (it hands over
until it judged every path again, docs/ha.md "Handing over") is the drill ha-primary-isolated
(tests/daemon/test_ha_drills_lab.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bgpctl_lab.poll import eventually
from bgpctl_lab.pytest_plugin import own_reference_lab
from bgpctl_lab.reference import MEDIA, WATCHED
from bgpctl_lab.route_watch import RouteWatcher
from bgpctl_lab.runner import Lab
from tests.daemon.test_ha_lab import (
    CONVERGED_S,
    CR1,
    CR2,
    LAB_PREFIX,
    TAKEOVER_S,
    TOPOLOGY,
    Calls,
    _best_from,
    _figure,
    _watch_polls,
    steady_problems,
)

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ha_lab() -> Iterator[Lab]:
    with own_reference_lab(LAB_PREFIX, TOPOLOGY, mode="controller") as lab:
        eventually("HA pair converged", budget=CONVERGED_S, probe=lambda: lab, check=steady_problems, interval_s=0.5)
        yield lab


def _isolate_primary(lab: Lab, case: str) -> None:
    """Cut cr1's only link with calls running: the edge's best paths must come from cr2 within TAKEOVER_S (BFD:
    the edge's bgpd stops the session with Cease / BFD Down, no graceful restart), no FIB next hop may change
    (the two controllers agree), no flow may lose more than 1 packet. The link then returns; the primary's return
    is the drill ha-primary-isolated's (tests/daemon/test_ha_drills_lab.py), the lab is discarded after this module."""
    watch = RouteWatcher(lab.netns("edge"), WATCHED, interval_ms=20).start()
    calls = Calls(lab, seconds=4)
    _watch_polls(watch, 25)
    t0 = time.monotonic()
    lab.link_set("cr1", "eth1", up=False)  # cr1's only link: the host is cut off
    try:
        moved = eventually(
            "the edge's best path for media comes from the secondary",
            budget=10,  # the wait; the bound is TAKEOVER_S, asserted below (an upper bound: it includes our polling)
            probe=lambda: _best_from(lab, "edge", MEDIA),
            check=lambda best: [] if best == CR2 else [f"{MEDIA} from {best}"],
            interval_s=0.01,
        )
        took = time.monotonic() - t0
        assert {p: _best_from(lab, "edge", p) for p in WATCHED} == dict.fromkeys(WATCHED, CR2)
        why = lab.vtysh_json("edge", f"show bgp neighbors {CR1} json")[CR1].get("lastNotificationReason")
        assert why == "Cease/BFD Down", why  # BFD, not the hold timer (9 s) and not graceful restart (120 s)
        _watch_polls(watch, 50)  # a second more: a late FIB change would show
        meter = calls.report()
        changes = watch.stop()
        assert changes == [], changes  # the two controllers agree: the same next hops, nothing moved
        lost = max(f.lost for f in meter.flows)
        _figure(case=case, secondary_best_s=round(took, 3), polls=moved.polls, next_hop_changes=len(changes),
                fib_polls=watch.polls, lost_per_flow_max=lost, lost=meter.lost, sent=meter.sent)  # fmt: skip
        assert took <= TAKEOVER_S, f"the edge used the secondary {took:.3f} s after the isolation"
        assert lost <= 1, meter.flows  # issue 11: at most 1 voice packet lost per flow
    finally:
        lab.link_set("cr1", "eth1", up=True)


def test_the_primary_host_isolated_the_edge_uses_the_secondary_within_a_second(ha_lab: Lab) -> None:
    _isolate_primary(ha_lab, "primary-isolated")
