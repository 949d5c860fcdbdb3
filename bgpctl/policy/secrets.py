"""Secrets named by the policy (``{file: PATH}`` or ``{env: VARIABLE}``): how they are read, and what an MD5
password may hold (the one rule the policy check and the speaker's renderer both apply).

:func:`read_secret` is the one reader: a variable's value, or a file's text without its final line break.
The MD5 passwords of the peers and the webhooks' HMAC keys are both read with it, at the daemon's start.

bgpctl writes the password into ExaBGP's configuration as ``md5-password "SECRET";``. ExaBGP 5's
tokeniser (exabgp/configuration/core/format.py, ``unescape`` and ``tokens``) first turns every backslash
sequence of the line into the character it escapes, then reads a double-quoted word up to the next
double quote, and a single quote inside it switches the quoting: a quote, an apostrophe or a backslash
changes or breaks the password. A line break ends the statement; the reactor then encodes the password
as ASCII (exabgp/reactor/network/tcp.py), so a non-ASCII one fails at connect. Linux takes at most 80
bytes (TCP_MD5SIG_MAXKEYLEN). Whitespace, control characters, ``;``, ``{`` and ``}`` are refused too:
ExaBGP would carry them inside the quotes, but each is a likely copy-paste accident, and none can break
the configuration line if a future renderer forgets the quotes. What is left: printable ASCII without
space, ``"``, ``'``, ``\\``, ``;``, ``{`` and ``}``.

Messages never contain the password, nor a part of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bgpctl.errors import BgpctlError

if TYPE_CHECKING:
    from bgpctl.policy.model import SecretRef

MD5_MAX = 80
"""Linux TCP-MD5: TCP_MD5SIG_MAXKEYLEN."""

_ALLOWED = re.compile(r"[!#-&(-:<-\[\]-z|~]+")
"""Printable ASCII 0x21-0x7E without " ' ; \\ { }."""

REFUSED_TEXT = "a quote, apostrophe, backslash, whitespace, ';', '{', '}', a control or a non-ASCII character"


def md5_password_problem(secret: str) -> str | None:
    """Why ``secret`` cannot be an MD5 password, or None. Never quotes the secret."""
    if not secret:
        return "is empty"
    if len(secret) > MD5_MAX:
        return f"is {len(secret)} characters long, at most {MD5_MAX} (Linux TCP-MD5)"
    if not _ALLOWED.fullmatch(secret):
        return f"holds {REFUSED_TEXT}, which ExaBGP's configuration cannot carry"
    return None


class SecretError(BgpctlError):
    """A secret the policy names cannot be read. The message names the source, never the value."""


def read_secret(ref: SecretRef, environ: Mapping[str, str], *, what: str, field: str) -> str:
    """The secret ``ref`` names: ``what`` ("the MD5 password") and ``field`` (its policy field, e.g.
    "md5_password" or "hooks.noc.secret") only shape the message of a :class:`SecretError`."""
    if ref.env is not None:
        value = environ.get(ref.env)
        if value is None:
            raise SecretError(
                f"environment variable {ref.env} (named by {field}) is not set: export it before starting bgpctl"
            )
        return value
    assert ref.file is not None  # SecretRef guarantees exactly one
    try:
        text = Path(ref.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise SecretError(
            f"cannot read {what} file {ref.file}: {why}; create it (mode 0600) or fix {field}.file"
        ) from e
    return text.rstrip("\r\n")
