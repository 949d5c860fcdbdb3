"""bgpctl.render: one renderer per data type; the data form reads back into the same change."""

from __future__ import annotations

import json

from bgpctl.core.types import ChangeKind, RouteAttrs, RouteChange, RouteKey
from bgpctl.render import attrs_text, change_from_dict, change_text, change_to_dict, communities_text

ATTRS = RouteAttrs("198.18.1.11", (65000, 65000), 100, ("64512:100",), ("65000:1:2",))
ANNOUNCE = RouteChange("edge", ChangeKind.ANNOUNCE, RouteKey("203.0.113.0/26", 1), ATTRS, "media/use1/ic preferred")
WITHDRAW = RouteChange("tgw-use1", ChangeKind.WITHDRAW, RouteKey("192.0.2.0/24"), None, "down")


def test_a_change_survives_json_and_back() -> None:
    for change in (ANNOUNCE, WITHDRAW):
        assert change_from_dict(json.loads(json.dumps(change_to_dict(change)))) == change


def test_a_log_event_reads_back_as_its_change() -> None:
    event = {"event": "route.change", "level": "info", "timestamp": "2026-01-01T00:00:00Z", **change_to_dict(ANNOUNCE)}
    assert change_from_dict(event) == ANNOUNCE


def test_text() -> None:
    assert attrs_text(ATTRS) == "nh 198.18.1.11 as-path 65000 65000 med 100 comm 64512:100 lcomm 65000:1:2"
    assert change_text(ANNOUNCE) == f"edge       announce 203.0.113.0/26 id 1 {attrs_text(ATTRS)}"
    assert change_text(WITHDRAW) == "tgw-use1   withdraw 192.0.2.0/24"
    assert communities_text(ATTRS) == "64512:100 65000:1:2"
    assert communities_text(RouteAttrs("198.18.1.1", (65000,))) == "-"
