"""``ADDR:PORT`` of a listening socket (``--metrics``): stdlib only, so a bad value is refused before the
daemon's modules are imported."""

from __future__ import annotations

import ipaddress
import re


def parse_listen(value: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[v6]:PORT`` for IPv6; an empty ADDR is 127.0.0.1) -> (host, port); ValueError
    saying what to write otherwise."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: write ADDR:PORT with a port 1-65535, e.g. 127.0.0.1:9477")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"{value!r}: close the IPv6 address's bracket, e.g. [::1]:9477")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r}: {host!r} in brackets is not an IPv6 address, e.g. [::1]:9477") from None
    elif ":" in host:
        raise ValueError(f"{value!r}: put an IPv6 address in brackets, e.g. [::1]:9477")
    if not re.fullmatch(r"[A-Za-z0-9.:_-]*", host):
        raise ValueError(f"{value!r}: {host!r} is not an address or host name, e.g. 127.0.0.1:9477")
    return host or "127.0.0.1", int(port)
