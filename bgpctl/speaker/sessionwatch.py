"""Sessions that do not come up, and peers that send too much: the pure bookkeeping. No I/O, clock passed in.

A wrong TCP-MD5 key is silent: the peer's kernel drops our SYNs (and ours drops its), so neither side
ever sees a BGP message; ExaBGP reports nothing. A GTSM/TTL mismatch gets as far as TCP (``connected``)
and then the OPEN or its KEEPALIVE is dropped. So the only sign of either is time: a peer whose session
has not been ``up`` for :data:`NOT_ESTABLISHED_HOLD_TIMES` of its hold times since the episode began (the
speaker connected to ExaBGP, or the session went down from up; attempts that fail meanwhile, e.g. a GTSM
mismatch's hold-timer expiry every ~10 s, do not start it over) is reported, with the causes that fit what was
seen (TCP connected or not), and again every further :data:`NOT_ESTABLISHED_HOLD_TIMES` hold times.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

NOT_ESTABLISHED_HOLD_TIMES = 2
"""A session not up within this many hold times (18 s with the lab's 9 s) is reported at warning level."""

CAUSES_NO_TCP = (
    "no TCP connection came up: a wrong or missing TCP-MD5 key on either side (the kernel drops the "
    "SYNs silently, so nothing else reports it), the peer unreachable or not listening on TCP 179, a "
    "firewall, or the peer not configured for our address"
)
CAUSES_TCP_ONLY = (
    "TCP connected but the session never came up: a GTSM/TTL mismatch (one side drops packets with "
    "TTL < 255: check ttl_security against the peer's ttl-security), an OPEN refused (see bgp.notification: "
    "peer_as, families, hold time), or the peer closing the connection"
)


@dataclass(slots=True)
class _Episode:
    since: float
    tcp_connected: bool = False
    reported: int = 0


@dataclass(frozen=True, slots=True)
class NotEstablished:
    peer: str
    waited_s: float
    tcp_connected: bool
    report: int  # 1 for the first report of this episode, 2 for the next, ...

    @property
    def likely_causes(self) -> str:
        return CAUSES_TCP_ONLY if self.tcp_connected else CAUSES_NO_TCP


class SessionWatch:
    """Per peer: since when its session is not up, and whether TCP got connected meanwhile."""

    def __init__(self, hold_times: Mapping[str, int], *, hold_times_allowed: int = NOT_ESTABLISHED_HOLD_TIMES) -> None:
        self._limit = {peer: hold * hold_times_allowed for peer, hold in hold_times.items()}
        self._episodes: dict[str, _Episode] = {}

    def restart(self, now: float) -> None:
        """Every session starts over (a new ExaBGP, or a new connection to it)."""
        self._episodes = {peer: _Episode(now) for peer in self._limit}

    def state(self, peer: str, state: str, now: float) -> None:
        """A ``neighbor-changes`` state of ``peer``: connected, up or down."""
        if peer not in self._limit:
            return
        if state == "up":
            self._episodes.pop(peer, None)
        elif state == "down":  # a session that was up starts an episode; one that never came up goes on
            self._episodes.setdefault(peer, _Episode(now))
        elif state == "connected":
            self._episodes.setdefault(peer, _Episode(now)).tcp_connected = True

    def due(self, now: float) -> list[NotEstablished]:
        """The reports that fell due by ``now`` (each episode reported once per limit that passed)."""
        out: list[NotEstablished] = []
        for peer, ep in sorted(self._episodes.items()):
            waited = now - ep.since
            if waited >= self._limit[peer] * (ep.reported + 1):
                ep.reported += 1
                out.append(NotEstablished(peer, round(waited, 3), ep.tcp_connected, ep.reported))
        return out

    def waiting(self) -> Iterable[str]:
        return sorted(self._episodes)


# ------------------------------------------------------------------------------------------ unanswered SYNs

SYN_UNANSWERED_S = 3.0
"""A connection attempt to a peer still in SYN-SENT after this long (the SYN and two retransmissions, at 0,
1 and 3 s, unanswered: not even a reset) is reported. This is how a wrong TCP-MD5 key shows on our side."""

CAUSES_SYN_UNANSWERED = (
    "our TCP SYNs to the peer get no answer at all, not even a reset: a wrong or missing TCP-MD5 key at the "
    "peer (its kernel drops SYNs whose signature does not match, silently), a firewall dropping TCP 179, or "
    "the peer down"
)
CAUSES_UNACKNOWLEDGED = (
    "TCP is connected but the peer acknowledges nothing we send (our OPEN is retransmitted): a GTSM/TTL "
    "mismatch (the peer drops our packets with TTL < 255: set ttl_security as the peer expects), or a "
    "firewall dropping one direction"
)
_ESTABLISHED, _SYN_SENT = "01", "02"  # include/net/tcp_states.h


def _proc_address(field: str) -> tuple[str, int]:
    """``0B0112C6:00B3`` (the kernel's in-memory words, printed as native integers) -> ("198.18.1.11", 179)."""
    address, _, port = field.partition(":")
    words = [int(address[i : i + 8], 16) for i in range(0, len(address), 8)]
    raw = struct.pack(f"={len(words)}I", *words)
    return str(ipaddress.ip_address(raw)), int(port, 16)


def _remotes(proc_net_tcp: str, port: int, wanted: Callable[[list[str]], bool]) -> set[str]:
    out: set[str] = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 5 or not wanted(fields):
            continue
        try:
            address, remote_port = _proc_address(fields[2])
        except (ValueError, struct.error):
            continue
        if remote_port == port:
            out.add(address)
    return out


def syn_sent_to(proc_net_tcp: str, port: int = 179) -> set[str]:
    """The remote addresses of the sockets in SYN-SENT towards ``port`` in a ``/proc/net/tcp`` or
    ``/proc/net/tcp6`` text (this network namespace's)."""
    return _remotes(proc_net_tcp, port, lambda f: f[3] == _SYN_SENT)


def _tx_queue(field: str) -> int:
    try:
        return int(field.partition(":")[0], 16)
    except ValueError:
        return 0


def unacknowledged_to(proc_net_tcp: str, port: int = 179) -> set[str]:
    """The remote addresses of the established sockets towards ``port`` with data not yet acknowledged
    (``tx_queue`` > 0)."""
    return _remotes(proc_net_tcp, port, lambda f: f[3] == _ESTABLISHED and _tx_queue(f[4]) > 0)


@dataclass(frozen=True, slots=True)
class SynUnanswered:
    peer: str
    unanswered_s: float


@dataclass(slots=True)
class SynWatch:
    """Per peer address: since when a connection attempt to it has been in SYN-SENT, seen at every look."""

    peers: Mapping[str, str]  # address (as ipaddress prints it) -> peer name
    threshold_s: float = SYN_UNANSWERED_S
    _since: dict[str, float] = field(default_factory=dict)
    _reported: set[str] = field(default_factory=set)

    def up(self, peer: str) -> None:
        self._reported.discard(peer)

    def seen(self, syn_sent: set[str], now: float) -> list[SynUnanswered]:
        waiting = {self.peers[a] for a in syn_sent if a in self.peers}
        self._since = {p: self._since.get(p, now) for p in waiting}
        due = [
            SynUnanswered(p, round(now - t, 3))
            for p, t in sorted(self._since.items())
            if now - t >= self.threshold_s and p not in self._reported
        ]
        self._reported.update(d.peer for d in due)
        return due
