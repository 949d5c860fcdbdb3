"""Why a BGP session failed, in words: NOTIFICATION codes and subcodes, ExaBGP's down reasons. Pure: no I/O.

The tables follow RFC 4271 section 4.5 and 6 (codes 1-6 and their subcodes), RFC 5492 (Unsupported
Capability), RFC 6608 (FSM Error subcodes), RFC 7313 (ROUTE-REFRESH Message Error), RFC 4486 (Cease
subcodes), RFC 8538 (Hard Reset), RFC 9384 (BFD Down) and RFC 8203 / RFC 9003 (the shutdown
communication of Administrative Shutdown and Administrative Reset, which ExaBGP decodes into its
``message`` as ``Shutdown Communication: "TEXT"``).

ExaBGP 5 reports a received NOTIFICATION as its own JSON event; a NOTIFICATION it *sends* (its hold
timer expired, it refused the peer's OPEN) only shows as the reason of the ``down`` state event that
follows: ``notification sent (4,0)``. :func:`from_down_reason` reads that reason.

Every decoded failure has a ``reason``: a short snake_case word for metric labels, taken from the tables
(so the label set stays bounded: an unknown subcode gives ``<code word>_subcode_other``, an unknown code
``unknown_code``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

# code -> (reason word, description)
CODES: Final[dict[int, tuple[str, str]]] = {
    1: ("message_header_error", "Message Header Error"),
    2: ("open_message_error", "OPEN Message Error"),
    3: ("update_message_error", "UPDATE Message Error"),
    4: ("hold_timer_expired", "Hold Timer Expired"),
    5: ("fsm_error", "Finite State Machine Error"),
    6: ("cease", "Cease"),
    7: ("route_refresh_message_error", "ROUTE-REFRESH Message Error"),
}

# (code, subcode) -> (reason word, description)
SUBCODES: Final[dict[tuple[int, int], tuple[str, str]]] = {
    (1, 1): ("connection_not_synchronized", "Connection Not Synchronized"),
    (1, 2): ("bad_message_length", "Bad Message Length"),
    (1, 3): ("bad_message_type", "Bad Message Type"),
    (2, 1): ("unsupported_version_number", "Unsupported Version Number"),
    (2, 2): ("bad_peer_as", "Bad Peer AS"),
    (2, 3): ("bad_bgp_identifier", "Bad BGP Identifier"),
    (2, 4): ("unsupported_optional_parameter", "Unsupported Optional Parameter"),
    (2, 5): ("authentication_failure", "Authentication Failure (deprecated)"),
    (2, 6): ("unacceptable_hold_time", "Unacceptable Hold Time"),
    (2, 7): ("unsupported_capability", "Unsupported Capability"),
    (2, 11): ("role_mismatch", "Role Mismatch"),
    (3, 1): ("malformed_attribute_list", "Malformed Attribute List"),
    (3, 2): ("unrecognized_well_known_attribute", "Unrecognized Well-known Attribute"),
    (3, 3): ("missing_well_known_attribute", "Missing Well-known Attribute"),
    (3, 4): ("attribute_flags_error", "Attribute Flags Error"),
    (3, 5): ("attribute_length_error", "Attribute Length Error"),
    (3, 6): ("invalid_origin_attribute", "Invalid ORIGIN Attribute"),
    (3, 7): ("as_routing_loop", "AS Routing Loop (deprecated)"),
    (3, 8): ("invalid_next_hop_attribute", "Invalid NEXT_HOP Attribute"),
    (3, 9): ("optional_attribute_error", "Optional Attribute Error"),
    (3, 10): ("invalid_network_field", "Invalid Network Field"),
    (3, 11): ("malformed_as_path", "Malformed AS_PATH"),
    (5, 1): ("unexpected_message_in_opensent", "Receive Unexpected Message in OpenSent State"),
    (5, 2): ("unexpected_message_in_openconfirm", "Receive Unexpected Message in OpenConfirm State"),
    (5, 3): ("unexpected_message_in_established", "Receive Unexpected Message in Established State"),
    (6, 1): ("maximum_prefixes_reached", "Maximum Number of Prefixes Reached"),
    (6, 2): ("administrative_shutdown", "Administrative Shutdown"),
    (6, 3): ("peer_deconfigured", "Peer De-configured"),
    (6, 4): ("administrative_reset", "Administrative Reset"),
    (6, 5): ("connection_rejected", "Connection Rejected"),
    (6, 6): ("other_configuration_change", "Other Configuration Change"),
    (6, 7): ("connection_collision_resolution", "Connection Collision Resolution"),
    (6, 8): ("out_of_resources", "Out of Resources"),
    (6, 9): ("hard_reset", "Hard Reset"),
    (6, 10): ("bfd_down", "BFD Down"),
    (7, 1): ("invalid_message_length", "Invalid Message Length"),
}

# what to check, per code (and per (code, subcode) where it says more); the fallback is per code
HINTS: Final[dict[int | tuple[int, int], str]] = {
    1: "a framing problem on the session: check for a middlebox rewriting TCP, and both speakers' versions",
    2: "the peer refused our OPEN (or we refused its): check peer_as, families, add_path and hold time "
    "against its configuration",
    (2, 2): "the peer refused our OPEN (or we refused its): the AS numbers do not match: check peer_as in the "
    "policy against the peer's local AS, and the peer's remote-as for us (speaker.local_as)",
    (2, 6): "the peer refused our OPEN (or we refused its): the hold times cannot be agreed: check "
    "timers.hold_time (>= 3 s) against the peer's minimum",
    3: "an UPDATE was malformed: compare both speakers' versions and the attributes sent",
    4: "no KEEPALIVE or UPDATE within the hold time: the path between the speakers loses packets, or one "
    "side is overloaded; a GTSM/TTL mismatch also ends this way (the peer drops our packets)",
    5: "a message arrived in a state that does not allow it: usually a bug or a reset race on one side",
    6: "the peer closed the session on purpose (see the subcode)",
    (6, 1): "the peer's maximum-prefix limit for us was reached: check what we announce to it",
    (6, 2): "the peer was shut down administratively (see shutdown_message)",
    (6, 4): "the session was reset administratively (see shutdown_message)",
    (6, 5): "the peer refused the connection: check that it has us configured as a neighbour",
    7: "a ROUTE-REFRESH was malformed",
}

_SHUTDOWN = re.compile(r'Shutdown Communication: "(?P<text>.*)"(?:, trailing data: .*)?', re.DOTALL)
_DOWN = re.compile(r"notification (?P<direction>sent|received) \((?P<code>\d{1,3}),(?P<subcode>\d{1,3})\)")


@dataclass(frozen=True, slots=True)
class Decoded:
    """One NOTIFICATION, decoded."""

    code: int
    subcode: int
    reason: str  # snake_case, bounded vocabulary (metric label)
    description: str  # "Cease / Administrative Shutdown"
    hint: str
    shutdown_message: str | None = None  # RFC 8203 text, for Administrative Shutdown / Reset


def decode(code: int, subcode: int, message: str = "") -> Decoded:
    """Words for ``(code, subcode)``; ``message`` is ExaBGP's text of the data (the shutdown text is taken
    from it for Cease subcodes 2 and 4)."""
    code_word, code_text = CODES.get(code, ("unknown_code", f"Unknown error code {code}"))
    if code == 4 or (code in CODES and subcode == 0 and (code, subcode) not in SUBCODES):
        reason, text = code_word, code_text  # RFC 4271: subcode 0 = unspecific
    elif (code, subcode) in SUBCODES:
        word, sub_text = SUBCODES[(code, subcode)]
        reason, text = f"{code_word}_{word}" if code != 6 else word, f"{code_text} / {sub_text}"
    elif code in CODES:
        reason, text = f"{code_word}_subcode_other", f"{code_text} / unknown subcode {subcode}"
    else:
        reason, text = code_word, f"{code_text} (subcode {subcode})"
    hint = HINTS.get((code, subcode)) or HINTS.get(code) or "see the peer's log for why it sent this"
    shutdown = None
    if (code, subcode) in ((6, 2), (6, 4)):
        m = _SHUTDOWN.fullmatch(message.strip())
        if m is not None:
            shutdown = m.group("text")
    return Decoded(code, subcode, reason, text, hint, shutdown)


@dataclass(frozen=True, slots=True)
class DownNotification:
    direction: str  # "send" or "receive", as the NOTIFICATION events say it
    code: int
    subcode: int


def from_down_reason(reason: str) -> DownNotification | None:
    """``notification sent (4,0)`` / ``notification received (6,2)`` (ExaBGP's down reasons) -> what was
    sent or received; None for any other reason."""
    m = _DOWN.fullmatch(reason.strip())
    if m is None:
        return None
    direction = "send" if m.group("direction") == "sent" else "receive"
    return DownNotification(direction, int(m.group("code")), int(m.group("subcode")))
