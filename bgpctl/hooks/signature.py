"""The webhook signature: HMAC-SHA256 over the timestamp and the exact body, against forgery and replay.

Header (docs/hooks.md)::

    X-Bgpctl-Signature: t=1764573120,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

``t`` is the sender's Unix time in whole seconds when the attempt was made; ``v1`` is the lower-case hex
HMAC-SHA256, keyed with the hook's secret (its UTF-8 bytes), of the ASCII bytes of ``t``, one ``.``, then
the request body exactly as received. A receiver recomputes it, compares in constant time, and refuses a
``t`` more than a few minutes from its own clock (:data:`TOLERANCE_S`); it drops an event ``id`` it has
seen (a retry after a lost answer carries the same id, a fresh ``t`` and so a fresh signature).
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Bgpctl-Signature"
TOLERANCE_S = 300
"""How far ``t`` may be from the receiver's clock (the default of :func:`verify`)."""


def digest(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The header's value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    return f"t={timestamp},v1={digest(secret, timestamp, body)}"


class BadSignature(ValueError):
    """Why a request's signature is refused (a receiver answers 401 with it)."""


def verify(secret: bytes, body: bytes, header: str | None, *, now: float, tolerance_s: float = TOLERANCE_S) -> int:
    """Check a received header against the body; return its timestamp, or raise :class:`BadSignature`."""
    if not header:
        raise BadSignature(f"no {HEADER} header")
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise BadSignature(f"{HEADER}: {part.strip()!r} is not key=value")
        fields.setdefault(key, []).append(value)
    stamps = fields.get("t", [])
    if len(stamps) != 1 or not stamps[0].isascii() or not stamps[0].isdigit():
        raise BadSignature(f"{HEADER}: needs exactly one t=UNIX_SECONDS")
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance_s:
        raise BadSignature(f"{HEADER}: t={timestamp} is {now - timestamp:+.0f} s from now (replay or clock skew)")
    want = digest(secret, timestamp, body)
    if not any(hmac.compare_digest(want, v) for v in fields.get("v1", [])):
        raise BadSignature(f"{HEADER}: no v1 matches the body")
    return timestamp
