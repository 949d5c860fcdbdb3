"""The recording format: what the controller was fed, as JSON lines (written by the daemon and by
``bgpctl probe --record``, read by ``bgpctl replay``). One module for both directions.

Lines, one JSON object each:

* **header** (first line, version 2): ``{"bgpctl_recording": 2, "steps": true, "paths":
  {"media/use1/interconnect": {"interval_s": 0.02, "timeout_s": 0.3}, ...}}``: the probe schedule the
  recording was made with, and whether it has step lines.
* **sample** (a settled probe, as in version 1): ``{"service": "media", "region": "use1", "path":
  "interconnect", "seq": 17, "sent": 1795680000.123456, "received": 1795680000.1237}``
  (``received: null`` when the probe was lost). The IPv6 measurement of a dual-stack path adds
  ``"family": "ipv6"`` (and its header name is ``service/region/path/ipv6``); lines of every other key have no
  ``family``, as before.
* **sent** (a probe went out): ``{"ev": "sent", "service": ..., "region": ..., "path": ..., "seq": 17,
  "sent": 1795680000.123456}``.
* **step** (the controller evaluated): ``{"ev": "step", "at": 1795680000.125}``.
* **negotiated** (what the BGP sessions negotiated changed): ``{"ev": "negotiated", "add_path":
  {"edge": ["ipv4-unicast"]}}``: per peer, the families it negotiated ADD-PATH send in (a peer not
  listed: none). A daemon recording's header says ``"negotiated": true``: the controller started with
  nothing negotiated; without it (older recordings) the replay plans as the policy configures.
* **overrides** (the runtime overrides changed: a control verb, or the set loaded at start):
  ``{"ev": "overrides", "overrides": [{"kind": "drain", "region": "use1", "path": null, "service": null,
  "by": {"pid": 7, "uid": 0, "gid": 0}, "since": 1795680000.2, "expires": null, "reason": "..."}]}``: the
  whole set in force from then on (:func:`bgpctl.core.overrides.to_json`'s shape). Expiry is not recorded:
  the controller drops an override at the step that reaches its ``expires``, in a replay too. Only a
  recording with step lines (the daemon's) is replayed with its overrides; the fixed-tick replay of a
  recording without them reads samples only.
* **session** (a peer's BGP session went up or down, as the controller was told): ``{"ev": "session",
  "peer": "tgw-use1", "up": false, "at": 1795680000.2}`` (``up``: true, false, or null when unknown,
  see :meth:`~bgpctl.core.controller.Controller.session`). A recording without session lines (older
  ones, ``bgpctl probe --record``) replays as if no session ever went down.
* **signal** (what an outside signal says changed, as the controller was told): ``{"ev": "signal",
  "signal": "relay", "marks": [{"region": "use1", "path": null, "state": "down", "reason": "..."}],
  "at": 1795680000.2}``; ``marks`` is empty when the signal says nothing any more (cleared, stale or
  broken), see :meth:`~bgpctl.core.controller.Controller.signal`. A recording without signal lines
  replays as if no signal ever said anything.

The daemon writes every line in the order the controller saw it (:class:`~bgpctl.core.controller.
Controller` ``sent`` / ``add`` / ``step``), so a replay of a daemon recording feeds the controller the
same inputs in the same order and reproduces its decisions exactly. A recording without step lines
(version 1, or ``bgpctl probe --record``) is replayed on a fixed tick instead (see
:mod:`bgpctl.core.replay`). Times are CLOCK_REALTIME seconds (see :mod:`bgpctl.probe.sockopt`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from bgpctl.core.overrides import Runtime, runtime_from_json, to_json
from bgpctl.core.types import MEASURED_V6, Health, PathKey, Sample, SignalMark
from bgpctl.errors import RefusedInput
from bgpctl.policy.model import Family

VERSION = 2

MAX_LINE_BYTES = 64 * 1024
"""A recording line longer than this is refused (a sample line is about 120 bytes, a header grows with the
number of paths: 64 KiB holds several hundred)."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


class RecordingError(RefusedInput):
    """A recording line is malformed (the message names file:line and what a good line looks like)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """How one path was probed: the interval and the timeout, seconds."""

    interval_s: float
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Header:
    paths: Mapping[PathKey, Schedule]
    steps: bool  # the recording has step lines (a daemon recording): replay it exactly
    negotiated: bool = False  # the recording has negotiated lines; the controller started with none


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What the sessions negotiated: per peer, the families with ADD-PATH send."""

    add_path: Mapping[str, frozenset[Family]]


@dataclass(frozen=True, slots=True)
class Settled:
    """A settled probe (answered, or lost at its timeout)."""

    key: PathKey
    sample: Sample


@dataclass(frozen=True, slots=True)
class Sent:
    key: PathKey
    seq: int
    at: float


@dataclass(frozen=True, slots=True)
class Stepped:
    at: float


@dataclass(frozen=True, slots=True)
class OverridesSet:
    """The runtime overrides in force from this line on."""

    runtime: Runtime


@dataclass(frozen=True, slots=True)
class Session:
    """What the controller was told of a peer's BGP session at ``at``: up, not up, or unknown (None)."""

    peer: str
    up: bool | None
    at: float


@dataclass(frozen=True, slots=True)
class Signalled:
    """What the controller was told at ``at`` that the outside signal ``signal`` says: its marks (none: nothing)."""

    signal: str
    marks: tuple[SignalMark, ...]
    at: float


Event = Header | Settled | Sent | Stepped | Negotiated | OverridesSet | Session | Signalled


# --------------------------------------------------------------------------------------------
# writing


def header_line(paths: Mapping[PathKey, Schedule], *, steps: bool, negotiated: bool = False) -> str:
    doc: dict[str, object] = {
        "bgpctl_recording": VERSION,
        "steps": steps,
        "paths": {str(k): {"interval_s": s.interval_s, "timeout_s": s.timeout_s} for k, s in paths.items()},
    }
    if negotiated:
        doc["negotiated"] = True
    return _dump(doc)


def negotiated_line(add_path: Mapping[str, frozenset[Family]]) -> str:
    return _dump({"ev": "negotiated", "add_path": {p: sorted(f.value for f in fams) for p, fams in add_path.items()}})


def overrides_line(runtime: Runtime) -> str:
    return _dump({"ev": "overrides", "overrides": [to_json(o) for o in runtime]})


def session_line(peer: str, up: bool | None, at: float) -> str:
    return _dump({"ev": "session", "peer": peer, "up": up, "at": at})


def signal_line(signal: str, marks: tuple[SignalMark, ...], at: float) -> str:
    return _dump(
        {
            "ev": "signal",
            "signal": signal,
            "marks": [{"region": m.region, "path": m.path, "state": m.health.value, "reason": m.reason} for m in marks],
            "at": at,
        }
    )


def _names(key: PathKey) -> dict[str, str]:
    """A key's fields on a line: ``family`` only for a dual-stack path's IPv6 measurement (so every line of a
    key without one is as it always was)."""
    names = {"service": key.service, "region": key.region, "path": key.path}
    if key.family:
        names["family"] = key.family
    return names


def sample_line(key: PathKey, sample: Sample) -> str:
    return _dump({**_names(key), "seq": sample.seq, "sent": sample.sent, "received": sample.received})


def sent_line(key: PathKey, seq: int, at: float) -> str:
    return _dump({"ev": "sent", **_names(key), "seq": seq, "sent": at})


def step_line(at: float) -> str:
    return _dump({"ev": "step", "at": at})


def _dump(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":")) + "\n"


# --------------------------------------------------------------------------------------------
# reading

_FIELDS = ("service", "region", "path", "seq", "sent", "received")
_EXAMPLE = '{"service": "media", "region": "use1", "path": "interconnect", "seq": 1, "sent": 0.0, "received": 0.012}'


def read_recording(lines: Iterable[str], name: str = "<recording>") -> Iterator[Event]:
    """The non-blank lines of a recording, parsed lazily (a week of probes need not fit in memory)."""
    parser = Parser()
    for n, line in enumerate(lines, 1):
        if line.strip():
            yield parser.parse(line, name, n)


def recording_lines(stream: BinaryIO, name: str) -> Iterator[str]:
    """The lines of a recording read from a binary stream, each at most :data:`MAX_LINE_BYTES` and UTF-8
    without control characters; RecordingError (file:line) otherwise. Never holds more than one line."""
    n = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        n += 1
        if len(raw) > MAX_LINE_BYTES:
            raise RecordingError(
                f"{name}:{n}: line longer than {MAX_LINE_BYTES // 1024} KiB; a recording line is one JSON "
                "object of about 120 bytes: is this a recording?"
            )
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordingError(
                f"{name}:{n}: not UTF-8 text (byte {e.start} of the line); save the file as UTF-8"
            ) from None
        bad = _CONTROL.search(line.rstrip("\r\n"))
        if bad is not None:
            raise RecordingError(
                f"{name}:{n}: control character U+{ord(bad.group()):04X} at column {bad.start() + 1}; "
                "a recording is JSON lines of plain text"
            )
        yield line


def parse_line(line: str, where: str) -> Event:
    """One line -> an event; RecordingError naming ``where`` (file:line) when it is malformed."""
    return Parser().parse(line, where, None)


class Parser:
    """Parses lines; the common, well-formed sample line takes a fast path, anything else the checks."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str, str, str], PathKey] = {}

    def _key(self, service: str, region: str, path: str, family: str = "") -> PathKey:
        names = (service, region, path, family)
        key = self._keys.get(names)
        if key is None:
            key = self._keys[names] = PathKey(service, region, path, family)
        return key

    def parse(self, line: str, name: str, lineno: int | None) -> Event:
        """``name`` and ``lineno`` say where the line is, for messages (``name`` alone when None)."""
        where = name if lineno is None else f"{name}:{lineno}"
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as e:  # ValueError: also an integer past Python's 4300 digits
            msg = (
                e.msg
                if isinstance(e, json.JSONDecodeError)
                else "nested too deeply"
                if isinstance(e, RecursionError)
                else "a number too long to read"
            )
            raise RecordingError(f"{where}: not JSON ({msg}); each line must be one object like {_EXAMPLE}") from None
        if type(obj) is dict:
            service, region, path = obj.get("service"), obj.get("region"), obj.get("path")
            seq, sent, received = obj.get("seq"), obj.get("sent"), obj.get("received")
            family = obj.get("family", "")
            if (
                "ev" not in obj
                and family in ("", MEASURED_V6)
                and isinstance(service, str)
                and isinstance(region, str)
                and isinstance(path, str)
                and type(seq) is int
                and (type(sent) is float or type(sent) is int)
                and math.isfinite(sent)
                and (
                    received is None
                    or (
                        (type(received) is float or type(received) is int)
                        and math.isfinite(received)
                        and received >= sent
                    )
                )
            ):
                return Settled(
                    self._key(service, region, path, family),
                    Sample(seq, float(sent), None if received is None else float(received)),
                )
        return self._checked(obj, where)

    def _checked(self, obj: object, where: str) -> Event:
        """The slow path: find what is wrong with a line and say so (or parse an unusual but valid one)."""
        if not isinstance(obj, dict):
            raise RecordingError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        if "bgpctl_recording" in obj:
            return _header(obj, where)
        ev = obj.get("ev")
        parse = _EVENT_LINES.get(ev) if isinstance(ev, str) else None
        if parse is not None:
            return parse(obj, where)
        if ev is not None and ev != "sent":
            raise RecordingError(
                f"{where}: unknown event {ev!r}: 'ev' is 'sent', 'step', 'negotiated', 'overrides', "
                "'session' or 'signal' (or absent, for a sample)"
            )
        fields = _FIELDS[:5] if ev == "sent" else _FIELDS
        missing = [f for f in fields if f not in obj]
        if missing:
            raise RecordingError(
                f"{where}: missing {', '.join(missing)} (a sample line needs {', '.join(_FIELDS)}; "
                "received is null for a lost probe)"
            )
        names = [obj["service"], obj["region"], obj["path"]]
        if not all(isinstance(n, str) for n in names):
            raise RecordingError(f"{where}: service, region and path must be strings")
        family = obj.get("family", "")
        if family not in ("", MEASURED_V6):
            raise RecordingError(
                f"{where}: 'family' is {family!r}: write \"{MEASURED_V6}\" for a dual-stack path's IPv6 "
                "measurement, or leave it out"
            )
        names.append(family)
        seq = obj["seq"]
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise RecordingError(f"{where}: 'seq' must be an integer, got {seq!r}")
        sent = _number(obj["sent"], "sent", where)
        key = self._key(*names)
        if ev == "sent":
            return Sent(key, seq, sent)
        received = None if obj["received"] is None else _number(obj["received"], "received", where)
        if received is not None and received < sent:
            raise RecordingError(
                f"{where}: received {received} is before sent {sent}: both must come from one monotonic clock"
            )
        return Settled(key, Sample(seq, sent, received))


def _number(value: object, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        hint = "NaN and Infinity are not times" if isinstance(value, float) else "write seconds as a JSON number"
        raise RecordingError(f"{where}: '{name}' must be a finite number of seconds, got {value!r}; {hint}")
    return float(value)


def _negotiated(obj: dict[str, object], where: str) -> Negotiated:
    raw = obj.get("add_path")
    example = '{"ev": "negotiated", "add_path": {"edge": ["ipv4-unicast"]}}'
    if not isinstance(raw, dict):
        raise RecordingError(f"{where}: 'add_path' must map peer names to lists of families, like {example}")
    names = {f.value for f in Family}
    out: dict[str, frozenset[Family]] = {}
    for peer, fams in raw.items():
        if not isinstance(fams, list) or not all(isinstance(f, str) and f in names for f in fams):
            raise RecordingError(
                f"{where}: add_path.{peer}: a list of families ({', '.join(sorted(names))}), got {fams!r}"
            )
        out[peer] = frozenset(Family(f) for f in fams)
    return Negotiated(out)


def _overrides(obj: dict[str, object], where: str) -> OverridesSet:
    try:
        return OverridesSet(runtime_from_json({"version": 1, "overrides": obj.get("overrides")}, where))
    except ValueError as e:
        raise RecordingError(f'{e} (an overrides line: {{"ev": "overrides", "overrides": [...]}})') from None


def _session(obj: dict[str, object], where: str) -> Session:
    example = '{"ev": "session", "peer": "tgw-use1", "up": false, "at": 1795680000.2}'
    peer, up = obj.get("peer"), obj.get("up")
    if not isinstance(peer, str) or not peer:
        raise RecordingError(f"{where}: 'peer' must be the peer's name (a non-empty string), like {example}")
    if up is not None and not isinstance(up, bool):
        raise RecordingError(f"{where}: 'up' must be true, false or null, got {up!r}, like {example}")
    return Session(peer, up, _number(obj.get("at"), "at", where))


_MARK_STATES = {"degraded": Health.DEGRADED, "down": Health.DOWN}
_SIGNAL_EXAMPLE = (
    '{"ev": "signal", "signal": "relay", "marks": [{"region": "use1", "path": null, "state": "down", '
    '"reason": "..."}], "at": 1795680000.2}'
)


def _mark(name: str, m: object, where: str) -> SignalMark:
    region, path, state, reason = (
        (m.get(k) for k in ("region", "path", "state", "reason")) if isinstance(m, dict) else (None, None, None, None)
    )
    if (
        not isinstance(region, str)
        or not (path is None or isinstance(path, str))
        or not isinstance(state, str)
        or state not in _MARK_STATES
        or not isinstance(reason, str)
    ):
        raise RecordingError(
            f"{where}: region (string), path (string or null), state ('degraded' or 'down') and reason "
            f"(string), like {_SIGNAL_EXAMPLE}"
        )
    return SignalMark(name, region, path, _MARK_STATES[state], reason)


def _signalled(obj: dict[str, object], where: str) -> Signalled:
    name, raw = obj.get("signal"), obj.get("marks")
    if not isinstance(name, str) or not name:
        raise RecordingError(
            f"{where}: 'signal' must be the signal's name (a non-empty string), like {_SIGNAL_EXAMPLE}"
        )
    if not isinstance(raw, list):
        raise RecordingError(
            f"{where}: 'marks' must be a list (empty: the signal says nothing), like {_SIGNAL_EXAMPLE}"
        )
    marks = tuple(_mark(name, m, f"{where}: marks[{i}]") for i, m in enumerate(raw))
    return Signalled(name, marks, _number(obj.get("at"), "at", where))


def _header(obj: dict[str, object], where: str) -> Header:
    version = obj.get("bgpctl_recording")
    if version != VERSION:
        raise RecordingError(
            f"{where}: recording version {version!r}; this bgpctl reads version {VERSION} "
            "(and version 1: sample lines without a header)"
        )
    paths = obj.get("paths")
    if not isinstance(paths, dict):
        raise RecordingError(f"{where}: 'paths' must map 'service/region/path' to its interval_s and timeout_s")
    out: dict[PathKey, Schedule] = {}
    for name, sched in paths.items():
        parts = name.split("/")
        if (
            len(parts) not in (3, 4)
            or not all(parts)
            or (len(parts) == 4 and parts[3] != MEASURED_V6)
            or not isinstance(sched, dict)
        ):
            raise RecordingError(
                f"{where}: paths.{name}: write 'service/region/path' (or 'service/region/path/{MEASURED_V6}' for a "
                f'dual-stack path\'s IPv6 measurement): {{"interval_s": ..., "timeout_s": ...}}'
            )
        interval = _number(sched.get("interval_s"), f"paths.{name}.interval_s", where)
        timeout = _number(sched.get("timeout_s"), f"paths.{name}.timeout_s", where)
        if interval <= 0 or timeout <= 0:
            raise RecordingError(f"{where}: paths.{name}: interval_s and timeout_s must be positive")
        out[PathKey(*parts)] = Schedule(interval, timeout)
    steps = obj.get("steps", False)
    if not isinstance(steps, bool):
        raise RecordingError(f"{where}: 'steps' must be true or false")
    negotiated = obj.get("negotiated", False)
    if not isinstance(negotiated, bool):
        raise RecordingError(f"{where}: 'negotiated' must be true or false")
    return Header(out, steps, negotiated)


def _stepped(obj: dict[str, object], where: str) -> Stepped:
    return Stepped(_number(obj.get("at"), "at", where))


# the event lines other than samples and sends, by their "ev"
_EVENT_LINES: dict[str, Callable[[dict[str, object], str], Event]] = {
    "step": _stepped,
    "negotiated": _negotiated,
    "overrides": _overrides,
    "session": _session,
    "signal": _signalled,
}
