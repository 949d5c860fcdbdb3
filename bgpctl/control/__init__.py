"""The daemon's control API: a Unix socket in the run directory, one JSON request per line.

* :mod:`bgpctl.control.protocol`: the wire format (versioned envelopes, limits, error codes) and the verbs'
  arguments, shared by the server and the client; pure.
* :mod:`bgpctl.control.state`: the snapshot of the daemon's state the loop keeps, and the pure builders of
  the ``status`` and ``routes`` answers.
* :mod:`bgpctl.control.server`: the asyncio server in the daemon's loop (peer credentials, limits, timeouts,
  the dispatcher and its hook for verbs that change state).
* :mod:`bgpctl.control.client`: the blocking client the CLI uses; :mod:`bgpctl.control.render` its text.

The protocol is documented in docs/control.md.
"""
