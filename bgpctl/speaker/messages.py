"""One line ExaBGP writes to its API process -> one typed event. Pure: no I/O.

ExaBGP 5 mixes plain-text ACKs (``done`` / ``error``, even with ``encoder json``) with one JSON object per
line (docs/design.md, "ExaBGP facts", 1). Anything else, or JSON of an unexpected shape, becomes :class:`UnparsableLine`
carrying the line and the reason, for the caller to log and count; parsing never raises, whatever the bytes:
not UTF-8, truncated, nested deeper than the interpreter's recursion limit, numbers of any size (integers
are range-checked: ASNs, MED and community parts are 32-bit, codes 8-bit), values of the wrong type.
"""

from __future__ import annotations

import enum
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from bgpctl.core.types import RouteKey


class SessionState(enum.StrEnum):
    """A BGP session's state as the speaker reports it (ExaBGP's ``neighbor-changes`` words, plus IDLE)."""

    IDLE = "idle"  # nothing heard from ExaBGP about this peer yet
    CONNECTED = "connected"
    UP = "up"
    DOWN = "down"


class Direction(enum.StrEnum):
    """Which way an UPDATE, End-of-RIB or NOTIFICATION went, as ExaBGP says it."""

    SEND = "send"
    RECEIVE = "receive"


@dataclass(frozen=True, slots=True)
class Ack:
    ok: bool  # True for "done", False for "error"


@dataclass(frozen=True, slots=True)
class StateEvent:
    peer: str  # peer address as ExaBGP writes it
    state: str  # a SessionState value as ExaBGP writes it: "connected", "up", "down"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RouteAttributes:
    """The attributes of a received/sent UPDATE we care about."""

    as_path: tuple[int, ...] = ()
    med: int | None = None
    origin: str | None = None
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Nlri:
    family: str  # "ipv4 unicast"
    key: RouteKey
    next_hop: str | None  # None for withdrawals


@dataclass(frozen=True, slots=True)
class UpdateEvent:
    peer: str
    direction: str  # a Direction value: "receive" or "send"
    attributes: RouteAttributes
    announced: tuple[Nlri, ...]
    withdrawn: tuple[Nlri, ...]

    def has_asn(self, asn: int) -> bool:
        """True if ``asn`` is in the AS path: for received routes, our own routes reflected back."""
        return asn in self.attributes.as_path


@dataclass(frozen=True, slots=True)
class EorEvent:
    peer: str
    direction: str
    afi: str
    safi: str


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    peer: str
    direction: str
    code: int
    subcode: int
    message: str


@dataclass(frozen=True, slots=True)
class NegotiatedEvent:
    """What a session negotiated, from ExaBGP's ``negotiated`` message (written once both OPENs are in,
    before the session is up). Families as ExaBGP writes them: ``"ipv4 unicast"``."""

    peer: str
    families: tuple[str, ...]
    add_path_send: tuple[str, ...]  # families we may send several paths per prefix in (the peer receives)
    add_path_receive: tuple[str, ...]
    hold_time: int


@dataclass(frozen=True, slots=True)
class ShutdownEvent:
    """ExaBGP itself is shutting down: the last line before EOF."""


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """Well-formed JSON of a type bgpctl does not subscribe to (open, keepalive, fsm, ...)."""

    kind: str
    peer: str


@dataclass(frozen=True, slots=True)
class UnparsableLine:
    line: str
    reason: str


Event = (
    Ack
    | StateEvent
    | UpdateEvent
    | EorEvent
    | NotificationEvent
    | NegotiatedEvent
    | ShutdownEvent
    | OtherEvent
    | UnparsableLine
)


class _Shape(Exception):
    """The JSON is valid but not shaped like ExaBGP 5's messages."""


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Shape(f"{what} is not an object")
    return value


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _Shape(f"{what} is not a string")
    return value


_U32 = 4294967295
MAX_TEXT = 1024
"""Longest free text (a NOTIFICATION's message, a state reason) kept from a line; the rest is cut."""


def _int(value: Any, what: str, high: int = _U32) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Shape(f"{what} is not an integer")
    if not 0 <= value <= high:
        raise _Shape(f"{what} is not 0..{high}")
    return value


def _text(value: Any, what: str) -> str:
    return _str(value, what)[:MAX_TEXT]


def _prefix(value: Any) -> str:
    text = _str(value, "nlri")
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError as e:
        raise _Shape(f"nlri {text[:80]!r} is not an IP prefix") from e
    return text


def _segment_order(key: str) -> int:
    return int(key) if key.isascii() and key.isdigit() and len(key) < 10 else 0


def _path_id(item: dict[str, Any]) -> int:
    raw = item.get("path-information")
    if raw is None:
        return 0
    try:
        return int(ipaddress.IPv4Address(_str(raw, "path-information")))
    except ValueError as e:
        raise _Shape(f"path-information {raw!r} is not dotted-quad") from e


def _as_path(raw: Any) -> tuple[int, ...]:
    if raw is None:
        return ()
    path: list[int] = []
    segments = _obj(raw, "as-path")
    for idx in sorted(segments, key=_segment_order):
        seg = _obj(segments[idx], "as-path segment")
        values = seg.get("value", [])
        if not isinstance(values, list):
            raise _Shape("as-path segment value is not a list")
        path.extend(_int(v, "as-path ASN") for v in values)
    return tuple(path)


def _community_list(raw: Any, size: int, what: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _Shape(f"{what} is not a list")
    out = []
    for c in raw:
        if not isinstance(c, list) or len(c) != size:
            raise _Shape(f"{what} entry {c!r} is not a list of {size} integers")
        high = 65535 if size == 2 else _U32
        out.append(":".join(str(_int(v, what, high)) for v in c))
    return tuple(out)


def _attributes(raw: Any) -> RouteAttributes:
    attrs = _obj(raw if raw is not None else {}, "attribute")
    med = attrs.get("med")
    origin = attrs.get("origin")
    return RouteAttributes(
        as_path=_as_path(attrs.get("as-path")),
        med=None if med is None else _int(med, "med"),
        origin=None if origin is None else _str(origin, "origin"),
        communities=_community_list(attrs.get("community"), 2, "community"),
        large_communities=_community_list(attrs.get("large-community"), 3, "large-community"),
    )


def _announced(raw: Any) -> tuple[Nlri, ...]:
    """``{family: {next_hop: [ {nlri, path-information?}, ...]}}``, deduplicated per (family, prefix, path id).

    FRR's IPv6 UPDATEs carry a global and a link-local next hop and ExaBGP lists the same NLRI under both;
    the global one wins."""
    found: dict[tuple[str, RouteKey], Nlri] = {}
    for family, by_nh in _obj(raw if raw is not None else {}, "announce").items():
        for next_hop, items in _obj(by_nh, f"announce[{family}]").items():
            if not isinstance(items, list):
                raise _Shape(f"announce[{family}][{next_hop}] is not a list")
            link_local = _is_link_local(next_hop)
            for item in items:
                entry = _obj(item, "nlri entry")
                key = RouteKey(_prefix(entry.get("nlri")), _path_id(entry))
                seen = found.get((family, key))
                if seen is None or (seen.next_hop is not None and _is_link_local(seen.next_hop) and not link_local):
                    found[(family, key)] = Nlri(family, key, next_hop)
    return tuple(found.values())


def _is_link_local(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_link_local
    except ValueError:
        return False


def _withdrawn(raw: Any) -> tuple[Nlri, ...]:
    out: list[Nlri] = []
    for family, items in _obj(raw if raw is not None else {}, "withdraw").items():
        if not isinstance(items, list):
            raise _Shape(f"withdraw[{family}] is not a list")
        for item in items:
            entry = _obj(item, "nlri entry")
            nlri = Nlri(family, RouteKey(_prefix(entry.get("nlri")), _path_id(entry)), None)
            if nlri not in out:
                out.append(nlri)
    return tuple(out)


def _families(raw: Any, what: str) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise _Shape(f"{what} is not a list")
    return tuple(_str(f, what) for f in raw)


def _negotiated(peer: str, raw: Any) -> NegotiatedEvent:
    """``{"families": ["ipv4 unicast"], "add_path": {"send": [...], "receive": [...]}, "hold_time": 9, ...}``."""
    doc = _obj(raw, "negotiated")
    add_path = _obj(doc.get("add_path", {}), "negotiated.add_path")
    return NegotiatedEvent(
        peer,
        _families(doc.get("families", []), "negotiated.families"),
        _families(add_path.get("send", []), "negotiated.add_path.send"),
        _families(add_path.get("receive", []), "negotiated.add_path.receive"),
        _int(doc.get("hold_time", 0), "negotiated.hold_time"),
    )


def _peer(neighbor: dict[str, Any]) -> str:
    address = _obj(neighbor.get("address"), "neighbor.address")
    return _str(address.get("peer"), "neighbor.address.peer")


def _event(doc: dict[str, Any]) -> Event:
    kind = _str(doc.get("type"), "type")
    if kind == "notification" and doc.get("notification") == "shutdown":
        return ShutdownEvent()
    neighbor = _obj(doc.get("neighbor"), "neighbor")
    peer = _peer(neighbor)
    if kind == "state":
        reason = neighbor.get("reason", "")
        return StateEvent(peer, _str(neighbor.get("state"), "state"), _text(reason, "reason"))
    if kind == "negotiated":
        return _negotiated(peer, neighbor.get("negotiated"))
    direction = _str(neighbor.get("direction", ""), "direction")
    if kind == "notification":
        note = _obj(neighbor.get("notification"), "notification")
        return NotificationEvent(
            peer,
            direction,
            _int(note.get("code"), "code", 255),
            _int(note.get("subcode"), "subcode", 255),
            _text(note.get("message", ""), "message"),
        )
    if kind == "update":
        message = _obj(neighbor.get("message"), "message")
        if "eor" in message:
            eor = _obj(message["eor"], "eor")
            return EorEvent(peer, direction, _str(eor.get("afi"), "afi"), _str(eor.get("safi"), "safi"))
        update = _obj(message.get("update"), "update")
        return UpdateEvent(
            peer,
            direction,
            _attributes(update.get("attribute")),
            _announced(update.get("announce")),
            _withdrawn(update.get("withdraw")),
        )
    return OtherEvent(kind, peer)


def parse(line: str | bytes) -> Event:
    """Parse one line (with or without its newline; bytes are decoded as strict UTF-8). Never raises."""
    if isinstance(line, bytes):
        try:
            decoded = line.decode("utf-8")
        except UnicodeDecodeError as e:
            return UnparsableLine(line.decode("utf-8", "replace").rstrip("\r\n"), f"not UTF-8: {e}")
    else:
        decoded = line
    text = decoded.rstrip("\r\n")
    if text == "done":
        return Ack(True)
    if text == "error":
        return Ack(False)
    if not text.startswith("{"):
        return UnparsableLine(
            text,
            "neither an ACK (done/error) nor a JSON event; bgpctl sends no "
            "show/version commands, so no text output is expected",
        )
    try:
        doc = json.loads(text)
    except RecursionError:
        return UnparsableLine(text, "JSON nested too deeply (ExaBGP's messages are a few levels deep)")
    except ValueError as e:  # also: an integer of more digits than int() converts (sys.int_info)
        return UnparsableLine(text, f"invalid JSON: {e}")
    try:
        return _event(_obj(doc, "message"))
    except (_Shape, KeyError, AttributeError, TypeError, ValueError, RecursionError) as e:
        return UnparsableLine(text, f"unexpected message shape: {e}")
