"""Active probing of every path: ICMP echo, STAMP over UDP (RFC 8762), TCP connect time.

Map of the package:

* :mod:`~bgpctl.probe.protocol` -- the ``Probe`` protocol every kind implements, ``ProbeResult``, the
  ``Problem`` names under which odd replies are counted;
* :mod:`~bgpctl.probe.stamp` -- STAMP packets (pure); :mod:`~bgpctl.probe.udp`, :mod:`~bgpctl.probe.icmp`,
  :mod:`~bgpctl.probe.tcp` -- the three kinds; :mod:`~bgpctl.probe.reflector` -- ``bgpctl reflector``;
* :mod:`~bgpctl.probe.txstamp` -- the kernel's transmit timestamps (pure parsing and pairing), the send
  times of the datagram probes (:mod:`~bgpctl.probe.datagram`);
* :mod:`~bgpctl.probe.scheduler` -- the per-path loop (deadlines, sequence numbers, timeouts, settled
  samples in order); :mod:`~bgpctl.probe.paths` -- from the policy to running probes;
* :mod:`~bgpctl.probe.pinning` -- policy routing that keeps each path's probes on its TGW;
* :mod:`~bgpctl.probe.recorder` -- JSONL recordings for ``bgpctl replay``; :mod:`~bgpctl.probe.summary`
  -- the mtr-like report of ``bgpctl probe``.

Clock: samples carry CLOCK_REALTIME seconds (kernel receive and transmit timestamps are on that clock); pass
``time.time()`` as ``now`` to :meth:`bgpctl.core.stats.PathWindow.stats` for live samples.
"""
