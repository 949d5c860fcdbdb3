"""A webhook receiver for the lab and the tests: stdlib http.server, one JSON line per POST it gets.

Each line: ``{"received": UNIX_TIME, "path": ..., "headers": {...}, "body": TEXT, "status": ANSWERED}``,
written and flushed as the request arrives (before the answer), so a test reads what came and when. It
checks nothing itself: the test verifies the signature with the key it gave the daemon. ``statuses``
answers the first requests with those codes (then 204), to exercise the sender's retries.

Run in a lab node: ``python -m bgpctl_lab.hook_receiver --listen 198.18.1.1:8080 --out FILE --seconds 300``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

from bgpctl import events

MAX_BODY = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        received = time.time()
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
        body = self.rfile.read(length)
        status = self.server.next_status()
        self.server.record(
            {
                "received": received,
                "path": self.path,
                "headers": dict(self.headers.items()),
                "body": body.decode("utf-8", "replace"),
                "status": status,
            }
        )
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None  # the JSON lines are the log


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], out: BinaryIO, statuses: Sequence[int] = ()) -> None:
        super().__init__(addr, _Handler)
        self.out, self._statuses, self._lock = out, list(statuses), threading.Lock()
        self.requests: list[dict[str, Any]] = []

    def next_status(self) -> int:
        with self._lock:
            return self._statuses.pop(0) if self._statuses else 204

    def record(self, item: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append(item)
            self.out.write(json.dumps(item, sort_keys=True).encode() + b"\n")
            self.out.flush()


@contextmanager
def receiving(out: Path, statuses: Sequence[int] = (), host: str = "127.0.0.1") -> Iterator[Receiver]:
    """A receiver on a free port of ``host`` in a thread, for the length of the block."""
    with out.open("ab") as f:
        server = Receiver((host, 0), f, statuses)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)


def read_requests(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, help="ADDR:PORT")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seconds", type=float, default=300.0, help="exit after this long (a lab process is bounded)")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    with args.out.open("ab") as f:
        server = Receiver((host, int(port)), f)
        threading.Timer(args.seconds, server.shutdown).start()
        print(json.dumps({"event": events.RECEIVER_READY, "listen": args.listen}), flush=True)
        server.serve_forever(poll_interval=0.05)
        server.server_close()


if __name__ == "__main__":
    main()
