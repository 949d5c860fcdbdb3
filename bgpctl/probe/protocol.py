"""What every probe kind (ICMP echo, STAMP over UDP, TCP connect) offers the scheduler.

A probe owns one socket pinned to one path (bound to the path's probe source address). The scheduler
owns time and sequence numbers: it calls :meth:`Probe.send` at each deadline, and the probe reports each
reply that passed its checks through ``on_result``, and each reply it threw away through ``on_bad``.
Sequence-level checks (unknown, duplicate, late, reordered) are the scheduler's, because it alone knows
which probes are outstanding.

Clock: ``sent`` and ``received`` are CLOCK_REALTIME seconds (see :mod:`bgpctl.probe.sockopt`).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bgpctl.policy.model import ProbeProtocol


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One reply that passed the probe's checks: the sequence number it answers and when it arrived, and
    the kernel's transmit time of the probe if it came after :meth:`Probe.send` returned (it replaces
    the send time that call returned)."""

    seq: int
    received: float
    sent: float | None = None


class Problem(enum.StrEnum):
    """Why a reply was not used, or what was odd about it. Each is counted per path."""

    TRUNCATED = "truncated"  # shorter than the smallest valid reply
    WRONG_SIZE = "wrong_size"  # not the size that was sent (STAMP and ICMP echo keep the size)
    WRONG_SOURCE = "wrong_source"  # not from the target address/port (spoofed, or another session's)
    MALFORMED = "malformed"  # bad checksum, wrong type, fields that contradict what was sent
    UNKNOWN_SEQ = "unknown_seq"  # a sequence number never sent, or older than the scheduler remembers
    DUPLICATE = "duplicate"  # a second reply for an answered probe (ignored)
    LATE = "late"  # a reply after the timeout: the probe already counts as lost
    REORDERED = "reordered"  # answered, but after a later probe's answer (used, only counted)
    REFUSED = "refused"  # TCP: connection refused or failed (the probe counts as lost)
    SEND_FAILED = "send_failed"  # the kernel refused to send (no route, ...): the probe counts as lost
    SKIPPED = "skipped"  # a send slot missed because the loop ran more than one interval late
    USER_TX_STAMP = "user_tx_stamp"  # answered, but the kernel gave no transmit stamp: the user-space send
    # time was used, scheduling delay included (used, only counted; datagram probes only)


ResultCallback = Callable[[ProbeResult], None]
BadCallback = Callable[[Problem], None]


class Probe(Protocol):
    """One pinned probe socket of one kind."""

    kind: ProbeProtocol

    def open(self, on_result: ResultCallback, on_bad: BadCallback, *, watch: bool = True) -> None:
        """Create and bind the socket (needs a running asyncio loop). With ``watch`` the event loop reads
        replies as they arrive; without it, replies wait in the socket until :meth:`poll`."""

    def send(self, seq: int) -> float:
        """Send probe ``seq`` now; return the send time (the kernel's transmit time where it is known
        already). Raises OSError if the kernel refused."""

    def poll(self) -> None:
        """Read every reply waiting in the socket now (receive times are the kernel's, so reading late
        costs no accuracy)."""

    def close(self) -> None:
        """Stop listening and close the socket. Idempotent."""


class Counters(Counter[str]):
    """Per-path counts: "sent", "answered", "lost", plus one entry per :class:`Problem` seen."""

    def count(self, problem: Problem | str, n: int = 1) -> None:
        self[str(problem)] += n
