"""Voice quality (MOS) estimated from network measurements with the ITU-T G.107 E-model.

The E-model (ITU-T G.107) rates a call with a transmission rating factor R (0..100) that sums
impairments, and maps R to an estimated mean opinion score (MOS, 1..4.5). bgpctl uses the
*planning* simplification of it that is common in VoIP monitoring, with the default values of
G.107 for everything a network probe cannot see (loudness ratings, room noise, echo):

    R      = 93.2 - Id - Ie_eff                                           (A = 0, no advantage)

- 93.2 is ``Ro - Is`` with every G.107 default parameter (G.107 Table 1 -> Ro = 94.77, Is = 1.43).
- Id, the delay impairment, uses the fit of G.107's Id to its default parameters by
  R. G. Cole and J. H. Rosenbluth, "Voice over IP performance monitoring", ACM SIGCOMM
  Computer Communication Review 31(2), 2001:

      Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)      (H = Heaviside step, d in ms)

  with d the one-way *mouth-to-ear* delay, estimated here as

      d = rtt / 2  +  2 * jitter  +  codec delay

  (half the round trip; a de-jitter buffer sized to twice the RFC 3550 jitter; the codec's
  packetisation + look-ahead delay from :class:`Codec`).
- Ie_eff, the equipment impairment under random packet loss, is G.107 (7-29):

      Ie_eff = Ie + (95 - Ie) * Ppl / (Ppl / BurstR + Bpl)

  with Ppl the loss in percent, and Ie/Bpl the codec's constants from ITU-T G.113 Appendix I
  (provisional planning values, Table I.1/I.3). BurstR = 1 (random loss): the probes cannot tell
  bursty loss apart at their rate, so the estimate is for random loss.
- MOS from R is G.107 Annex B (B-4):

      MOS = 1                                              for R <= 0
      MOS = 1 + 0.035 R + R (R - 60) (100 - R) 7e-6        for 0 < R < 100
      MOS = 4.5                                            for R >= 100

  clamped to at least 1.0 (the cubic dips a hair below 1 for R < 6.5).

Where this departs from full G.107: no echo (Idte/Idle, both ~0 with the default TELR of
65 dB), no simultaneous impairments Is beyond the defaults, Cole-Rosenbluth's linear fit
instead of G.107's Idd curve for absolute delay, the jitter buffer modelled as delay only (late
packets discarded by a real buffer are not counted as loss), and BurstR = 1.

Reference points (tested): R = 93.2 -> MOS 4.41, R = 50 -> MOS 2.58; a perfect G.711 path
(0 ms RTT, no jitter, no loss, 20 ms packets) -> R 92.72, MOS 4.40.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

R_DEFAULT = 93.2
"""Ro - Is with every G.107 default (Table 1): the best R a narrowband call can reach."""

DELAY_KNEE_MS = 177.3
"""Cole-Rosenbluth: one-way delay beyond which each ms costs 0.024 + 0.11 R points."""

MOS_MAX = 4.5
MOS_MIN = 1.0


@dataclass(frozen=True, slots=True)
class Codec:
    """A codec's E-model constants. ``ie``/``bpl``: ITU-T G.113 Appendix I (Table I.1/I.3)."""

    name: str
    ie: float  # equipment impairment factor Ie
    bpl: float  # packet-loss robustness factor Bpl (random loss)
    frame_ms: float  # codec frame length
    frames_per_packet: int
    lookahead_ms: float  # algorithmic look-ahead (ITU-T G.114 Table I.1 / the codec's own spec)

    @property
    def delay_ms(self) -> float:
        """Packetisation (frames per packet x frame) plus look-ahead: the codec's share of d."""
        return self.frame_ms * self.frames_per_packet + self.lookahead_ms


G711 = Codec("G.711", ie=0.0, bpl=25.1, frame_ms=10.0, frames_per_packet=2, lookahead_ms=0.0)
"""G.711 (PCM, 64 kbit/s) with packet-loss concealment (G.711 Appendix I), 20 ms packets.
G.113 Appendix I: Ie = 0, Bpl = 25.1. This is what Amazon Connect's softphone media is."""

G711_NO_PLC = Codec("G.711 without PLC", ie=0.0, bpl=4.3, frame_ms=10.0, frames_per_packet=2, lookahead_ms=0.0)
"""G.711 without packet-loss concealment. G.113 Appendix I: Ie = 0, Bpl = 4.3."""

G729A = Codec("G.729A", ie=11.0, bpl=19.0, frame_ms=10.0, frames_per_packet=2, lookahead_ms=5.0)
"""G.729 Annex A (CS-ACELP, 8 kbit/s) with VAD, 2 frames (20 ms) per packet, 5 ms look-ahead.
G.113 Appendix I: Ie = 11, Bpl = 19.0."""


def delay_impairment(one_way_ms: float) -> float:
    """Id for a one-way mouth-to-ear delay in ms (Cole-Rosenbluth fit of G.107, knee at 177.3 ms)."""
    d = max(0.0, one_way_ms)
    knee = 0.11 * (d - DELAY_KNEE_MS) if d > DELAY_KNEE_MS else 0.0
    return 0.024 * d + knee


def effective_equipment_impairment(loss_pct: float, codec: Codec = G711, burst_r: float = 1.0) -> float:
    """Ie_eff (G.107 eq. 7-29) for ``loss_pct`` percent of packets lost."""
    ppl = min(100.0, max(0.0, loss_pct))
    return codec.ie + (95.0 - codec.ie) * ppl / (ppl / burst_r + codec.bpl)


def one_way_delay_ms(rtt_ms: float, jitter_ms: float, codec: Codec = G711) -> float:
    """d: half the round trip + a de-jitter buffer of twice the jitter + the codec's own delay."""
    return max(0.0, rtt_ms) / 2.0 + 2.0 * max(0.0, jitter_ms) + codec.delay_ms


def r_factor(rtt_ms: float, jitter_ms: float, loss_pct: float, codec: Codec = G711) -> float:
    """The transmission rating R = 93.2 - Id - Ie_eff (not clamped: may be < 0)."""
    d = one_way_delay_ms(rtt_ms, jitter_ms, codec)
    return R_DEFAULT - delay_impairment(d) - effective_equipment_impairment(loss_pct, codec)


def mos_from_r(r: float) -> float:
    """G.107 Annex B: estimated MOS (conversational quality) for a rating R, within [1, 4.5]."""
    if math.isnan(r):
        raise ValueError("R is NaN: the measurements it came from are not numbers")
    if r <= 0.0:
        return MOS_MIN
    if r >= 100.0:
        return MOS_MAX
    mos = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    return min(MOS_MAX, max(MOS_MIN, mos))


def estimate_mos(rtt_ms: float, jitter_ms: float, loss_pct: float, codec: Codec = G711) -> float:
    """Estimated MOS (1..4.5) of a call over a path with this RTT, RFC 3550 jitter and loss."""
    return mos_from_r(r_factor(rtt_ms, jitter_ms, loss_pct, codec))
