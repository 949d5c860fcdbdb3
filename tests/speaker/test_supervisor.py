"""Supervisor, backoff and relay with real child processes (no ExaBGP needed)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.errors import SpeakerError
from bgpctl.speaker import relay
from bgpctl.speaker.backoff import Backoff
from bgpctl.speaker.speaker import _exabgp_binary
from bgpctl.speaker.supervisor import SCRUBBED, Supervisor, scrub
from bgpctl_lab.poll import eventually

LOG: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
    structlog.testing.CapturingLogger(), wrapper_class=structlog.make_filtering_bound_logger(10)
)
RESTART_BUDGET = "supervisor_restart"


@given(st.integers(1, 50), st.floats(0, 1, exclude_max=True))
def test_backoff_grows_bounded_with_jitter(attempt: int, draw: float) -> None:
    b = Backoff(initial_s=0.5, factor=2.0, maximum_s=30.0, jitter=0.2)
    base = min(30.0, 0.5 * 2 ** (attempt - 1))
    assert base * 0.8 <= b.delay(attempt, draw) <= base * 1.2


def test_backoff_sequence() -> None:
    b = Backoff(initial_s=1.0, factor=2.0, maximum_s=5.0, jitter=0.0)
    assert [b.delay(n, 0.3) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_child_exiting_zero_is_restarted_with_growing_delays(tmp_path: Path) -> None:
    """ExaBGP exits 0 when it gives up on its helper: rc 0 is a crash too. Each restart waits its backoff
    delay (0.2, 0.4, 0.8 s), measured from the exit the supervisor saw to the next start: a lower bound that
    holds however loaded the machine (start to start would add each child's start-up, seconds when starved)."""
    marker = tmp_path / "starts"
    script = f"open({str(marker)!r}, 'a').write('x'); import sys; sys.exit(0)"

    async def run() -> tuple[list[float], list[float]]:
        starts: list[float] = []
        exits: list[float] = []
        sup = Supervisor(
            [sys.executable, "-c", script],
            LOG,
            backoff=Backoff(initial_s=0.2, maximum_s=1.0, jitter=0),
            on_start=lambda _pid: starts.append(time.monotonic()),
            on_exit=lambda _rc: exits.append(time.monotonic()),
            rng=random.Random(1),
        )
        await sup.start()
        await asyncio.to_thread(
            eventually,
            "four exits",
            budget=RESTART_BUDGET,
            probe=lambda: list(sup.exits),
            check=lambda exits: [] if len(exits) >= 4 else [f"exits: {exits}"],
        )
        await sup.stop()
        assert sup.exits[:4] == [0, 0, 0, 0]
        return starts, exits

    starts, exits = asyncio.run(run())
    waits = [start - exit for exit, start in zip(exits, starts[1:], strict=False)]
    assert len(waits) >= 3, (starts, exits)
    for wait, delay in zip(waits, (0.2, 0.4, 0.8), strict=False):
        assert wait >= delay - 0.01, (waits, "a restart came before its backoff delay")
    assert len(marker.read_text()) == len(starts)


def test_stop_escalates_to_sigkill_for_a_child_that_ignores_sigterm() -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )

    async def run() -> None:
        sup = Supervisor([sys.executable, "-c", script], LOG, stop_grace_s=0.5)
        await sup.start()
        await asyncio.to_thread(
            eventually,
            "child printed ready",
            budget=RESTART_BUDGET,
            probe=lambda: list(sup.recent),
            check=lambda lines: [] if "ready" in lines else [f"recent: {lines!r}"],
            interval_s=0.02,
        )
        pid = sup.pid
        assert pid is not None
        began = time.monotonic()
        await sup.stop()
        took = time.monotonic() - began
        assert sup.exits == [-signal.SIGKILL]
        assert 0.5 <= took < 3.0
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        assert sup.pid is None

    asyncio.run(run())


def test_first_start_failure_is_a_clear_error() -> None:
    async def run() -> None:
        sup = Supervisor(["/nonexistent/exabgp", "server"], LOG)
        with pytest.raises(SpeakerError, match=r"cannot start ExaBGP .* speaker.exabgp.binary"):
            await sup.start()

    asyncio.run(run())


def test_relay_moves_lines_both_ways_and_ends_with_stdin(tmp_path: Path) -> None:
    path = str(tmp_path / "api.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(10)
    proc = subprocess.Popen([sys.executable, relay.__file__, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        conn, _ = server.accept()
        conn.settimeout(10)
        stream = conn.makefile("rwb")
        assert stream.readline() == f"bgpctl-relay 1 {os.getpid()}\n".encode()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b'{"type": "state"}\ndone\n')
        proc.stdin.flush()
        assert stream.readline() == b'{"type": "state"}\n'
        assert stream.readline() == b"done\n"
        stream.write(b"neighbor 198.18.1.1 announce eor ipv4 unicast\n")
        stream.flush()
        assert proc.stdout.readline() == b"neighbor 198.18.1.1 announce eor ipv4 unicast\n"
        proc.stdin.close()  # ExaBGP goes away
        assert proc.wait(10) == relay.EXIT_OK
        assert stream.readline() == b""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.close()


def test_relay_exits_when_bgpctl_closes_the_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "api.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(10)
    proc = subprocess.Popen([sys.executable, relay.__file__, path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        conn, _ = server.accept()
        conn.recv(100)
        conn.close()
        assert proc.wait(10) == relay.EXIT_SOCKET_LOST
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.close()


# ------------------------------------------------------------------------------------------
# secrets in ExaBGP's output

SECRET = "Zq9-secret-K3y"
REJECTED_CONFIG = f"""\
neighbor 198.51.100.1 {{
    router-id 198.51.100.2;
    local-address 198.51.100.2;
    local-as 65000;
    peer-as 65001;
    md5-password "{SECRET}";
    hold-time {SECRET};
}}
"""
"""A configuration the real ExaBGP rejects, echoing the line it failed on: here the password's text (as in a
password with a character ExaBGP cannot parse, which bgpctl now refuses before ExaBGP sees it)."""


def _exabgp_output_with(tmp_path: Path, secrets: list[str]) -> list[str]:
    """Run the real ExaBGP on REJECTED_CONFIG under the Supervisor; every log call it made, as text."""
    conf, env = tmp_path / "exabgp.conf", tmp_path / "exabgp.env"
    conf.write_text(REJECTED_CONFIG)
    env.write_text(
        '[exabgp.daemon]\ndaemonize = false\npid = ""\n[exabgp.log]\ndestination = "stdout"\n'
        "[exabgp.api]\ncli = false\n"
    )
    capture = structlog.testing.CapturingLogger()
    log: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        capture, wrapper_class=structlog.make_filtering_bound_logger(10)
    )

    async def run() -> None:
        sup = Supervisor(
            [_exabgp_binary("exabgp"), "--env-file", str(env), "server", str(conf)],
            log,
            backoff=Backoff(initial_s=30.0, maximum_s=30.0, jitter=0),
            secrets=secrets,
        )
        await sup.start()
        try:
            await asyncio.to_thread(
                eventually,
                "ExaBGP exits on the configuration it rejects",
                budget="exabgp_refuses_config",
                probe=lambda: list(sup.exits),
                check=lambda exits: [] if exits else ["still running"],
            )
        finally:
            await sup.stop()
        assert sup.exits[0] != 0, "ExaBGP accepted the configuration: the test shows nothing"

    asyncio.run(run())
    return [f"{c.method_name} {c.args} {c.kwargs}" for c in capture.calls]


def test_exabgp_output_is_scrubbed_of_the_md5_password(tmp_path: Path) -> None:
    unscrubbed = _exabgp_output_with(tmp_path, [])
    assert any(SECRET in line for line in unscrubbed), "ExaBGP no longer echoes the line: find another rejection"
    logged = _exabgp_output_with(tmp_path, [SECRET, "unused-other-key"])
    assert not any(SECRET in line for line in logged), logged
    assert any("hold-time *** ;" in line for line in logged), logged
    exited = [line for line in logged if "exabgp.exited" in line or "exabgp_exited" in line]
    assert exited and SECRET not in exited[0] and "***" in exited[0], "last_output of the exit line is scrubbed too"


_NO_STAR = st.characters(blacklist_characters="*")


@given(st.text(_NO_STAR, max_size=60), st.lists(st.text(_NO_STAR, min_size=1, max_size=8), max_size=4))
def test_scrub_leaves_no_secret(line: str, secrets: list[str]) -> None:
    out = scrub(line, secrets)
    assert not any(secret in out for secret in secrets)
    if not any(secret in line for secret in secrets):
        assert out == line
    else:
        assert SCRUBBED in out
