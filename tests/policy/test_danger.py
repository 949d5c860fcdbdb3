"""The limits of bgpctl.policy.danger at their edges (the corpus in bad/ has one case per rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgpctl.errors import PolicyError
from bgpctl.policy import load_policy_text
from bgpctl.policy.danger import COMMUNITY_BYTES, MIN_PREFIX_LEN, RUN_DIR_MAX
from bgpctl.speaker.speaker import SOCKET_NAME

BASE = (Path(__file__).parent / "good" / "base.yaml").read_text()
TGW_STANDBY = '    transit-gateway: { communities: ["7224:7200"], prepend: 1 }'


def _communities(n: int) -> str:
    listed = ", ".join(f'"7224:{i}"' for i in range(n))
    return BASE.replace(TGW_STANDBY, f"    transit-gateway: {{ communities: [{listed}], prepend: 1 }}")


def test_the_run_dir_limit_leaves_room_for_the_api_socket() -> None:
    # sun_path is 108 bytes with the terminating NUL
    assert RUN_DIR_MAX + len("/" + SOCKET_NAME) == 107


def test_the_community_bound_is_exact() -> None:
    most = COMMUNITY_BYTES // 4
    assert most == 985
    load_policy_text(_communities(most), "c.yaml")
    with pytest.raises(
        PolicyError, match=rf"{most + 1} communities and 0 large communities take {4 * (most + 1)} bytes"
    ):
        load_policy_text(_communities(most + 1), "c.yaml")


@pytest.mark.parametrize(("family", "ok", "short"), [(4, "203.0.0.0/8", "202.0.0.0/7"), (6, "2001::/16", "2000::/15")])
def test_the_shortest_prefix_is_allowed_and_one_bit_less_is_not(family: int, ok: str, short: str) -> None:
    assert MIN_PREFIX_LEN[family] == int(ok.split("/")[1])
    allow = "  allowlist: [203.0.113.0/24, 192.0.2.0/24]"
    load_policy_text(BASE.replace(allow, f"  allowlist: [203.0.113.0/24, 192.0.2.0/24, {ok}]"), "a.yaml")
    with pytest.raises(PolicyError, match="prefixes shorter than"):
        load_policy_text(BASE.replace(allow, f"  allowlist: [203.0.113.0/24, 192.0.2.0/24, {short}]"), "a.yaml")


def test_private_and_documentation_prefixes_are_not_martians() -> None:
    allow = "  allowlist: [203.0.113.0/24, 192.0.2.0/24]"
    extra = "10.0.0.0/8, 172.16.0.0/12, 100.64.0.0/10, 2001:db8::/32, fd00::/16"
    load_policy_text(BASE.replace(allow, f"  allowlist: [203.0.113.0/24, 192.0.2.0/24, {extra}]"), "a.yaml")
