"""Outside signals (docs/signals.md): what a flag file or an HTTP(S) JSON source says of a region or path.

* :mod:`bgpctl.signals.document`: pure. The document shape, its parser (every refusal one
  :class:`~bgpctl.signals.document.SignalError` with a reason code and a message), and the verdict on a
  reading at a given time (fresh, stale, error: only a fresh reading's marks count).
* :mod:`bgpctl.signals.sources`: the I/O. A flag file read off the event loop, an HTTP(S) document
  fetched with httpx under one overall timeout and a size cap, never following redirects.
* :mod:`bgpctl.signals.feed`: the daemon's side. One polling task per signal keeps its latest reading;
  the evaluation loop turns readings into verdicts, tells the controller
  (:meth:`~bgpctl.core.controller.Controller.signal`), logs, counts and shows them in ``status``.

The decision itself is decide()'s rule 0b (:mod:`bgpctl.core.decide`): a mark makes a path as bad as it
says, never better, and plan()'s fail-static keeps the routes when no region is left.
"""
