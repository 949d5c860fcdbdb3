"""Benchmark: what outside signals cost (docs/signals.md). Prints one JSON object.

    .venv/bin/python bench/bench_signals.py [--calls 20000] [--fetches 200]

* ``decide_us``: one decide() of the lab policy's six paths, every path steady UP on a clean window,
  per call: without a mark, with a standing DEGRADED mark on use1 and with a standing DOWN mark on use1
  (the loop calls decide() at every probe slot: about 50 times a second in the lab);
* ``feed_us``: one :meth:`SignalFeed.feed` (verdict, controller, no change) per evaluation, one signal;
* ``http_read_ms``: one read of an HTTP signal (httpx GET of a 100-byte document from a stdlib server on
  127.0.0.1, parse, verdict), median and p95 of ``--fetches`` reads, on one client as the daemon uses.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import platform
import statistics
import tempfile
import threading
import time
import timeit
from pathlib import Path
from typing import Any

import httpx
import structlog

from bgpctl.core.controller import Controller
from bgpctl.core.decide import decide, signal_marks
from bgpctl.core.types import Health, PathStats, SignalMark
from bgpctl.daemon.sinks import Metrics
from bgpctl.policy.load import load_policy
from bgpctl.signals.feed import SignalFeed

REPO = Path(__file__).resolve().parent.parent
DOC = b'{"regions": {"use1": {"state": "ok"}, "usw2": {"state": "degraded", "reason": "bench"}}}'


def _decide_us(calls: int) -> dict[str, float]:
    policy = load_policy(REPO / "policies" / "lab.yaml")
    keys = Controller(policy).keys
    stats = {
        k: PathStats(100, 0, 0, 10.0, 12.0, 1.0, 4.4, loss_pct_low=0.0, mos_high=4.4, last_rtt_ms=10.0) for k in keys
    }
    health = decide(policy, stats, {}, 0.0).health
    out = {}
    for label, mark in (("no_mark", None), ("degraded_mark", Health.DEGRADED), ("down_mark", Health.DOWN)):
        marks = signal_marks(policy, [SignalMark("bench", "use1", None, mark, "bench")]) if mark else None
        h = decide(policy, stats, health, 1.0, signals=marks).health
        best = min(timeit.repeat(lambda: decide(policy, stats, h, 2.0, signals=marks), number=calls, repeat=5))  # noqa: B023
        out[label] = round(best / calls * 1e6, 2)
    return out


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a relay behind a real web server would
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall per answer

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(DOC)))
        self.end_headers()
        self.wfile.write(DOC)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _http_and_feed(fetches: int, calls: int) -> dict[str, Any]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/health.json"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "policy.yaml"
            base = (REPO / "policies" / "lab.yaml").read_text().split("\nsignals:")[0]
            p.write_text(base + f"\nsignals:\n  relay: {{ kind: http, url: '{url}', max_age_s: 60 }}\n")
            policy = load_policy(p)

        async def run() -> tuple[list[float], float]:
            async with httpx.AsyncClient(trust_env=False) as client:
                feed = SignalFeed(policy, structlog.wrap_logger(structlog.ReturnLogger()), Metrics(), client=client)
                ctl = Controller(policy)
                source = feed.sources["relay"]
                times = []
                for _ in range(fetches):
                    t0 = time.perf_counter()
                    reading = await source.read()
                    feed.take("relay", reading)
                    times.append((time.perf_counter() - t0) * 1000)
                assert reading.error is None, reading.error
                feed.feed(ctl, time.time())
                t0 = time.perf_counter()
                for _ in range(calls):
                    feed.feed(ctl, time.time())
                return times, (time.perf_counter() - t0) / calls * 1e6

        times, feed_us = asyncio.run(run())
    finally:
        srv.shutdown()
        srv.server_close()
    times.sort()
    return {
        "http_read_ms": {
            "median": round(statistics.median(times), 2),
            "p95": round(times[int(0.95 * (len(times) - 1))], 2),
            "n": len(times),
        },
        "feed_us": round(feed_us, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--fetches", type=int, default=200)
    args = ap.parse_args()
    out = {
        "python": platform.python_version(),
        "httpx": httpx.__version__,
        "decide_us": _decide_us(args.calls),
        **_http_and_feed(args.fetches, args.calls),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
