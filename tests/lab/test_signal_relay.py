"""The lab's relay of health events (bgpctl_lab.signal_relay) and the services' ``install`` (no lab needed):
the relay is a real HTTP server on loopback here, read with the daemon's own document parser."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bgpctl import events
from bgpctl.errors import LabError
from bgpctl.policy.load import load_policy
from bgpctl.signals.document import parse_document
from bgpctl_lab.runner import install_files
from bgpctl_lab.services import load_services
from bgpctl_lab.signal_relay import DOCUMENT, NO_SIGNAL, write_document
from tests.lab.helpers import REPO

LAB_POLICY = REPO / "policies" / "lab.yaml"
READY_S = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(directory: Path, seconds: float) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bgpctl_lab.signal_relay", "--listen", f"127.0.0.1:{port}", "--directory",
         str(directory), "--seconds", f"{seconds:g}"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())  # printed once it listens
    assert ready == {"event": events.RELAY_READY, "listen": f"127.0.0.1:{port}", "directory": str(directory)}
    return proc, f"http://127.0.0.1:{port}/{DOCUMENT}"


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200
        body: bytes = r.read()
        return body


def test_the_relay_says_nothing_until_its_document_is_changed_and_stops_on_sigterm(tmp_path: Path) -> None:
    policy = load_policy(LAB_POLICY)
    proc, url = start(tmp_path / "relay", seconds=60)
    try:
        doc = parse_document("relay", fetch(url), policy)  # what the daemon reads: valid, no mark
        assert json.loads(fetch(url)) == NO_SIGNAL and doc.marks == ()
        write_document(tmp_path / "relay", {"regions": {"use1": {"state": "down", "reason": "lab"}}})
        changed = parse_document("relay", fetch(url), policy)  # read anew at every request
        assert [(m.region, m.path, m.health.value, m.reason) for m in changed.marks] == [("use1", None, "down", "lab")]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.wait()


def test_the_relay_keeps_a_document_already_there_and_is_bounded_by_seconds(tmp_path: Path) -> None:
    write_document(tmp_path, {"regions": {"usw2": {"state": "degraded"}}})
    proc, url = start(tmp_path, seconds=1.5)
    t0 = time.monotonic()
    try:
        assert json.loads(fetch(url)) == {"regions": {"usw2": {"state": "degraded"}}}
        assert proc.wait(timeout=10) == 0 and time.monotonic() - t0 < 5
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "8080", "--directory", "d", "--seconds", "5"], "give ADDR:PORT"),
        (["--listen", "127.0.0.1:http", "--directory", "d", "--seconds", "5"], "give ADDR:PORT"),
        (["--listen", "127.0.0.1:8080", "--directory", "d", "--seconds", "0"], "--seconds: more than 0"),
        (["--listen", "127.0.0.1:8080", "--directory", "d"], "the following arguments are required: --seconds"),
    ],
)
def test_the_relay_refuses_bad_options_in_one_line(args: list[str], message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bgpctl_lab.signal_relay", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr


# ------------------------------------------------------------------------------------------ install


def test_the_lab_daemon_runs_an_installed_copy_and_the_relay_is_a_service() -> None:
    services = load_services(REPO / "lab" / "services.yaml")
    (daemon,) = [s for s in services["cr"] if s.name == "daemon"]
    node_dir = Path("/run/lab/x/cr")
    installs = daemon.resolved_install(root=REPO, node_dir=node_dir)
    assert installs == [(LAB_POLICY, node_dir / "policy.yaml")]
    argv = daemon.resolved_argv(root=REPO, node_dir=node_dir)
    assert argv[argv.index("--policy") + 1] == str(node_dir / "policy.yaml")
    (relay,) = [s for s in services["edge"] if s.name == "signal-relay"]
    relay_argv = relay.resolved_argv(root=REPO, node_dir=Path("/run/lab/x/edge"))
    assert relay_argv[relay_argv.index("--listen") + 1] == "198.18.1.1:8080"  # policies/lab.yaml signals.relay
    assert str(load_policy(LAB_POLICY).signals["relay"].url) == "http://198.18.1.1:8080/health.json"  # type: ignore[union-attr]


def test_install_copies_once_and_keeps_a_changed_file_unless_replaced(tmp_path: Path) -> None:
    services = tmp_path / "services.yaml"
    services.write_text(
        'cr:\n  - name: daemon\n    install: [{from: "{root}/p.yaml", to: "{node_dir}/policy.yaml"}]\n    argv: [x]\n'
    )
    (svc,) = load_services(services)["cr"]
    (tmp_path / "p.yaml").write_text("original\n")
    node = tmp_path / "node"
    assert install_files(svc, root=tmp_path, node_dir=node) == [node / "policy.yaml"]
    (node / "policy.yaml").write_text("changed by a drill\n")
    assert install_files(svc, root=tmp_path, node_dir=node) == []  # a restart does not undo a change
    assert (node / "policy.yaml").read_text() == "changed by a drill\n"
    assert install_files(svc, root=tmp_path, node_dir=node, replace=True) == [node / "policy.yaml"]
    assert (node / "policy.yaml").read_text() == "original\n"
    (tmp_path / "p.yaml").unlink()
    with pytest.raises(LabError, match=r"lab/services.yaml: daemon: cannot install .*/p\.yaml: No such file"):
        install_files(svc, root=tmp_path, node_dir=tmp_path / "other")


@pytest.mark.parametrize(
    ("install", "message"),
    [
        ('[{from: "a"}]', r"install\.0\.to\s+Field required"),
        ('[{from: "a", to: "b", mode: 600}]', r"install\.0\.mode\s+Extra inputs"),
        ('[{from: "", to: "b"}]', r"install\.0\.from\s+String should have at least 1 character"),
        ('"{root}/p.yaml"', r"install\s+Input should be a valid list"),
    ],
)
def test_a_bad_install_is_refused_naming_the_field(tmp_path: Path, install: str, message: str) -> None:
    services = tmp_path / "services.yaml"
    services.write_text(f"cr:\n  - name: daemon\n    install: {install}\n    argv: [x]\n")
    with pytest.raises(LabError, match=message):
        load_services(services)
