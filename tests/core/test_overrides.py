"""Runtime overrides (issue 8, point 2): pure rules, the controller's input, expiry on the clock, the
persisted file, and the recording's ``overrides`` lines that a replay follows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from bgpctl import events
from bgpctl.control import overrides_store
from bgpctl.control.service import OverrideDesk
from bgpctl.core.controller import Controller
from bgpctl.core.overrides import (
    OverrideRefused,
    RuntimeOverride,
    apply,
    duration,
    expire,
    from_json,
    merged,
    return_hold_s,
    runtime_from_json,
    runtime_to_json,
)
from bgpctl.core.plan import path_states
from bgpctl.core.recording import OverridesSet, RecordingError, overrides_line, parse_line
from bgpctl.core.types import PathKey
from bgpctl.policy.model import Drain, PathState
from tests.control.support import judge, lab_policy

BY = {"pid": 7, "uid": 0, "gid": 0}


def _states(c: Controller) -> dict[str, PathState | None]:
    states, _ = path_states(c.policy, c.health, c.overrides)
    return {str(k): v for k, v in states.items()}


def test_a_runtime_drain_plans_exactly_like_the_policy_files_drain() -> None:
    runtime = judge(lab_policy())
    drained_policy = lab_policy().model_copy(
        update={"overrides": lab_policy().overrides.model_copy(update={"drain": [Drain(region="use1")]})}
    )
    in_file = judge(drained_policy)
    new, made, _ = apply(
        runtime.controller.policy,
        runtime.controller.health,
        (),
        "drain",
        {"target": ("use1", None), "reason": "x"},
        by=BY,
        now=runtime.now,
    )
    assert made is not None and made.target == "use1"
    assert runtime.controller.set_overrides(new) is True
    assert runtime.controller.set_overrides(new) is False  # the same set: nothing to plan
    step = runtime.controller.step(runtime.now + 0.1)
    assert step.plan is not None  # planned at once, without a health change
    last = in_file.controller.step(in_file.now + 0.1).plan or in_file.controller.last_plan
    assert last is not None
    assert step.plan.desired == last.desired
    assert all(s is not PathState.PREFERRED for k, s in _states(runtime.controller).items() if "/use1/" in k)


def test_a_drain_for_one_service_leaves_the_others_alone() -> None:
    j = judge(lab_policy())
    new, _, _ = apply(
        j.controller.policy,
        j.controller.health,
        (),
        "drain",
        {"target": ("use1", None), "service": "media", "reason": "x"},
        by=BY,
        now=j.now,
    )
    j.controller.set_overrides(new)
    states = _states(j.controller)
    assert states["media/use1/interconnect"] is PathState.STANDBY
    assert states["api/use1/interconnect"] is PathState.PREFERRED
    assert states["signalling/use1/interconnect"] is PathState.PREFERRED


def test_draining_the_last_healthy_region_is_refused_unless_forced() -> None:
    j = judge(lab_policy())
    c = j.controller
    one, _, _ = apply(c.policy, c.health, (), "drain", {"target": ("usw2", None), "reason": "x"}, by=BY, now=j.now)
    with pytest.raises(OverrideRefused, match="last healthy region") as e:
        apply(c.policy, c.health, one, "drain", {"target": ("use1", None), "reason": "x"}, by=BY, now=j.now)
    assert "--force" in e.value.hint and not e.value.unknown_name
    both, made, _ = apply(
        c.policy, c.health, one, "drain", {"target": ("use1", None), "reason": "x", "force": True}, by=BY, now=j.now
    )
    assert made is not None and len(both) == 2


def test_draining_the_only_region_left_up_is_refused() -> None:
    j = judge(lab_policy(), lost=lambda k, t: k.region == "usw2")
    c = j.controller
    assert all(h.health.value == "down" for k, h in c.health.items() if k.region == "usw2")
    with pytest.raises(OverrideRefused, match="media"):
        apply(c.policy, c.health, (), "drain", {"target": ("use1", None), "reason": "x"}, by=BY, now=j.now)
    # draining the dead region is no loss: allowed
    apply(c.policy, c.health, (), "drain", {"target": ("usw2", None), "reason": "x"}, by=BY, now=j.now)


def test_setting_the_same_target_again_replaces_it_and_undrain_removes_it() -> None:
    j = judge(lab_policy())
    c = j.controller
    a, _, _ = apply(c.policy, c.health, (), "drain", {"target": ("use1", None), "reason": "a"}, by=BY, now=1.0)
    b, _, _ = apply(
        c.policy, c.health, a, "drain", {"target": ("use1", None), "reason": "b", "for": 60.0}, by=BY, now=2.0
    )
    assert [(o.reason, o.since, o.expires) for o in b] == [("b", 2.0, 62.0)]
    left, made, gone = apply(
        c.policy, c.health, b, "undrain", {"target": ("use1", None), "reason": "done"}, by=BY, now=3
    )
    assert made is None and [o.reason for o in gone] == ["b"]
    assert {o.service for o in left} == {"media", "signalling", "api"} and all(o.returning for o in left)


def test_a_runtime_pin_wins_over_the_policy_pin_and_freeze_adds_up() -> None:
    policy = lab_policy()
    ov = policy.overrides.model_copy(update={"pin": {"media": "use1"}})
    m = merged(ov, (RuntimeOverride("pin", region="usw2", service="media"), RuntimeOverride("freeze")))
    assert m.pin["media"] == "usw2" and m.freeze is True
    assert merged(ov, ()) is ov


def test_an_override_expires_at_its_time_and_the_controller_plans_again() -> None:
    j = judge(lab_policy())
    c = j.controller
    new, _, _ = apply(
        c.policy, c.health, (), "drain", {"target": ("use1", None), "reason": "x", "for": 10.0}, by=BY, now=j.now
    )
    c.set_overrides(new)
    drained = c.step(j.now + 0.1).plan
    assert drained is not None
    quiet = c.step(j.now + 9.99)
    assert quiet.expired == () and c.runtime == new
    step = c.step(j.now + 10.0)
    assert [o.target for o in step.expired] == ["use1"]
    # the expiry is an undrain: use1 returns after each service's rise rules (voice rise_s 10, api 20)
    assert {(o.service, o.expires) for o in c.runtime} == {
        ("media", j.now + 20.0),
        ("signalling", j.now + 20.0),
        ("api", j.now + 30.0),
    }
    assert step.plan is not None and _states(c)["media/use1/interconnect"] is PathState.STANDBY
    back = c.step(j.now + 20.0)
    assert back.plan is not None and {o.service for o in back.expired} == {"media", "signalling"}
    assert _states(c)["media/use1/interconnect"] is PathState.PREFERRED
    assert _states(c)["api/use1/interconnect"] is PathState.STANDBY
    c.step(j.now + 30.0)
    assert c.runtime == () and _states(c)["api/use1/interconnect"] is PathState.PREFERRED
    kept, gone = expire(new, j.now + 10.0)
    assert (kept, [o.target for o in gone]) == ((), ["use1"])  # without the policy: no holds
    kept, _ = expire(new, j.now + 10.0, c.policy)
    assert [o.target for o in kept] == ["use1 for media", "use1 for signalling", "use1 for api"]


# --------------------------------------------------------------------------------------------
# undrain: the return goes through the rise rules


AT = 1_780_000_100.0  # after judge()'s 6 s of samples


def _drained() -> tuple[Controller, tuple[RuntimeOverride, ...]]:
    """A judged controller with use1 drained at AT."""
    c = judge(lab_policy()).controller
    new, _, _ = apply(c.policy, c.health, (), "drain", {"target": ("use1", None), "reason": "CHG-1"}, by=BY, now=AT)
    c.set_overrides(new)
    c.step(AT)
    return c, new


def test_undrain_returns_each_service_after_its_rise_s_not_at_once() -> None:
    c, drained = _drained()
    assert return_hold_s(c.policy, "media") == 10 and return_hold_s(c.policy, "api") == 20
    left, made, gone = apply(
        c.policy, c.health, drained, "undrain", {"target": ("use1", None), "reason": "done"}, by=BY, now=AT + 1
    )
    assert made is None and gone == drained
    holds = {o.service: o for o in left}
    assert set(holds) == {"media", "signalling", "api"}
    assert all(o.returning and o.region == "use1" and o.by == BY and o.since == AT + 1 for o in left)
    assert (holds["media"].expires, holds["api"].expires) == (AT + 11, AT + 21)
    assert holds["media"].reason == "returning after rise_s 10 s: undrain (done)"
    c.set_overrides(left)
    c.step(AT + 1)
    states = _states(c)
    assert states["media/use1/interconnect"] is PathState.STANDBY  # not yet: the rise rules first
    assert states["api/use1/interconnect"] is PathState.STANDBY
    early = c.step(AT + 10.99)
    assert early.expired == () and _states(c)["media/use1/interconnect"] is PathState.STANDBY
    media_back = c.step(AT + 11)
    assert media_back.plan is not None and {o.service for o in media_back.expired} == {"media", "signalling"}
    assert _states(c)["media/use1/interconnect"] is PathState.PREFERRED
    assert _states(c)["api/use1/interconnect"] is PathState.STANDBY
    api_back = c.step(AT + 21)
    assert api_back.plan is not None and c.runtime == ()
    assert _states(c)["api/use1/interconnect"] is PathState.PREFERRED


def test_undrain_now_returns_at_once_and_ends_a_return_already_running() -> None:
    c, drained = _drained()
    args = {"target": ("use1", None), "reason": "hurry", "now": True}
    left, _, gone = apply(c.policy, c.health, drained, "undrain", args, by=BY, now=AT + 1)
    assert left == () and gone == drained
    returning, _, _ = apply(
        c.policy, c.health, drained, "undrain", {"target": ("use1", None), "reason": "x"}, by=BY, now=AT + 1
    )
    with pytest.raises(OverrideRefused, match="already returning") as e:
        apply(c.policy, c.health, returning, "undrain", {"target": ("use1", None), "reason": "x"}, by=BY, now=AT + 2)
    assert "now" in e.value.hint and not e.value.unknown_name
    left, _, gone = apply(c.policy, c.health, returning, "undrain", args, by=BY, now=AT + 2)
    assert left == () and gone == returning
    with pytest.raises(OverrideRefused, match="no runtime drain of use1 is in force"):
        apply(c.policy, c.health, (), "undrain", args, by=BY, now=AT + 3)


def test_a_service_drain_returns_only_that_service_and_a_new_drain_replaces_the_holds() -> None:
    c, _ = _drained()
    one, _, _ = apply(
        c.policy, c.health, (), "drain", {"target": ("use1", None), "service": "api", "reason": "x"}, by=BY, now=AT
    )
    left, _, _ = apply(
        c.policy,
        c.health,
        one,
        "undrain",
        {"target": ("use1", None), "service": "api", "reason": "y"},
        by=BY,
        now=AT + 1,
    )
    assert [(o.service, o.returning, o.expires) for o in left] == [("api", True, AT + 21)]
    again, made, _ = apply(
        c.policy, c.health, left, "drain", {"target": ("use1", None), "reason": "z"}, by=BY, now=AT + 2
    )
    assert made is not None and again == (made,)  # the region-wide drain covers the api hold


def test_a_persisted_return_survives_a_restart_and_bad_returning_fields_are_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    hold = RuntimeOverride(
        "drain", region="use1", service="media", by=BY, since=1.0, expires=11.0, reason="r", returning=True
    )
    overrides_store.save(tmp_path, (hold, *_sample()))
    assert overrides_store.load(tmp_path) == (hold, *_sample())
    for bad in ({"kind": "pin", "region": "usw2", "service": "media"}, {"kind": "drain", "region": "use1"}):
        with pytest.raises(ValueError, match="'returning' must be true or false"):
            from_json({**bad, "since": 1.0, "returning": "yes" if bad["kind"] == "drain" else True}, "x")


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("2h30m", 9000), ("1d", 86400), (5, 5)])
def test_durations(text: object, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5", "1w", "-5s", "0s", "31d", True, None, [], float("nan"), float("inf")])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration|between"):
        duration(bad)


# --------------------------------------------------------------------------------------------
# the file


def _sample() -> tuple[RuntimeOverride, ...]:
    return (
        RuntimeOverride("drain", region="use1", by=BY, since=100.0, expires=200.0, reason="CHG-1"),
        RuntimeOverride("pin", region="usw2", service="media", by=BY, since=101.0, reason="CHG-2"),
        RuntimeOverride("freeze", by=None, since=102.0, reason="CHG-3"),
        RuntimeOverride("weight", service="media", weights={"use1": 95, "usw2": 5}, since=103.0, reason="CHG-4"),
    )


def test_the_file_round_trips_and_is_private(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    overrides_store.save(tmp_path, _sample())
    assert overrides_store.load(tmp_path) == _sample()
    assert (tmp_path / "overrides.json").stat().st_mode & 0o777 == 0o600
    assert overrides_store.load(tmp_path / "empty") == ()  # no file: no overrides
    assert runtime_from_json(runtime_to_json(_sample()), "x") == _sample()


def test_a_symlinked_file_is_refused_and_never_followed(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    secret = tmp_path / "secret"
    secret.write_text("do not touch\n")
    (tmp_path / "overrides.json").symlink_to(secret)
    with pytest.raises(overrides_store.OverridesFileError, match="symlink"):
        overrides_store.load(tmp_path)
    overrides_store.save(tmp_path, _sample())  # the rename replaces the link itself
    assert secret.read_text() == "do not touch\n"
    assert not (tmp_path / "overrides.json").is_symlink()


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("{not json", "not JSON"),
        ("[]", '"version": 1'),
        ('{"version": 2, "overrides": []}', '"version": 1'),
        ('{"version": 1, "overrides": [{"kind": "blackhole"}]}', "overrides[0]: 'kind'"),
        ('{"version": 1, "overrides": [{"kind": "drain", "since": 1}]}', "needs 'region'"),
        ('{"version": 1, "overrides": [{"kind": "drain", "region": "../x", "since": 1}]}', "'region'"),
        ('{"version": 1, "overrides": [{"kind": "freeze", "since": "now"}]}', "'since'"),
        ('{"version": 1, "overrides": [{"kind": "freeze", "since": 1, "by": {"uid": "root"}}]}', "'by'"),
        ('{"version": 1, "overrides": [{"kind": "weight", "since": 1, "weights": {"use1": 1}}]}', "needs 'service'"),
        ('{"version": 1, "overrides": [{"kind": "weight", "service": "media", "since": 1}]}', "'weights'"),
        (
            '{"version": 1, "overrides": [{"kind": "weight", "service": "media", "since": 1, '
            '"weights": {"use1": -1, "usw2": 5}}]}',
            "weight of use1 must be a whole number 0-1000",
        ),
        (
            '{"version": 1, "overrides": [{"kind": "weight", "service": "media", "since": 1, '
            '"weights": {"use1": 0, "usw2": 0}}]}',
            "every region weight 0",
        ),
        (
            '{"version": 1, "overrides": [{"kind": "pin", "service": "media", "region": "use1", "since": 1, '
            '"weights": {"use1": 1}}]}',
            "only a weight override has 'weights'",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_and_field(tmp_path: Path, text: str, word: str) -> None:
    tmp_path.chmod(0o700)
    (tmp_path / "overrides.json").write_text(text)
    (tmp_path / "overrides.json").chmod(0o600)
    with pytest.raises(overrides_store.OverridesFileError) as e:
        overrides_store.load(tmp_path)
    assert str(tmp_path / "overrides.json") in str(e.value) and word in str(e.value)


def test_a_file_writable_by_others_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    overrides_store.save(tmp_path, _sample())
    os.chmod(tmp_path / "overrides.json", 0o666)
    with pytest.raises(overrides_store.OverridesFileError, match="writable by others"):
        overrides_store.load(tmp_path)


# --------------------------------------------------------------------------------------------
# the daemon's desk: persist, reload after a restart, expiry logged and persisted


def test_overrides_survive_a_restart_and_expire_with_a_log_event(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    j = judge(lab_policy())
    now = [j.now]
    desk = OverrideDesk(j.controller, tmp_path, structlog.get_logger(), clock=lambda: now[0])
    with capture_logs() as logs:
        result = desk.change("drain", {"target": ("use1", None), "reason": "CHG-9", "for": 30.0, "by": BY})
    assert result["set"]["expires"] == j.now + 30.0 and result["set"]["by"] == BY
    assert [e["event"] for e in logs] == [events.OVERRIDE_SET]
    saved = json.loads((tmp_path / "overrides.json").read_text())
    assert [o["target"] for o in saved["overrides"]] == ["use1"]

    restarted = Controller(lab_policy(), {})  # a new daemon: nothing judged yet
    seen: list[object] = []
    with capture_logs() as logs:
        loaded = OverrideDesk(restarted, tmp_path, structlog.get_logger(), on_change=seen.append).load()
    assert loaded == j.controller.runtime == restarted.runtime and seen == [loaded]
    assert [e["event"] for e in logs] == [events.OVERRIDE_LOADED]

    with capture_logs() as logs:
        step = j.controller.step(j.now + 30.0)
        desk.expired(step.expired)
    (gone,) = [e for e in logs if e["event"] == events.OVERRIDE_EXPIRED]
    assert gone["target"] == "use1" and gone["reason"] == "CHG-9"
    saved = json.loads((tmp_path / "overrides.json").read_text())["overrides"]  # the return's holds, persisted
    assert {(o["target"], o["returning"]) for o in saved} == {
        ("use1 for media", True),
        ("use1 for signalling", True),
        ("use1 for api", True),
    }
    with capture_logs() as logs:
        desk.expired(j.controller.step(j.now + 50.0).expired)
    assert len([e for e in logs if e["event"] == events.OVERRIDE_EXPIRED]) == 3
    assert json.loads((tmp_path / "overrides.json").read_text())["overrides"] == []


def test_a_verb_whose_file_cannot_be_written_changes_nothing(tmp_path: Path) -> None:
    j = judge(lab_policy())
    bad = tmp_path / "run"
    bad.mkdir(mode=0o777)
    bad.chmod(0o777)  # writable by others: the run directory checks refuse it
    desk = OverrideDesk(j.controller, bad, structlog.get_logger())
    from bgpctl.control.protocol import ProtocolError  # noqa: PLC0415

    with pytest.raises(ProtocolError, match="nothing changed") as e:
        desk.change("freeze", {"reason": "x", "by": BY})
    assert e.value.code == "refused" and j.controller.runtime == ()


# --------------------------------------------------------------------------------------------
# recordings


def test_an_overrides_line_round_trips() -> None:
    line = overrides_line(_sample())
    ev = parse_line(line, "rec:3")
    assert ev == OverridesSet(_sample())


@pytest.mark.parametrize(
    ("line", "word"),
    [
        ('{"ev": "overrides"}', "rec.jsonl:4"),
        ('{"ev": "overrides", "overrides": [{"kind": "nope", "since": 1}]}', "'kind'"),
    ],
)
def test_bad_overrides_lines_are_refused(line: str, word: str) -> None:
    with pytest.raises(RecordingError, match=word):
        parse_line(line, "rec.jsonl:4")


def _recording(drain_after_s: float | None) -> list[str]:
    from bgpctl.core.recording import Schedule, header_line, step_line  # noqa: PLC0415
    from tests.core.plans.support import recording_lines  # noqa: PLC0415

    keys = {PathKey("media", r, "interconnect"): 12.0 for r in ("use1", "usw2")}
    out = [header_line({k: Schedule(0.02, 0.2) for k in keys}, steps=True, negotiated=False)]
    start = None
    for line in recording_lines(keys, 4.0, 0.02):
        if '"bgpctl_recording"' in line:
            continue
        ev = parse_line(line, "x")
        at = ev.sample.received or ev.sample.sent  # type: ignore[union-attr]
        start = at if start is None else start
        if drain_after_s is not None and at >= start + drain_after_s:
            out.append(overrides_line((RuntimeOverride("drain", region="use1", since=at, reason="r"),)))
            drain_after_s = None
        out.extend([line, step_line(at)])
    return out


def test_a_replay_follows_the_recorded_overrides() -> None:
    from bgpctl.core.recording import read_recording  # noqa: PLC0415
    from bgpctl.core.replay import replay  # noqa: PLC0415
    from tests.core.plans.support import REPLAY_PATCH  # noqa: PLC0415
    from tests.core.plans.support import lab_policy as plans_policy  # noqa: PLC0415

    policy = plans_policy(REPLAY_PATCH)
    in_file = policy.model_copy(
        update={"overrides": policy.overrides.model_copy(update={"drain": [Drain(region="use1")]})}
    )
    plain_events = list(replay(policy, read_recording(_recording(None))))
    plain = plain_events[-1].plan
    recorded = list(replay(policy, read_recording(_recording(2.0))))
    file_drain = list(replay(in_file, read_recording(_recording(None))))[-1].plan
    assert recorded[-1].plan.desired == file_drain.desired != plain.desired
    assert recorded[0].plan.desired == plain_events[0].plan.desired  # before the line: as without it
    assert any("drain: up paths of use1 are standby" in n for n in recorded[-1].plan.notes)


def test_a_runtime_weight_plans_like_the_policys_and_its_rules_refuse_what_the_policy_refuses() -> None:
    """``weight`` is overrides.weights at run time: the edge routes carry the weights; weight 0 is standby
    while the other region is up; an active-standby service, an unknown or missing region are refused."""
    from bgpctl.core.override_args import MAX_WEIGHT  # noqa: PLC0415
    from bgpctl.policy.model import MAX_WEIGHT as POLICY_MAX_WEIGHT  # noqa: PLC0415

    assert MAX_WEIGHT == POLICY_MAX_WEIGHT  # the light checker and the policy model say the same
    j = judge(lab_policy())
    c = j.controller
    args = {"service": "media", "weights": {"use1": 80, "usw2": 20}, "reason": "canary"}
    runtime, made, _ = apply(c.policy, c.health, (), "weight", args, by=BY, now=j.now)
    assert made is not None and made.target == "media use1=80 usw2=20"
    assert merged(c.policy.overrides, runtime).weights == {"media": {"use1": 80, "usw2": 20}}
    c.set_overrides(runtime)
    step = c.step(j.now + 0.01)
    assert step.plan is not None
    media = {a.next_hop: a.weight for k, a in step.plan.desired["edge"].items() if k.prefix == "203.0.113.0/26"}
    assert media == {"198.18.1.11": 80, "198.18.1.12": 20}
    others = {a.weight for k, a in step.plan.desired["edge"].items() if k.prefix != "203.0.113.0/26"}
    assert others == {None}
    zero, _, _ = apply(
        c.policy, c.health, runtime, "weight", {**args, "weights": {"use1": 0, "usw2": 1}}, by=BY, now=j.now
    )
    assert len(zero) == 1  # the same service: replaced
    c.set_overrides(zero)
    assert _states(c)["media/use1/interconnect"] is PathState.STANDBY
    assert _states(c)["media/usw2/interconnect"] is PathState.PREFERRED
    for bad, word in [
        ({**args, "service": "api"}, "only for active-active"),
        ({**args, "weights": {"use1": 80, "euc1": 20}}, "'euc1' is not in the policy"),
        ({**args, "weights": {"use1": 80}}, "leave out usw2"),
        ({**args, "service": "chat"}, "'chat' is not in the policy"),
    ]:
        with pytest.raises(OverrideRefused, match=word):
            apply(c.policy, c.health, (), "weight", bad, by=BY, now=j.now)
    with pytest.raises(OverrideRefused, match="no runtime weight of media"):
        apply(c.policy, c.health, (), "unweight", {"service": "media"}, by=BY, now=j.now)
    left, _, gone = apply(c.policy, c.health, zero, "unweight", {"service": "media"}, by=BY, now=j.now)
    assert left == () and [o.kind for o in gone] == ["weight"]
