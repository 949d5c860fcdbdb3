"""The lab's relay of the provider's health events: the HTTP source of policies/lab.yaml's ``relay`` signal.

A stdlib ``ThreadingHTTPServer`` on the edge node (lab/services.yaml: ``198.18.1.1:8080``) that serves the
files of one directory, read anew at every request, so whoever writes the directory changes what the relay
says (tests/daemon/test_signals_lab.py writes ``health.json`` atomically). At start it writes
:data:`NO_SIGNAL` (no region or path marked: the signal is fresh and says nothing) unless the directory
already has a ``health.json``. Bounded by ``--seconds``, stopped by SIGTERM, like the lab's other services.

    python -m bgpctl_lab.signal_relay --listen 198.18.1.1:8080 --directory DIR --seconds 86400

Prints one JSON line when it serves (``{"event": "relay.ready", ...}``); requests are not logged.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
from collections.abc import Sequence
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from bgpctl import events

DOCUMENT = "health.json"
NO_SIGNAL: dict[str, Any] = {"regions": {}, "paths": {}}
"""What the relay says while nobody changed it: nothing (docs/signals.md, "The document")."""


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None  # one GET a second from the daemon: not worth a line each


def write_document(directory: Path, doc: dict[str, Any]) -> None:
    """Replace the relay's document atomically (a request never reads half a file)."""
    tmp = directory / f".{DOCUMENT}.tmp"
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, directory / DOCUMENT)


def serve(host: str, port: int, directory: Path, seconds: float) -> None:
    """Serve ``directory`` on ``host:port`` until ``seconds`` pass or SIGTERM/SIGINT."""
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / DOCUMENT).exists():
        write_document(directory, NO_SIGNAL)
    server = ThreadingHTTPServer((host, port), partial(_Handler, directory=str(directory)))
    server.daemon_threads = True

    def stop(_sig: int = 0, _frame: FrameType | None = None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()  # shutdown() waits for serve_forever

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    print(
        json.dumps({"event": events.RELAY_READY, "listen": f"{host}:{port}", "directory": str(directory)}), flush=True
    )
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        timer.cancel()
        server.server_close()


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bgpctl_lab.signal_relay", description=__doc__.splitlines()[0])
    ap.add_argument("--listen", required=True, help="ADDR:PORT")
    ap.add_argument("--directory", required=True, type=Path, help="the files served (health.json)")
    ap.add_argument("--seconds", type=float, required=True, help="exit after this long (a lab process is bounded)")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        ap.error(f"--listen {args.listen!r}: give ADDR:PORT, e.g. 198.18.1.1:8080")
    if not 0 < args.seconds <= 86400:
        ap.error("--seconds: more than 0, at most 86400")
    serve(host, int(port), args.directory, args.seconds)


if __name__ == "__main__":
    main()
