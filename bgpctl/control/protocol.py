"""The control protocol, version 1: one JSON object per line each way, over a Unix stream socket.

Request::

    {"v": 1, "id": 7, "verb": "status", "args": {"decisions": 20}}

Answer (same ``id``; ``null`` when the request had none or it could not be read)::

    {"v": 1, "id": 7, "ok": true, "result": {...}}
    {"v": 1, "id": 7, "ok": false, "error": {"code": "bad_args", "message": "...", "hint": "..."}}

``id`` (optional) is a string of at most :data:`MAX_ID_CHARS` characters or an integer; ``args``
(optional) an object of the verb's arguments; a request may hold nothing else. A client may send several
requests on one connection, one at a time. Verbs that change state (drain, undrain, pin, unpin,
freeze, thaw, weight, unweight, reload) take a ``reason`` argument and are logged with who asked (peer
credentials) and why.
Everything here is pure: the server and the client share it. docs/control.md is the reference.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bgpctl.core import override_args as overrides
from bgpctl.errors import BgpctlError

VERSION = 1
SOCKET_NAME = "control.sock"
"""The socket's name in the daemon's run directory."""
MAX_REQUEST_BYTES = 64 * 1024
"""A request line longer than this is refused (``too_large``) and the connection closed."""
MAX_ID_CHARS = 128
MAX_DECISIONS = 200
"""How many recent decisions the daemon keeps, and the most ``status`` returns."""
DEFAULT_DECISIONS = 20
REQUEST_TIMEOUT_S = 10.0
"""A connection that has not sent a whole request line for this long gets ``timeout`` and is closed."""
WRITE_TIMEOUT_S = 5.0
"""A client that does not read its answer for this long is dropped."""
MAX_CONNECTIONS = 16
"""Connections beyond this get ``busy`` and are closed."""
MAX_REASON_CHARS = 500

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_ENVELOPE_KEYS = frozenset({"v", "id", "verb", "args"})


class Code(enum.StrEnum):
    """Error codes (``error.code``): stable, for programs; ``message`` and ``hint`` are for people."""

    MALFORMED = "malformed"  # not one JSON object on one line of UTF-8, or a bad envelope field
    TOO_LARGE = "too_large"  # the line exceeds MAX_REQUEST_BYTES
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_VERB = "unknown_verb"
    BAD_ARGS = "bad_args"
    FORBIDDEN = "forbidden"  # a verb that changes state, asked by someone who may not
    REFUSED = "refused"  # a well-formed change the daemon will not make now (the last healthy region, ...)
    TIMEOUT = "timeout"
    BUSY = "busy"
    INTERNAL = "internal"  # a bug: the daemon logged it and keeps running


class ProtocolError(BgpctlError):
    """A request that gets an error answer: ``code``, a message and what to do instead."""

    def __init__(self, code: Code, message: str, hint: str = "", request_id: str | int | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.hint, self.request_id = code, message, hint, request_id


RequestId = str | int | None


@dataclass(frozen=True, slots=True)
class Request:
    v: int
    id: RequestId
    verb: str
    args: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# verbs and their arguments


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument: a checker that returns the value to use or raises ValueError saying what is wrong."""

    check: Callable[[Any], Any]
    help: str
    required: bool = False


@dataclass(frozen=True, slots=True)
class Verb:
    """A verb: its arguments, and whether it changes state (then ``reason`` is required and it is logged)."""

    name: str
    help: str
    args: Mapping[str, Arg]
    changes_state: bool = False


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DECISIONS:
        raise ValueError(f"must be an integer 0-{MAX_DECISIONS}")
    return value


def _peer_name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError("must be a peer name (lower case letters, digits, '-' and '_', at most 32)")
    return value


def prefix_filter(value: Any) -> str:
    """An address or a prefix (``203.0.113.10``, ``203.0.113.0/24``), normalised; ValueError otherwise."""
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("must be an IP address or prefix like 203.0.113.0/26 or 2001:db8::/32")
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(f"'{value}' is not an IP address or prefix (like 203.0.113.0/26 or 2001:db8::/32)") from None


def reason_text(value: Any) -> str:
    """The ``reason`` every state-changing verb needs: printable text, 1-MAX_REASON_CHARS characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_REASON_CHARS or not value.isprintable():
        raise ValueError(f"must be printable text of 1-{MAX_REASON_CHARS} characters saying why")
    return value.strip()


REASON = Arg(reason_text, "why (logged with who asked)", required=True)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


_FOR = Arg(overrides.duration, "how long: seconds, or 90s / 15m / 2h30m / 1d (at most 30 days); default: until removed")
_DRAIN_TARGET = Arg(overrides.drain_target, "REGION or REGION/PATH", required=True)
_SERVICE_OPT = Arg(lambda v: overrides.name(v, "service name"), "only this service (default: every service)")
_SERVICE = Arg(lambda v: overrides.name(v, "service name"), "the service", required=True)
_REGION = Arg(lambda v: overrides.name(v, "region name"), "the region", required=True)

VERBS: dict[str, Verb] = {
    "status": Verb(
        "status",
        "speaker, ExaBGP, sessions, paths with their stats and reasons, overrides, the last decisions",
        {"decisions": Arg(_count, f"how many recent decisions (default {DEFAULT_DECISIONS})")},
    ),
    "routes": Verb(
        "routes",
        "what is announced to whom, every attribute and the rule that produced it",
        {
            "peer": Arg(_peer_name, "only this peer"),
            "prefix": Arg(prefix_filter, "only routes overlapping this address or prefix"),
        },
    ),
    "verbs": Verb("verbs", "the verbs this daemon answers, with their arguments", {}),
    "drain": Verb(
        "drain",
        "make the up paths of a region (or one path) standby, for every service or one",
        {
            "target": _DRAIN_TARGET,
            "service": _SERVICE_OPT,
            "for": _FOR,
            "force": Arg(_flag, "drain even the last healthy region of a service"),
        },
        changes_state=True,
    ),
    "undrain": Verb(
        "undrain",
        "end a runtime drain: the region returns after each service's rise rules (rise_s)",
        {
            "target": _DRAIN_TARGET,
            "service": _SERVICE_OPT,
            "now": Arg(_flag, "return at once, skipping the rise rules (also ends a return already running)"),
        },
        changes_state=True,
    ),
    "pin": Verb(
        "pin",
        "prefer a service only in one region while it has an up path there",
        {"service": _SERVICE, "region": _REGION, "for": _FOR},
        changes_state=True,
    ),
    "unpin": Verb("unpin", "end a service's runtime pin", {"service": _SERVICE}, changes_state=True),
    "weight": Verb(
        "weight",
        "split an active-active service between the regions by weight (link bandwidth at the edge)",
        {
            "service": _SERVICE,
            "weights": Arg(overrides.weights, 'each region\'s weight 0-1000, like {"use1": 80, "usw2": 20}', True),
            "for": _FOR,
        },
        changes_state=True,
    ),
    "unweight": Verb(
        "unweight",
        "end a service's runtime weights (the policy's own apply again)",
        {"service": _SERVICE},
        changes_state=True,
    ),
    "freeze": Verb("freeze", "announce nothing new: the routes stay as they are", {"for": _FOR}, changes_state=True),
    "thaw": Verb("thaw", "end a runtime freeze", {}, changes_state=True),
    "reload": Verb(
        "reload",
        "read and check the policy file again; apply it as a diff, or refuse it whole (the old one runs on)",
        {"dry_run": Arg(_flag, "only say which route changes the new policy would make; change nothing")},
        changes_state=True,
    ),
}
OVERRIDE_VERBS = frozenset({"drain", "undrain", "pin", "unpin", "freeze", "thaw", "weight", "unweight"})


def check_args(verb: Verb, args: Any) -> dict[str, Any]:
    """The verb's checked arguments; ProtocolError(BAD_ARGS) naming the first problem."""
    if not isinstance(args, dict):
        raise ProtocolError(Code.BAD_ARGS, f"{verb.name}: 'args' must be an object", _args_hint(verb))
    known = dict(verb.args)
    if verb.changes_state:
        known["reason"] = REASON
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ProtocolError(
            Code.BAD_ARGS, f"{verb.name}: unknown argument '{_clip(unknown[0])}'", _args_hint(verb, known)
        )
    out: dict[str, Any] = {}
    for name, arg in known.items():
        if name not in args:
            if arg.required:
                raise ProtocolError(Code.BAD_ARGS, f"{verb.name}: argument '{name}' is required", arg.help)
            continue
        try:
            out[name] = arg.check(args[name])
        except ValueError as e:
            raise ProtocolError(Code.BAD_ARGS, f"{verb.name}: argument '{name}' {e}", arg.help) from None
    return out


def _args_hint(verb: Verb, known: Mapping[str, Arg] | None = None) -> str:
    names = sorted(known if known is not None else verb.args)
    return f"arguments of {verb.name}: {', '.join(names)}" if names else f"{verb.name} takes no arguments"


def _clip(text: str, n: int = 40) -> str:
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= n else text[: n - 3] + "..."


# --------------------------------------------------------------------------------------------
# envelopes


def _request_id(data: Mapping[str, Any]) -> RequestId:
    value = data.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ProtocolError(Code.MALFORMED, "'id' must be a string or an integer", "or leave it out")
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        raise ProtocolError(Code.MALFORMED, f"'id' is longer than {MAX_ID_CHARS} characters", "use a shorter id")
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise ProtocolError(Code.MALFORMED, "'id' does not fit in 64 bits", "use a smaller number")
    return value


def _load(line: bytes) -> Any:
    if len(line) > MAX_REQUEST_BYTES:
        raise ProtocolError(Code.TOO_LARGE, f"request longer than {MAX_REQUEST_BYTES} bytes", "send less")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProtocolError(Code.MALFORMED, f"request is not UTF-8 (byte {e.start})", _SHAPE) from None
    text = text.strip()
    if not text:
        raise ProtocolError(Code.MALFORMED, "empty request", _SHAPE)
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        where = f" at line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        what = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deeply or not finite"
        raise ProtocolError(Code.MALFORMED, f"request is not JSON{where}: {what}", _SHAPE) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_SHAPE = 'send one JSON object per line, like {"v": 1, "id": 1, "verb": "status", "args": {}}'


def parse_request(line: bytes) -> Request:
    """One request line -> Request; ProtocolError with the code, message and hint of the answer."""
    data = _load(line)
    if not isinstance(data, dict):
        raise ProtocolError(Code.MALFORMED, f"request must be a JSON object, not {_json_type(data)}", _SHAPE)
    rid = _request_id(data)
    unknown = sorted(set(data) - _ENVELOPE_KEYS)
    if unknown:
        raise ProtocolError(
            Code.MALFORMED,
            f"unknown request field '{_clip(unknown[0])}'",
            "a request holds v, id, verb and args only; arguments go in args",
            rid,
        )
    v = data.get("v")
    if v is None:
        raise ProtocolError(Code.MALFORMED, "'v' (the protocol version) is missing", f'send "v": {VERSION}', rid)
    if isinstance(v, bool) or not isinstance(v, int) or v != VERSION:
        raise ProtocolError(
            Code.UNSUPPORTED_VERSION,
            f"protocol version {_clip(json.dumps(v))} is not supported",
            f'this daemon speaks version {VERSION}: send "v": {VERSION}',
            rid,
        )
    verb = data.get("verb")
    if not isinstance(verb, str):
        raise ProtocolError(Code.MALFORMED, "'verb' must be a string", f"one of {', '.join(sorted(VERBS))}", rid)
    return Request(VERSION, rid, verb, data.get("args", {}))


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def ok(request_id: RequestId, result: Mapping[str, Any]) -> dict[str, Any]:
    return {"v": VERSION, "id": request_id, "ok": True, "result": result}


def error(request_id: RequestId, code: Code, message: str, hint: str = "") -> dict[str, Any]:
    return {"v": VERSION, "id": request_id, "ok": False, "error": {"code": str(code), "message": message, "hint": hint}}


def error_of(e: ProtocolError) -> dict[str, Any]:
    return error(e.request_id, e.code, e.message, e.hint)


def finite(value: float | None, digits: int = 3) -> float | None:
    """A number for JSON: rounded, and None for nothing, NaN or infinity (JSON has neither)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as one line (compact JSON, no NaN/Infinity, which are not JSON)."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8") + b"\n"


def request_line(verb: str, args: Mapping[str, Any] | None = None, request_id: RequestId = 1) -> bytes:
    return encode({"v": VERSION, "id": request_id, "verb": verb, "args": dict(args or {})})


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a verb's result (``status``, ``routes``), shipped as bgpctl/schemas/NAME.schema.json."""
    from importlib import resources  # noqa: PLC0415

    data: dict[str, Any] = json.loads((resources.files("bgpctl") / "schemas" / f"{name}.schema.json").read_text())
    return data


def verbs_result() -> dict[str, Any]:
    """The ``verbs`` answer."""
    return {
        "version": VERSION,
        "verbs": [
            {
                "verb": v.name,
                "help": v.help,
                "changes_state": v.changes_state,
                "args": {n: a.help for n, a in v.args.items()} | ({"reason": REASON.help} if v.changes_state else {}),
            }
            for v in VERBS.values()
        ],
    }
