"""What an MD5 password may hold: the one rule the policy check and the speaker's renderer both apply.

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
