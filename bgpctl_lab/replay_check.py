"""Does a replay of the lab daemon's recording make the daemon's decisions? (issue 12)

The controller-mode daemon on cr records every input of its controller (``--record``, see
lab/services.yaml) and logs every health change (``path.health``) and route change
(``route.change``), each with ``decided_unix``, the time of the evaluation that made it (the
controller's clock; the log line's own timestamp comes later, by as much as the host is loaded).
:func:`compare` replays the recording with the policy and lines both up: same changes, same order,
and each made by an evaluation at the same time (within ``slack_s``, a microsecond: the log rounds).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bgpctl import events
from bgpctl.core.recording import read_recording
from bgpctl.core.replay import replay
from bgpctl.policy.load import load_policy
from bgpctl_lab.drill import RECORDING, daemon_events
from bgpctl_lab.runner import Lab


@dataclass
class ReplayCheck:
    transitions: int  # health changes the daemon logged
    route_changes: int
    problems: list[str] = field(default_factory=list)  # empty: the replay made exactly the daemon's decisions

    @property
    def same(self) -> bool:
        return not self.problems


def compare(lab: Lab, policy_file: Path, slack_s: float = 1e-6) -> ReplayCheck:
    policy = load_policy(policy_file)
    recording = lab.node_dir("cr") / RECORDING
    with recording.open(encoding="utf-8") as f:
        steps = list(replay(policy, read_recording(f, str(recording))))
    replayed_t = [(str(t.key), t.old.value, t.new.value, e.at) for e in steps for t in e.transitions]
    replayed_r = [(c.peer, str(c.kind), c.key.prefix, c.key.path_id, e.at) for e in steps for c in e.plan.changes]
    logged = daemon_events(lab)
    logged_t = [
        (e["path"], e["old"], e["new"], e["decided_unix"]) for e in logged if e.get("event") == events.PATH_HEALTH
    ]
    logged_r = [
        (e["peer"], e["kind"], e["prefix"], e["path_id"], e["decided_unix"])
        for e in logged
        if e.get("event") == events.ROUTE_CHANGE
    ]
    check = ReplayCheck(len(logged_t), len(logged_r))
    if [t[:3] for t in replayed_t] != [t[:3] for t in logged_t]:
        check.problems.append(
            f"health changes differ: replay {[t[:3] for t in replayed_t]} != daemon {[t[:3] for t in logged_t]}"
        )
    if [r[:4] for r in replayed_r] != [r[:4] for r in logged_r]:
        check.problems.append(
            f"route changes differ: replay {[r[:4] for r in replayed_r]} != daemon {[r[:4] for r in logged_r]}"
        )
    if not check.problems:
        pairs = list(
            zip(
                [t[-1] for t in replayed_t] + [r[-1] for r in replayed_r],
                [t[-1] for t in logged_t] + [r[-1] for r in logged_r],
                strict=True,
            )
        )
        off = [(a, b) for a, b in pairs if abs(b - a) > slack_s]
        if off:
            check.problems.append(
                f"{len(off)} change(s) decided at another time than in the replay "
                f"(first: replay {off[0][0]:.6f}, daemon {off[0][1]:.6f})"
            )
    return check
