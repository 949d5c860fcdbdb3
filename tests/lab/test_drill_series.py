"""What a drill report carries for its picture (bgpctl_lab.drill_series), from hand-made inputs."""

from __future__ import annotations

from typing import Any

from bgpctl.core.recording import Event, Sent, Settled, Stepped
from bgpctl.core.types import PathKey, Sample
from bgpctl_lab.drill_series import flow_gaps, health_before, path_series
from tests.lab.meter_synth import synthetic_report

T0 = 1_800_000_000.0
USE1 = PathKey("media", "use1", "interconnect")
USW2 = PathKey("media", "usw2", "interconnect")


def _health(at: float, path: PathKey, new: str) -> dict[str, Any]:
    return {"event": "path.health", "at_unix": at, "path": str(path), "new": new}


def test_path_series_covers_the_drill_and_starts_from_the_logged_health() -> None:
    recording: list[Event] = [
        Settled(USE1, Sample(1, T0 - 1.0, T0 - 0.99)),  # before the drill: not in the series
        Sent(USE1, 2, T0 + 0.1),
        Settled(USE1, Sample(2, T0 + 0.1, T0 + 0.112)),
        Stepped(T0 + 0.2),
        Settled(USE1, Sample(3, T0 + 5.1, None)),
        Settled(USW2, Sample(1, T0 + 0.3, T0 + 0.37)),
        Settled(USW2, Sample(2, T0 + 11.0, T0 + 11.07)),  # after the drill's end
    ]
    log = [
        _health(T0 - 60, USE1, "up"),
        _health(T0 - 60, USW2, "up"),
        {"event": "route.change", "at_unix": T0 + 5.2},
        _health(T0 + 5.2, USE1, "down"),
    ]
    use1, usw2 = path_series(recording, log, T0, T0 + 10.0, bin_s=1.0)
    assert use1["path"] == str(USE1) and usw2["path"] == str(USW2)
    assert use1["t"][0] == 0.0 and use1["sent"][0] == 1 and use1["rtt_ms"][0] == 12.0
    assert use1["sent"][5] == use1["lost"][5] == 1
    assert use1["health"] == [
        {"health": "up", "start": 0.0, "end": 5.2},
        {"health": "down", "start": 5.2, "end": 10.0},
    ]
    assert usw2["health"] == [{"health": "up", "start": 0.0, "end": 10.0}]
    assert sum(usw2["sent"]) == 1


def test_health_before_takes_the_last_change() -> None:
    log = [_health(T0 - 9, USE1, "up"), _health(T0 - 5, USE1, "degraded"), _health(T0 + 1, USE1, "down")]
    assert health_before(log, T0) == {str(USE1): "degraded"}


def test_flow_gaps_move_onto_the_drills_timeline() -> None:
    meter = synthetic_report(1000, flows=4, lost={i for i in range(400, 500) if i % 4 == 1})
    started = meter.started_unix
    (g,) = flow_gaps(meter, started - 0.25)  # the meter's first send came 250 ms after the drill's zero
    assert g.flow == 1 and g.start_s == round(meter.flows[1].gaps[0].start_s + 0.25, 4)
    assert g.ms == round(meter.flows[1].gaps[0].ms, 3)
    assert flow_gaps(None, started) == []
