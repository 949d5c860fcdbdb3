"""False alarms per hour of the fast path and of the soft thresholds, for a given loss, jitter and probe rate.

Runs hours of simulated probes (``bench/noise_sim.py``: the daemon's scheduler bookkeeping and its
controller, on an exact clock) through one path of a policy's service, with independent random loss
and normally distributed round-trip jitter, and counts:

* the controller's judgements that are false by construction (the path is healthy: any ``suspect``,
  ``down`` or ``degraded`` is a false alarm), per hour;
* how often the window's loss *point estimate* is over the SLA's degraded loss threshold (the share of
  evaluations, and its up-crossings per hour: what a point-estimate rule would have acted on), against
  how often the Wilson lower bound decide() uses is over it.

    python -m bench.bench_false_alarms --hours 10 --loss 0.5 --jitter-ms 10
    python -m bench.bench_false_alarms --table        # the docs/false-alarms.md table

The simulated RTT of probe i is ``base + N(0, jitter)`` clamped at 0; losses are independent.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.noise_sim import T0, Sim, single_path
from bgpctl.core.types import Health, PathKey, PathStats
from bgpctl.policy.load import load_policy

ROOT = Path(__file__).resolve().parents[1]
POLICY = ROOT / "policies" / "lab.yaml"
KEY = PathKey("media", "use1", "interconnect")


@dataclass
class Result:
    service: str
    interval_ms: float
    loss_pct: float
    base_ms: float
    jitter_ms: float
    hours: float
    seed: int
    suspect_per_h: float
    down_per_h: float
    degraded_per_h: float
    point_over_share: float  # share of evaluations whose point-estimate loss is over the degraded threshold
    point_upcrossings_per_h: float
    bound_over_share: float
    bound_upcrossings_per_h: float
    cpu_s: float
    causes: dict[str, int]  # "state/metric of the first reason" -> judgements


def run(
    hours: float,
    loss_pct: float,
    base_ms: float,
    jitter_ms: float,
    seed: int,
    key: PathKey = KEY,
    interval_ms: float | None = None,
) -> Result:
    policy = load_policy(POLICY)
    if interval_ms is not None:
        svc = policy.services[key.service]
        policy = policy.model_copy(
            update={
                "services": {
                    **policy.services,
                    key.service: svc.model_copy(
                        update={"probe": svc.probe.model_copy(update={"interval_ms": interval_ms})}
                    ),
                }
            }
        )
    policy = single_path(policy, key)
    service = policy.services[key.service]
    threshold = policy.sla_classes[service.sla].degraded.loss_pct
    assert threshold is not None, "the SLA class has no degraded loss threshold"
    interval = service.probe.interval_ms / 1000
    probes = int(hours * 3600 / interval)
    rng = random.Random(seed)
    p_loss, base, sd = loss_pct / 100, base_ms / 1000, jitter_ms / 1000

    def rtt(_i: int) -> float | None:
        return None if rng.random() < p_loss else max(0.0, rng.gauss(base, sd))

    counts = {"evals": 0, "point": 0, "bound": 0, "point_up": 0, "bound_up": 0}
    last = {"point": False, "bound": False}

    def watch(s: PathStats) -> None:
        if s.samples < policy.sla_classes[service.sla].hysteresis.min_samples:
            return
        counts["evals"] += 1
        for name, v in (("point", s.loss_pct), ("bound", s.loss_pct_low)):
            over = v is not None and v > threshold
            counts[name] += over
            counts[f"{name}_up"] += over and not last[name]
            last[name] = over

    started = time.process_time()
    transitions = Sim(policy, key, rtt, watch=watch).run(probes)
    cpu = time.process_time() - started
    by = {h: sum(1 for t in transitions if t.new is h) for h in (Health.SUSPECT, Health.DOWN, Health.DEGRADED)}
    causes: dict[str, int] = {}
    for t in transitions:
        if t.new is not Health.UP and t.reasons:
            cause = f"{t.new.value}/{t.reasons[0].metric}"
            causes[cause] = causes.get(cause, 0) + 1
    evals = max(1, counts["evals"])
    return Result(
        key.service,
        service.probe.interval_ms,
        loss_pct,
        base_ms,
        jitter_ms,
        hours,
        seed,
        by[Health.SUSPECT] / hours,
        by[Health.DOWN] / hours,
        by[Health.DEGRADED] / hours,
        counts["point"] / evals,
        counts["point_up"] / hours,
        counts["bound"] / evals,
        counts["bound_up"] / hours,
        round(cpu, 1),
        causes,
    )


def detection(
    loss_pct: float, seeds: int, key: PathKey = KEY, base_ms: float = 40.0, jitter_ms: float = 10.0
) -> list[tuple[float, str, str]]:
    """Seconds from the start of ``loss_pct`` random loss (after 10 clean seconds) to the first judgement
    worse than up, with its state and metric, one per seed (``inf`` if none within 60 s)."""
    policy = single_path(load_policy(POLICY), key)
    interval = policy.services[key.service].probe.interval_ms / 1000
    clean = int(10 / interval)
    out = []
    for seed in range(seeds):
        rng = random.Random(seed)

        def rtt(i: int, rng: random.Random = rng) -> float | None:
            if i >= clean and rng.random() < loss_pct / 100:
                return None
            return max(0.0, rng.gauss(base_ms / 1000, jitter_ms / 1000))

        ts = [t for t in Sim(policy, key, rtt).run(clean + int(60 / interval)) if t.new is not Health.UP]
        if ts:
            out.append((ts[0].at - (T0 + clean * interval), ts[0].new.value, ts[0].reasons[0].metric))
        else:
            out.append((float("inf"), "-", "-"))
    return out


TABLE = [  # (loss %, base ms, jitter sd ms, interval ms)
    (0.5, 40, 10, None),
    (0.5, 40, 20, None),
    (0.5, 40, 10, 10),
    (0.2, 40, 10, None),
    (0.8, 40, 10, None),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hours", type=float, default=2.0, help="simulated hours per configuration")
    ap.add_argument("--loss", type=float, default=0.5, help="true loss, percent")
    ap.add_argument("--base-ms", type=float, default=40.0, help="mean round trip, ms")
    ap.add_argument("--jitter-ms", type=float, default=10.0, help="round-trip standard deviation, ms")
    ap.add_argument("--interval-ms", type=float, default=None, help="probe interval (default: the policy's)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--table", action="store_true", help="run the configurations of docs/false-alarms.md")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument(
        "--detect",
        type=int,
        default=0,
        metavar="SEEDS",
        help="instead: time to the first judgement worse than up at 2-36 %% loss, over SEEDS runs",
    )
    args = ap.parse_args()
    if args.detect:
        print("| loss | median s | max s | first judgement (state/metric, count) |")
        print("|---|---|---|---|")
        for loss in (2.0, 5.0, 10.0, 20.0, 36.0):
            runs = detection(loss, args.detect)
            times = sorted(t for t, _, _ in runs)
            kinds: dict[str, int] = {}
            for _, state, metric in runs:
                kinds[f"{state}/{metric}"] = kinds.get(f"{state}/{metric}", 0) + 1
            print(
                f"| {loss:g} % | {statistics.median(times):.2f} | {times[-1]:.2f} | "
                f"{', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))} |",
                flush=True,
            )
        return
    configs = TABLE if args.table else [(args.loss, args.base_ms, args.jitter_ms, args.interval_ms)]
    results = []
    print(
        "| loss | RTT | interval | hours | suspect/h | down/h | degraded/h | point > 1 % (share, up/h) "
        "| Wilson > 1 % (share, up/h) | causes | CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for loss, base, jitter, interval in configs:
        r = run(args.hours, loss, base, jitter, args.seed, interval_ms=interval)
        results.append(r)
        print(
            f"| {r.loss_pct:g} % | {r.base_ms:g} +- {r.jitter_ms:g} ms | {r.interval_ms:g} ms | {r.hours:g} "
            f"| {r.suspect_per_h:.2f} | {r.down_per_h:.2f} | {r.degraded_per_h:.2f} "
            f"| {100 * r.point_over_share:.2f} %, {r.point_upcrossings_per_h:.1f} "
            f"| {100 * r.bound_over_share:.4f} %, {r.bound_upcrossings_per_h:.2f} "
            f"| {', '.join(f'{k} {v}' for k, v in r.causes.items()) or '-'} | {r.cpu_s:g} |",
            flush=True,
        )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))


if __name__ == "__main__":
    main()
