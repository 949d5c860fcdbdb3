"""The webhook signature: what a receiver checks (docs/hooks.md)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bgpctl.hooks.signature import BadSignature, sign, verify

KEY = b"k3y-for-tests"
BODY = b'{"id":"x","type":"region.lost"}'


def test_the_header_is_t_and_the_hex_hmac_of_t_dot_body() -> None:
    header = sign(KEY, BODY, 1_780_000_000)
    want = hmac.new(KEY, b"1780000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1780000000,v1={want}"
    assert verify(KEY, BODY, header, now=1_780_000_010) == 1_780_000_000


@pytest.mark.parametrize(
    ("body", "header", "now", "why"),
    [
        (BODY + b" ", sign(KEY, BODY, 100), 100, "no v1 matches"),
        (BODY, sign(b"other", BODY, 100), 100, "no v1 matches"),
        (BODY, sign(KEY, BODY, 100), 100 + 301, "replay or clock skew"),
        (BODY, sign(KEY, BODY, 100).replace("t=100", "t=101"), 101, "no v1 matches"),
        (BODY, None, 100, "no X-Bgpctl-Signature"),
        (BODY, "v1=abc", 100, "exactly one t="),
        (BODY, "t=1,t=2,v1=abc", 1, "exactly one t="),
        (BODY, "garbage", 100, "not key=value"),
    ],
)
def test_a_changed_body_key_time_or_header_is_refused(body: bytes, header: str | None, now: int, why: str) -> None:
    with pytest.raises(BadSignature, match=why):
        verify(KEY, body, header, now=now)
