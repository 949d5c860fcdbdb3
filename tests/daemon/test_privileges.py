"""The privilege model (bgpctl/daemon/privileges.py): which identity can run which policy's daemon."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpctl.daemon.privileges import (
    CAP_CHOWN,
    CAP_NET_ADMIN,
    CAP_NET_RAW,
    CAP_SETGID,
    CAP_SETUID,
    Identity,
    PrivilegeError,
    effective_caps,
    problems,
)
from bgpctl.policy.load import load_policy

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = load_policy(REPO / "policies" / "production.yaml")
LAB = load_policy(REPO / "policies" / "lab.yaml")
USERS = {"root": 0, "bgpctl": 998, "nobody": 65534}
UNIT = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW)  # deploy/bgpctl.service's AmbientCapabilities
ROOT_ALL = (1 << 41) - 1


def _uid(name: str) -> int | None:
    return USERS.get(name)


def test_production_runs_as_its_exabgp_user_with_the_units_two_capabilities() -> None:
    assert problems(PRODUCTION, Identity(998, "bgpctl", UNIT), _uid) == []


def test_production_runs_as_full_root_too() -> None:
    assert problems(PRODUCTION, Identity(0, "root", ROOT_ALL), _uid) == []


def test_the_old_unit_root_without_setuid_cannot_drop_to_the_exabgp_user() -> None:
    # what deploy/bgpctl.service did before: root, bounding set NET_ADMIN NET_BIND_SERVICE NET_RAW
    caps = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW) | (1 << 10)
    assert problems(PRODUCTION, Identity(0, "root", caps), _uid) == [
        "speaker.exabgp.user 'bgpctl': bgpctl runs as root without CAP_SETUID, CAP_SETGID, CAP_CHOWN, so ExaBGP "
        "cannot drop to 'bgpctl'; run bgpctl as User=bgpctl (deploy/bgpctl.service) or allow them"
    ]


def test_root_with_setuid_setgid_chown_can_drop() -> None:
    caps = UNIT | (1 << CAP_SETUID) | (1 << CAP_SETGID) | (1 << CAP_CHOWN)
    assert problems(PRODUCTION, Identity(0, "root", caps), _uid) == []


def test_another_unprivileged_user_cannot_run_exabgp_as_bgpctl() -> None:
    assert problems(PRODUCTION, Identity(65534, "nobody", UNIT), _uid) == [
        "speaker.exabgp.user is 'bgpctl' but bgpctl runs as 'nobody': ExaBGP (its child) can only run as 'nobody'; "
        "set speaker.exabgp.user: nobody"
    ]


def test_the_default_exabgp_user_root_under_an_unprivileged_daemon_is_refused() -> None:
    assert LAB.speaker.exabgp.user == "root"
    assert problems(LAB, Identity(998, "bgpctl", UNIT), _uid)[0].startswith(
        "speaker.exabgp.user is 'root' but bgpctl runs as 'bgpctl'"
    )


def test_no_net_admin_is_refused_with_the_unit_line() -> None:
    assert problems(PRODUCTION, Identity(998, "bgpctl", 0), _uid) == [
        "bgpctl daemon needs CAP_NET_ADMIN (policy routing for the probes) and runs without: start it as "
        "deploy/bgpctl.service does (AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW) or as root"
    ]


def test_icmp_probes_need_net_raw() -> None:
    icmp = PRODUCTION.model_copy(deep=True)
    target = icmp.services["api"].probe.targets["us-east-1"]
    object.__setattr__(target, "protocol", type(target.protocol)("icmp"))
    found = problems(icmp, Identity(998, "bgpctl", 1 << CAP_NET_ADMIN), _uid)
    assert found and found[0].startswith("bgpctl daemon needs CAP_NET_RAW (policy routing for the probes, raw sockets")
    assert problems(icmp, Identity(998, "bgpctl", UNIT), _uid) == []


def test_a_missing_exabgp_user_says_create_it() -> None:
    assert problems(PRODUCTION, Identity(0, "root", ROOT_ALL), lambda _: None) == [
        "speaker.exabgp.user 'bgpctl' does not exist: create it, or set it to 'root'"
    ]


def test_effective_caps_reads_capeff() -> None:
    assert effective_caps("Name:\tx\nCapInh:\t0\nCapEff:\t0000000000003000\n") == UNIT
    with pytest.raises(PrivilegeError):
        effective_caps("Name:\tx\n")
