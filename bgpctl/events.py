"""Every event name bgpctl writes: structlog events (the daemon's log) and the JSON lines of helper commands.

Emitters and the tests that look for an event both use these constants, so an event is renamed in one
place. Names are ``component.what``; the fields of the main ones are in docs/design.md ("Events").
"""

from __future__ import annotations

from typing import Final

# --- decisions (bgpctl.daemon.sinks): one event per health change, route change, deferral and new note
PATH_HEALTH: Final = "path.health"
ROUTE_CHANGE: Final = "route.change"
ROUTE_DEFERRED: Final = "route.deferred"
PLAN_NOTE: Final = "plan.note"

# --- the daemon's lifecycle and its feed of the speaker (bgpctl.daemon.run)
DAEMON_START: Final = "daemon.start"
DAEMON_STOP: Final = "daemon.stop"
DAEMON_RIB_COMPLETE: Final = "daemon.rib_complete"
DAEMON_STALE_PINS: Final = "daemon.stale_pins"  # probe policy routing left by a killed daemon, swept at start
DAEMON_PINS_REPAIRED: Final = "daemon.pins_repaired"  # a pin lost its route or rule (link down): installed again
DAEMON_SIGNAL: Final = "daemon.signal"
SPEAKER_REFUSED: Final = "speaker.refused"
SPEAKER_SYNCED: Final = "speaker.synced"

# --- the control socket (bgpctl.control.server)
CONTROL_LISTENING: Final = "control.listening"
CONTROL_REQUEST: Final = "control.request"  # a read-only request (debug level)
CONTROL_CHANGE: Final = "control.change"  # a request that changes state: who (pid, uid, gid), verb, args, reason
CONTROL_REFUSED: Final = "control.refused"  # a request answered with an error
CONTROL_FAILED: Final = "control.failed"  # a handler failed (a bug): answered "internal", daemon keeps running

# --- runtime overrides (bgpctl.control.service.OverrideDesk): kind, target, by, since, expires, reason
OVERRIDE_SET: Final = "override.set"
OVERRIDE_REMOVED: Final = "override.removed"  # undrain / unpin / thaw
OVERRIDE_EXPIRED: Final = "override.expired"  # its --for ran out; the step that noticed planned again
OVERRIDE_LOADED: Final = "override.loaded"  # read from the run directory at start
OVERRIDE_SAVE_FAILED: Final = "override.save_failed"  # the file could not be written (an expiry: kept in memory)

# --- policy reload (bgpctl.control.reload.PolicyDesk): result applied|unchanged|refused, file, sha256, by, why
POLICY_RELOAD: Final = "policy.reload"

# --- the speaker (bgpctl.speaker.speaker)
SPEAKER_START: Final = "speaker.start"
SPEAKER_STOPPED: Final = "speaker.stopped"
SPEAKER_RIB_REFUSED: Final = "speaker.rib_refused"
SPEAKER_WITHDRAWN: Final = "speaker.withdrawn"
SPEAKER_WITHDRAW_UNCONFIRMED: Final = "speaker.withdraw_unconfirmed"
SPEAKER_RESYNCED: Final = "speaker.resynced"
SPEAKER_RECONCILED: Final = "speaker.reconciled"
SPEAKER_RECONCILE_FAILED: Final = "speaker.reconcile_failed"
RELAY_REFUSED: Final = "relay.refused"
BGP_SESSION: Final = "bgp.session"
BGP_NOTIFICATION: Final = "bgp.notification"  # sent or received, decoded (bgpctl.speaker.notification)
BGP_SESSION_NOT_ESTABLISHED: Final = "bgp.session_not_established"  # not up within N hold times (sessionwatch)
BGP_SYN_UNANSWERED: Final = "bgp.syn_unanswered"  # our SYNs to a peer unanswered: MD5, firewall, peer down
BGP_PACKETS_UNACKNOWLEDGED: Final = "bgp.packets_unacknowledged"  # connected, but the peer acks nothing: GTSM/TTL
BGP_MAX_PREFIXES: Final = "bgp.max_prefixes"  # a peer sent more than its max_prefixes.limit
BGP_EOR: Final = "bgp.eor"
BGP_CAPABILITIES: Final = "bgp.capabilities"  # what a session negotiated (warning: ADD-PATH asked, not accepted)
PATH_SESSION: Final = "path.session"  # the controller's view of a TGW session changed (decide's rule 0)
SIGNAL_STATE: Final = "signal.state"  # what an outside signal counts as changed: fresh (with its marks), stale, error
SIGNAL_IGNORED: Final = "signal.ignored"  # warning: a stale or broken signal is ignored (rate-limited while it lasts)
PLAN_CAPABILITIES: Final = "plan.capabilities"  # the daemon re-plans for a peer's new ADD-PATH state
EXABGP_CONNECTED: Final = "exabgp.connected"
EXABGP_DISCONNECTED: Final = "exabgp.disconnected"
EXABGP_READ_FAILED: Final = "exabgp.read_failed"
EXABGP_UNEXPECTED_ACK: Final = "exabgp.unexpected_ack"
EXABGP_SHUTTING_DOWN: Final = "exabgp.shutting_down"
EXABGP_EVENT: Final = "exabgp.event"
EXABGP_UNPARSABLE_LINE: Final = "exabgp.unparsable_line"
EXABGP_UNKNOWN_PEER: Final = "exabgp.unknown_peer"
EXABGP_COMMAND: Final = "exabgp.command"
EXABGP_COMMAND_ERROR: Final = "exabgp.command_error"
EXABGP_ACK_TIMEOUT: Final = "exabgp.ack_timeout"

# --- the ExaBGP child process (bgpctl.speaker.supervisor)
EXABGP_OUTPUT: Final = "exabgp.output"
EXABGP_SPAWN_FAILED: Final = "exabgp.spawn_failed"
EXABGP_STARTED: Final = "exabgp.started"
EXABGP_STOPPED: Final = "exabgp.stopped"
EXABGP_EXITED: Final = "exabgp.exited"
EXABGP_KILL: Final = "exabgp.kill"

# --- hooks (bgpctl.hooks): the event types a hook subscribes to (docs/hooks.md). route.change,
# override.set, override.expired and policy.reload above are hook event types too, named as their log events.
PATH_STATE: Final = "path.state"  # a path's health changed (decide's transition)
REGION_LOST: Final = "region.lost"  # no path of a region is preferred or standby for any service any more
REGION_REGAINED: Final = "region.regained"  # a lost region has a preferred or standby path again

HOOK_EVENT_TYPES: Final = (
    PATH_STATE,
    ROUTE_CHANGE,
    REGION_LOST,
    REGION_REGAINED,
    OVERRIDE_SET,
    OVERRIDE_EXPIRED,
    POLICY_RELOAD,
)
"""Every event type a hook can subscribe to, in the order docs/hooks.md lists them."""

# --- hook deliveries (bgpctl.hooks.sink): the daemon's log lines about its hooks
HOOK_STARTED: Final = "hook.started"  # the hook's worker runs: kind, events, queue size
HOOK_DELIVERED: Final = "hook.delivered"  # one event delivered (debug level): attempts, ms
HOOK_FAILED: Final = "hook.failed"  # one event not delivered after its attempts: why
HOOK_DROPPED: Final = "hook.dropped"  # the hook's queue was full: events dropped (rate-limited line)
HOOK_ABANDONED: Final = "hook.abandoned"  # events still queued when the shutdown's flush ran out

# --- JSON lines printed by helper commands (``{"event": ...}`` on stdout)
REFLECTOR_READY: Final = "reflector.ready"
REFLECTOR_STOPPED: Final = "reflector.stopped"
RESPONDER_READY: Final = "responder.ready"
RESPONDER_SUMMARY: Final = "responder.summary"
RECEIVER_READY: Final = "receiver.ready"  # bgpctl_lab.hook_receiver: the lab's webhook receiver listens
RELAY_READY: Final = "relay.ready"  # bgpctl_lab.signal_relay: the lab's relay of health events serves
