"""The signal document, its parser and the verdict on a reading. Pure: no I/O, the clock is passed in.

The document (JSON; a flag file may also be YAML)::

    {
      "generated_at": "2026-12-01T07:00:00Z",
      "regions": {"use1": {"state": "down", "reason": "AWS Health: elevated API errors in us-east-1"}},
      "paths": {"usw2/interconnect": {"state": "degraded", "reason": "DX maintenance"}}
    }

* ``generated_at`` (optional): when the source made this view, Unix seconds or an ISO 8601 time with a
  zone (``Z`` or ``+00:00``). Staleness is counted from it; without it, from the file's mtime or the
  time of the fetch.
* ``regions`` / ``paths`` (both optional; ``paths`` keys are ``REGION/PATH``): ``state`` is ``down``,
  ``degraded`` or ``ok`` (``ok``: no mark; a relay may list every region), ``reason`` (optional, at most
  200 characters of one line) is shown in the log and in ``status``.
* Nothing else: an unknown key, a wrong type, a region or path the policy does not have refuses the
  whole document (one warning naming what is wrong; the signal then says nothing, the probes decide).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from bgpctl.core.types import Health, SignalMark
from bgpctl.policy.model import Policy

CLOCK_SKEW_S = 30.0
"""A ``generated_at`` further in the future than this is refused: the source's clock is wrong."""
EXAMPLE = '{"generated_at": 1796108400, "regions": {"use1": {"state": "down", "reason": "..."}}}'

_STATES = {"down": Health.DOWN, "degraded": Health.DEGRADED}
_REASON = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]{0,200}")


class SignalError(Exception):
    """One reading refused. ``reason`` is the metric's label (``bgpctl_signal_errors_total``)."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        self.message = message
        super().__init__(f"{reason}: {message}")


def _check_reason(value: str) -> str:
    if not _REASON.fullmatch(value):
        raise PydanticCustomError(
            "signal_reason", "a reason is one line of at most 200 characters without control characters"
        )
    return value


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    state: Literal["down", "degraded", "ok"]
    reason: Annotated[str, AfterValidator(_check_reason)] = ""


class _Document(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    generated_at: float | int | str | None = None
    regions: dict[str, _Entry] = Field(default_factory=dict)
    paths: dict[str, _Entry] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed document: the marks it says and when it was generated (None: not said)."""

    marks: tuple[SignalMark, ...]
    generated_at: float | None = None


def parse_document(name: str, data: bytes, policy: Policy, *, yaml: bool = False) -> Document:
    """``data`` (JSON, or also YAML when ``yaml``) -> the document's marks for signal ``name``;
    SignalError(reason, message) when it is not a document of the shape above."""
    obj = _load(data, yaml=yaml)
    try:
        doc = _Document.model_validate(obj)
    except ValidationError as e:
        raise SignalError("malformed", _validation_message(e)) from None
    marks: list[SignalMark] = []
    for region, entry in doc.regions.items():
        if region not in policy.regions:
            raise SignalError(
                "unknown_target", f"regions: unknown region {region!r}; the policy's regions are {_known(policy)}"
            )
        marks.extend(_mark(name, region, None, entry))
    for key, entry in doc.paths.items():
        region, sep, path = key.partition("/")
        if not sep or region not in policy.regions or path not in policy.regions[region].paths:
            paths = ", ".join(f"{r}/{p}" for r, reg in policy.regions.items() for p in reg.paths)
            raise SignalError("unknown_target", f"paths: unknown path {key!r}; write REGION/PATH, one of {paths}")
        marks.extend(_mark(name, region, path, entry))
    return Document(tuple(marks), _generated_at(doc.generated_at))


def _load(data: bytes, *, yaml: bool) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SignalError("parse", f"not UTF-8 text (byte {e.start})") from None
    if yaml and not text.lstrip().startswith(("{", "[")):
        try:
            return YAML(typ="safe", pure=True).load(text)
        except YAMLError as e:
            problem = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise SignalError("parse", f"not YAML: {problem}; write a document like {EXAMPLE}") from None
        except RecursionError:
            raise SignalError("parse", "not YAML: nested too deeply") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SignalError("parse", f"not JSON ({e.msg} at line {e.lineno} column {e.colno}); like {EXAMPLE}") from None
    except (ValueError, RecursionError):
        raise SignalError("parse", f"not JSON (nested too deeply or a number too long); like {EXAMPLE}") from None


def _validation_message(e: ValidationError) -> str:
    errors = e.errors(include_url=False)
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(x) for x in err["loc"]) or "the document"
        msg = err["msg"]
        if err["type"] == "literal_error":
            msg = "state is 'down', 'degraded' or 'ok'"
        elif err["type"] in ("model_type", "dict_type") and not err["loc"]:
            msg = f"expected a JSON object, like {EXAMPLE}"
        parts.append(f"{loc}: {msg}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def _known(policy: Policy) -> str:
    return ", ".join(policy.regions)


def _mark(name: str, region: str, path: str | None, entry: _Entry) -> list[SignalMark]:
    health = _STATES.get(entry.state)
    if health is None:  # ok: nothing to mark
        return []
    return [SignalMark(name, region, path, health, entry.reason or "(no reason given)")]


def _generated_at(value: float | str | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise SignalError("malformed", f"generated_at: {value!r} is not a time: write Unix seconds or ISO 8601")
        return float(value)
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SignalError(
            "malformed", f"generated_at: {value!r} is not an ISO 8601 time: write it like 2026-12-01T07:00:00Z"
        ) from None
    if when.tzinfo is None:
        raise SignalError("malformed", f"generated_at: {value!r} has no time zone: add Z (UTC) or +HH:MM")
    return when.timestamp()


# --------------------------------------------------------------------------------------------
# readings and verdicts


class State(enum.StrEnum):
    """What a signal's latest reading counts as now."""

    PENDING = "pending"  # nothing read yet
    FRESH = "fresh"  # read and young enough: its marks count
    STALE = "stale"  # read, but older than max_age_s: ignored
    ERROR = "error"  # the last read failed (unreadable, malformed, oversized, timeout, HTTP error): ignored


@dataclass(frozen=True, slots=True)
class Reading:
    """One read of a signal's source: the document, or why there is none. ``born``: when the source's view
    was made, if the source says (a file's mtime; the document's ``generated_at`` wins over it)."""

    at: float
    document: Document | None = None
    error: SignalError | None = None
    born: float | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    state: State
    marks: tuple[SignalMark, ...] = ()
    age_s: float | None = None
    reason: str | None = None  # the error's reason code, "stale", or None
    message: str = ""


def document_reading(at: float, doc: Document, born: float | None = None) -> Reading:
    """A reading at ``at`` of ``doc``; an error reading (reason ``clock``) when the document says it was made
    more than :data:`CLOCK_SKEW_S` after ``at``: the source's clock is wrong, its times mean nothing."""
    if doc.generated_at is not None and doc.generated_at > at + CLOCK_SKEW_S:
        ahead = doc.generated_at - at
        return Reading(
            at,
            error=SignalError("clock", f"generated_at is {ahead:.0f} s in the future: check the source's clock (NTP)"),
        )
    return Reading(at, doc, born=born)


def verdict(reading: Reading | None, now: float, max_age_s: float | None) -> Verdict:
    """What ``reading`` counts as at ``now``: only a FRESH verdict has marks."""
    if reading is None:
        return Verdict(State.PENDING, message="not read yet")
    if reading.error is not None or reading.document is None:
        err = reading.error or SignalError("unreadable", "no document")
        return Verdict(State.ERROR, age_s=max(0.0, now - reading.at), reason=err.reason, message=err.message)
    doc = reading.document
    born = (
        doc.generated_at if doc.generated_at is not None else reading.born if reading.born is not None else reading.at
    )
    age = max(0.0, now - born)
    if max_age_s is not None and age > max_age_s:
        return Verdict(
            State.STALE, age_s=age, reason="stale", message=f"{age:.1f} s old, more than max_age_s {max_age_s:g}"
        )
    return Verdict(State.FRESH, doc.marks, age_s=age, message=f"{len(doc.marks)} mark(s)")
