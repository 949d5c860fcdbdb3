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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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
