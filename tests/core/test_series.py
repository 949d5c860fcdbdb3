"""Per-path series (bgpctl.core.series): bins, loss, mean RTT, coarsening and health intervals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.core.series import SeriesBuilder, health_intervals
from bgpctl.core.types import Sample

T0 = 1_800_000_000.0


def test_bins_count_probes_by_their_send_time_and_average_the_answered() -> None:
    b: SeriesBuilder[str] = SeriesBuilder(origin=T0, bin_s=1.0)
    b.add("p", Sample(1, T0 + 0.1, T0 + 0.11))  # 10 ms
    b.add("p", Sample(2, T0 + 0.9, T0 + 0.93))  # 30 ms
    b.add("p", Sample(3, T0 + 2.5, None))  # lost; bin 1 stays empty
    (s,) = b.to_dicts(T0, T0, T0 + 3)
    assert s["t"] == [0.0, 1.0, 2.0] and s["bin_s"] == 1.0
    assert (s["sent"], s["lost"]) == ([2, 0, 1], [0, 0, 1])
    assert s["loss_pct"] == [0.0, None, 100.0]
    assert s["rtt_ms"] == [pytest.approx(20.0), None, None]
    assert s["health"] == [{"health": "unknown", "start": 0.0, "end": 3.0}]


def test_times_are_since_the_zero_given() -> None:
    b: SeriesBuilder[str] = SeriesBuilder(bin_s=0.5)  # origin: the first sample
    b.add("p", Sample(1, T0 + 10.0, T0 + 10.01))
    (s,) = b.to_dicts(T0 + 9.0, T0 + 9.0, T0 + 11.0)
    assert s["t"] == [1.0]


@given(st.lists(st.tuples(st.floats(0, 10_000), st.booleans()), min_size=1, max_size=300))
def test_coarsening_keeps_every_probe_and_the_bin_count_bounded(probes: list[tuple[float, bool]]) -> None:
    b: SeriesBuilder[str] = SeriesBuilder(origin=T0, bin_s=0.5, max_bins=16)
    for i, (t, answered) in enumerate(probes):
        b.add("p", Sample(i, T0 + t, T0 + t + 0.02 if answered else None))
    (s,) = b.to_dicts(T0, T0, T0 + 10_000)
    assert len(s["t"]) <= 16
    assert sum(s["sent"]) == len(probes) and sum(s["lost"]) == sum(1 for _, a in probes if not a)
    assert all(r is None or r == pytest.approx(20.0) for r in s["rtt_ms"])
    assert all(b_ == pytest.approx(a + s["bin_s"]) for a, b_ in zip(s["t"], s["t"][1:], strict=False))


def test_health_intervals_start_with_the_health_at_the_start() -> None:
    changes = [(T0 - 5, "up"), (T0 + 2, "suspect"), (T0 + 2.1, "down"), (T0 + 9, "up"), (T0 + 30, "down")]
    assert health_intervals("unknown", changes, T0, T0, T0 + 20) == [
        {"health": "up", "start": 0.0, "end": 2.0},
        {"health": "suspect", "start": 2.0, "end": 2.1},
        {"health": "down", "start": 2.1, "end": 9.0},
        {"health": "up", "start": 9.0, "end": 20.0},
    ]
    assert health_intervals("up", [], T0, T0, T0 + 5) == [{"health": "up", "start": 0.0, "end": 5.0}]


def test_a_path_known_only_by_its_health_still_has_a_series() -> None:
    b: SeriesBuilder[str] = SeriesBuilder(origin=T0, initial={"q": "up"})
    b.health("r", T0 + 1, "down")
    assert [s["path"] for s in b.to_dicts(T0, T0, T0 + 2)] == ["q", "r"]


@pytest.mark.parametrize("kwargs", [{"bin_s": 0.0}, {"bin_s": float("inf")}, {"max_bins": 1}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        SeriesBuilder(**kwargs)  # type: ignore[arg-type]
