"""The API process ExaBGP runs: relays between ExaBGP's pipes and the unix socket bgpctl listens on.

    python /path/to/relay.py SOCKET

bgpctl is the parent and ExaBGP its child (docs/design.md, "ExaBGP facts", 3); this helper is ExaBGP's child and only
moves bytes. It is run as a script (stdlib only, no bgpctl import) so that it starts in milliseconds.

* First it sends ``bgpctl-relay 1 <ExaBGP pid>`` so bgpctl can tell which ExaBGP is talking.
* A thread drains ExaBGP's stdout-to-us (our stdin) continuously into the socket; ExaBGP's reactor
  stalls if its API process does not read.
* The main thread copies socket lines to our stdout (ExaBGP's commands), flushed one by one.
* Any end (stdin EOF, socket EOF or error) ends the process. ExaBGP runs with ``api.terminate = true``,
  so it then exits too, and bgpctl's supervisor restarts it: one recovery path for every fault.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

CONNECT_BUDGET_S = 10.0
EXIT_OK = 0
EXIT_NO_SOCKET = 3
EXIT_SOCKET_LOST = 4
EXIT_USAGE = 64


def _connect(path: str) -> socket.socket:
    deadline = time.monotonic() + CONNECT_BUDGET_S
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError as e:
            sock.close()
            if time.monotonic() >= deadline:
                sys.stderr.write(f"bgpctl-relay: cannot connect to {path}: {e}\n")
                sys.stderr.flush()
                os._exit(EXIT_NO_SOCKET)
            time.sleep(0.1)


def _pump_stdin(sock: socket.socket) -> None:
    stdin = sys.stdin.buffer
    try:
        while True:
            chunk = stdin.readline()
            if not chunk:
                os._exit(EXIT_OK)  # ExaBGP closed our stdin: it is going away
            sock.sendall(chunk)
    except OSError as e:
        sys.stderr.write(f"bgpctl-relay: socket write failed: {e}\n")
        sys.stderr.flush()
        os._exit(EXIT_SOCKET_LOST)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: relay.py SOCKET\n")
        return EXIT_USAGE
    sock = _connect(argv[1])
    sock.sendall(f"bgpctl-relay 1 {os.getppid()}\n".encode())
    threading.Thread(target=_pump_stdin, args=(sock,), daemon=True, name="stdin-pump").start()
    out = sys.stdout.buffer
    reader = sock.makefile("rb")
    try:
        for line in reader:
            out.write(line)
            out.flush()
    except OSError as e:
        sys.stderr.write(f"bgpctl-relay: socket read failed: {e}\n")
        sys.stderr.flush()
        os._exit(EXIT_SOCKET_LOST)
    os._exit(EXIT_SOCKET_LOST)  # bgpctl closed the socket


if __name__ == "__main__":
    sys.exit(main(sys.argv))
