"""The ExaBGP speaker: the only part of bgpctl that talks to ExaBGP (see speaker.py for the API)."""

from bgpctl.speaker.messages import SessionState
from bgpctl.speaker.speaker import RouteSpeaker, Speaker, SyncResult

__all__ = ["RouteSpeaker", "SessionState", "Speaker", "SyncResult"]
