"""The E-model MOS estimate: G.107 reference points, codec constants, and shape properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.core.mos import (
    G711,
    G711_NO_PLC,
    G729A,
    R_DEFAULT,
    delay_impairment,
    effective_equipment_impairment,
    estimate_mos,
    mos_from_r,
    one_way_delay_ms,
    r_factor,
)

# G.107 Annex B: MOS = 1 + 0.035 R + R (R-60)(100-R) 7e-6, 1 below R = 0, 4.5 above R = 100.
# Expected values worked by hand from that formula (and the usual G.107 / G.109 landmarks).
R_TO_MOS = [
    (93.2, 4.409),  # every G.107 default: the best narrowband call
    (90.0, 4.34),  # G.109 "best" category starts here
    (80.0, 4.024),  # "high" starts here
    (70.0, 3.597),
    (60.0, 3.10),  # R = 60: the cubic term vanishes, 1 + 2.1
    (50.0, 2.575),
    (0.0, 1.0),
    (-12.0, 1.0),
    (100.0, 4.5),
    (130.0, 4.5),
    (5.0, 1.0),  # the cubic dips to 0.992 here: clamped to the bottom of the scale
]


@pytest.mark.parametrize(("r", "mos"), R_TO_MOS, ids=[f"R={r}" for r, _ in R_TO_MOS])
def test_mos_from_r_reference_points(r: float, mos: float) -> None:
    assert mos_from_r(r) == pytest.approx(mos, abs=0.002)


def test_mos_from_r_refuses_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        mos_from_r(float("nan"))


# Id (Cole-Rosenbluth fit of G.107): 0.024 d + 0.11 (d - 177.3) H(d - 177.3)
ID_CASES = [
    (0.0, 0.0),
    (100.0, 2.4),
    (177.3, 4.2552),  # the knee itself: no extra term yet
    (200.0, 0.024 * 200 + 0.11 * 22.7),
    (400.0, 0.024 * 400 + 0.11 * 222.7),
    (-5.0, 0.0),  # clock noise below zero is no delay
]


@pytest.mark.parametrize(("d", "expected"), ID_CASES, ids=[f"d={d}" for d, _ in ID_CASES])
def test_delay_impairment(d: float, expected: float) -> None:
    assert delay_impairment(d) == pytest.approx(expected, abs=1e-9)


# Ie_eff = Ie + (95 - Ie) Ppl / (Ppl + Bpl) with G.113 Appendix I constants
IE_CASES = [
    (G711, 0.0, 0.0),
    (G711, 1.0, 95.0 / 26.1),
    (G711, 10.0, 95.0 * 10 / 35.1),
    (G711_NO_PLC, 1.0, 95.0 / 5.3),
    (G729A, 0.0, 11.0),
    (G729A, 2.0, 11.0 + 84.0 * 2 / 21.0),
    (G711, 100.0, 95.0 * 100 / 125.1),
    (G711, 250.0, 95.0 * 100 / 125.1),  # loss is capped at 100 %
]


@pytest.mark.parametrize(("codec", "loss", "expected"), IE_CASES, ids=[f"{c.name}-{loss}%" for c, loss, _ in IE_CASES])
def test_effective_equipment_impairment(codec: object, loss: float, expected: float) -> None:
    assert effective_equipment_impairment(loss, codec) == pytest.approx(expected, abs=1e-9)  # type: ignore[arg-type]


def test_codec_constants_are_g113_appendix_i() -> None:
    assert (G711.ie, G711.bpl) == (0.0, 25.1)
    assert (G711_NO_PLC.ie, G711_NO_PLC.bpl) == (0.0, 4.3)
    assert (G729A.ie, G729A.bpl) == (11.0, 19.0)
    assert G711.delay_ms == 20.0  # 20 ms packets, no look-ahead
    assert G729A.delay_ms == 25.0  # 2 x 10 ms frames + 5 ms look-ahead


# whole estimates: (rtt, jitter, loss, codec) -> (R, MOS)
ESTIMATES = [
    ("perfect G.711 path", 0.0, 0.0, 0.0, G711, 92.72, 4.40),
    ("transatlantic 80 ms, 5 ms jitter", 80.0, 5.0, 0.0, G711, 93.2 - 0.024 * 70, 4.38),
    ("1 % loss", 20.0, 2.0, 1.0, G711, 93.2 - 0.024 * 34 - 95 / 26.1, 4.30),
    ("300 ms RTT: past the knee", 300.0, 10.0, 0.0, G711, 93.2 - 0.024 * 190 - 0.11 * 12.7, 4.27),
    ("G.729A perfect path", 0.0, 0.0, 0.0, G729A, 93.2 - 0.024 * 25 - 11, 4.09),
    ("10 % loss, 200 ms RTT", 200.0, 20.0, 10.0, G711, 93.2 - 0.024 * 160 - 95 * 10 / 35.1, 3.22),
]


@pytest.mark.parametrize(
    ("rtt", "jitter", "loss", "codec", "r", "mos"), [c[1:] for c in ESTIMATES], ids=[c[0] for c in ESTIMATES]
)
def test_estimates(rtt: float, jitter: float, loss: float, codec: object, r: float, mos: float) -> None:
    assert r_factor(rtt, jitter, loss, codec) == pytest.approx(r, abs=1e-6)  # type: ignore[arg-type]
    assert estimate_mos(rtt, jitter, loss, codec) == pytest.approx(mos, abs=0.01)  # type: ignore[arg-type]


def test_one_way_delay_is_half_rtt_plus_buffer_plus_codec() -> None:
    assert one_way_delay_ms(100.0, 10.0) == 50.0 + 20.0 + 20.0
    assert one_way_delay_ms(100.0, 10.0, G729A) == 50.0 + 20.0 + 25.0


def test_r_default_is_g107_defaults() -> None:
    assert R_DEFAULT == 93.2


ms = st.floats(min_value=0, max_value=5000, allow_nan=False)
pct = st.floats(min_value=0, max_value=100, allow_nan=False)


@given(rtt=ms, jitter=ms, loss=pct)
def test_mos_within_scale(rtt: float, jitter: float, loss: float) -> None:
    assert 1.0 <= estimate_mos(rtt, jitter, loss) <= 4.5


@given(rtt=ms, jitter=ms, loss=pct, more=st.floats(min_value=0, max_value=1000, allow_nan=False))
def test_mos_never_improves_with_worse_network(rtt: float, jitter: float, loss: float, more: float) -> None:
    base = estimate_mos(rtt, jitter, loss)
    assert estimate_mos(rtt + more, jitter, loss) <= base + 1e-12
    assert estimate_mos(rtt, jitter + more, loss) <= base + 1e-12
    assert estimate_mos(rtt, jitter, min(100.0, loss + more / 10)) <= base + 1e-12


@given(
    a=st.floats(min_value=-50, max_value=150, allow_nan=False),
    b=st.floats(min_value=-50, max_value=150, allow_nan=False),
)
def test_mos_from_r_monotonic(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert mos_from_r(lo) <= mos_from_r(hi) + 1e-12
