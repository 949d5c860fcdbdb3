"""Create sockets inside a named network namespace without moving the whole process there.

``with entered("cr"): sock = socket.socket(...)`` switches the calling thread into the namespace, and
back on exit. A socket keeps the namespace it was created in, so the probe loop itself runs in the
caller's namespace. Unlike ``pyroute2.netns.pushns``, a missing namespace is an error, never created.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

from bgpctl.errors import ProbeError

CLONE_NEWNET = 0x40000000
NETNS_RUN_DIR = "/run/netns"


_libc = ctypes.CDLL(None, use_errno=True)  # the C library already loaded into this process


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise ProbeError(
            f"setns failed: {os.strerror(err)} (bgpctl needs root, or CAP_SYS_ADMIN, "
            f"to open sockets in another network namespace)"
        )


@contextmanager
def entered(netns: str | None) -> Iterator[None]:
    """Run the body in network namespace ``netns`` (a name under /run/netns); ``None`` = stay here."""
    if netns is None:
        yield
        return
    path = os.path.join(NETNS_RUN_DIR, netns)
    try:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ProbeError(
            f"network namespace '{netns}' does not exist ({path}): check the name with 'ip netns list'"
        ) from None
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(saved)
    finally:
        os.close(target)
        os.close(saved)
