"""Three namespaces for the reflector's hostile-packet tests (prefix ``tbrfl``), built and removed with ``ip``.

    x --xa/ax-- a --ab/ba-- b
    x 198.18.240.1/30, a 198.18.240.2/30 and 198.18.241.1/30, b 198.18.241.2/30

``x`` is the attacker: it sends datagrams with any source address (``a`` has reverse-path filtering off,
so a datagram "from b" coming in from x is delivered, as on a real network without BCP 38). ``a`` and
``b`` run reflectors. ``a`` has an nft table ``tbrfl`` counting UDP on the wire: every datagram ``a``
sends out of its veths (``a_sent``), every datagram it receives from ``b`` (``from_b``) and every one to port 862
(``stamp_in``). Veths are created inside the namespaces, never in the
root namespace; everything is removed on exit, also on failure, and every process started here is
stopped by its pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from bgpctl.probe.netns import entered

PREFIX = "tbrfl"
X, A_X, A, B = "198.18.240.1", "198.18.240.2", "198.18.241.1", "198.18.241.2"
STOP_BUDGET_S = 15.0
START_BUDGET_S = 30.0

_NFT = """
table inet tbrfl {
    counter a_sent { }
    counter from_b { }
    counter stamp_in { }
    chain out {
        type filter hook output priority 0; policy accept;
        oifname { "ax", "ab" } meta l4proto udp counter name a_sent
    }
    chain in {
        type filter hook input priority 0; policy accept;
        ip saddr 198.18.241.2 meta l4proto udp counter name from_b
        udp dport 862 counter name stamp_in
    }
}
"""


def sh(*argv: str, input: str | None = None) -> str:
    res = subprocess.run(argv, capture_output=True, text=True, check=False, input=input, timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res.stdout


@dataclass
class Topo:
    tag: str
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def ns(self, node: str) -> str:
        return f"{PREFIX}_{self.tag}_{node}"

    def ip(self, node: str, *args: str) -> str:
        return sh("ip", "-n", self.ns(node), *args)

    def counters(self) -> dict[str, int]:
        out = sh("ip", "netns", "exec", self.ns("a"), "nft", "-j", "list", "counters", "table", "inet", PREFIX)
        data = json.loads(out)
        return {o["counter"]["name"]: int(o["counter"]["packets"]) for o in data["nftables"] if "counter" in o}

    def raw_sender(self, node: str) -> socket.socket:
        """A raw IPv4 socket in ``node`` that sends whole packets (headers included, any source)."""
        with entered(self.ns(node)):
            return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)

    def spawn(self, node: str, *argv: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns(node), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.procs.append(proc)
        return proc

    def reflector(self, node: str, *args: str) -> subprocess.Popen[str]:
        """``bgpctl reflector ARGS`` in ``node``; returns once it printed its ready line."""
        proc = self.spawn(node, sys.executable, "-m", "bgpctl", "reflector", *args)
        assert proc.stdout is not None
        readable, _, _ = select.select([proc.stdout], [], [], START_BUDGET_S)
        ready = proc.stdout.readline() if readable else ""
        if '"reflector.ready"' not in ready:
            _, err = proc.communicate(timeout=STOP_BUDGET_S)
            raise RuntimeError(f"reflector in {node} did not start: {ready!r} {err}")
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=STOP_BUDGET_S)
        self.procs.clear()


def stopped(proc: subprocess.Popen[str], *, sig: int | None = signal.SIGTERM) -> tuple[dict[str, int], float]:
    """Stop a reflector (or wait for it, ``sig=None``); its ``reflector.stopped`` counters and the
    seconds from the signal (or from this call) to its exit."""
    start = time.monotonic()
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=STOP_BUDGET_S)
    took = time.monotonic() - start
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    last = json.loads(out.strip().splitlines()[-1])
    assert last.pop("event") == "reflector.stopped"
    return last, took


def _build(t: Topo) -> None:
    for node in ("x", "a", "b"):
        sh("ip", "netns", "add", t.ns(node))
        t.ip(node, "link", "set", "lo", "up")
    t.ip("x", "link", "add", "xa", "type", "veth", "peer", "name", "ax", "netns", t.ns("a"))
    t.ip("a", "link", "add", "ab", "type", "veth", "peer", "name", "ba", "netns", t.ns("b"))
    t.ip("x", "addr", "add", f"{X}/30", "dev", "xa")
    t.ip("a", "addr", "add", f"{A_X}/30", "dev", "ax")
    t.ip("a", "addr", "add", f"{A}/30", "dev", "ab")
    t.ip("b", "addr", "add", f"{B}/30", "dev", "ba")
    for node, ifname in (("x", "xa"), ("a", "ax"), ("a", "ab"), ("b", "ba")):
        t.ip(node, "link", "set", ifname, "up")
    t.ip("x", "route", "add", "198.18.241.0/30", "via", A_X)
    for conf in ("all", "default", "ax"):
        sh("ip", "netns", "exec", t.ns("a"), "sysctl", "-q", "-w", f"net.ipv4.conf.{conf}.rp_filter=0")
    sh("ip", "netns", "exec", t.ns("a"), "nft", "-f", "-", input=_NFT)


def _teardown(t: Topo) -> None:
    for node in ("x", "a", "b"):
        subprocess.run(["ip", "netns", "del", t.ns(node)], capture_output=True, check=False, timeout=30)


@contextlib.contextmanager
def topology() -> Iterator[Topo]:
    t = Topo(str(os.getpid()))
    _teardown(t)  # left over by an earlier run with this pid that died before its clean-up
    try:
        _build(t)
        yield t
    finally:
        t.close()
        _teardown(t)
