"""``pip install`` of bgpctl on a host without a C compiler: the product installs and runs, the lab says
how to install it. Slow (builds a wheel, makes a venv, installs the dependencies as wheels only): ``-m slow``.

Any C build fails here: the compiler variables point at /bin/false and PATH holds only the new venv.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.budget import FULL

REPO = Path(__file__).resolve().parents[1]
INSTALL_BUDGET_S = 600.0

pytestmark = [
    pytest.mark.slow,
    # CI's budget (tests/budget.py): it builds the wheel and installs it from the package index (16 s of CPU and
    # the index's time); the developer tier leaves packaging to CI (HYPOTHESIS_PROFILE=ci runs it locally)
    pytest.mark.skipif(not FULL, reason="packaging: CI's budget (CI=true or HYPOTHESIS_PROFILE=ci runs it)"),
]

NO_COMPILER = {"CC": "/bin/false", "CXX": "/bin/false", "LDSHARED": "/bin/false", "CPP": "/bin/false"}


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_BUDGET_S, env=env, check=False)


def _lab_extra() -> list[str]:
    with (REPO / "pyproject.toml").open("rb") as f:
        extra: list[str] = tomllib.load(f)["project"]["optional-dependencies"]["lab"]
    return extra


def test_pip_install_without_a_compiler_then_daemon_help_works_and_lab_says_how_to_install(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    t0 = time.monotonic()
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(REPO)])
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("bgpctl-*.whl")
    with zipfile.ZipFile(wheel) as zf:  # the control API's JSON Schemas are package data
        assert {"bgpctl/schemas/status.schema.json", "bgpctl/schemas/routes.schema.json"} <= set(zf.namelist())
    # a venv without pip of its own: this interpreter's pip installs into it (pip --python), which skips
    # bootstrapping pip for every run; what lands in the venv is the same
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    bin_dir = venv / "bin"
    pip = [sys.executable, "-m", "pip", "--python", str(bin_dir / "python")]
    env = {
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_", "HOME", "LANG", "SSL_"))},
        **NO_COMPILER,
        "PATH": str(bin_dir),
    }

    # --only-binary=:all: every dependency must be a wheel from the index: nothing could be compiled, so pip's
    # cache may be used (a cached wheel that pip once built from an sdist is never a candidate then)
    installed = _run([*pip, "install", "-q", "--no-compile", "--only-binary=:all:", str(wheel)], env=env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    record_property("install_s", round(time.monotonic() - t0, 1))
    listed = _run([*pip, "list", "--format", "freeze"], env=env).stdout.lower()
    assert "netfilterqueue" not in listed and "scapy" not in listed and "matplotlib" not in listed

    # pictures are the extra bgpctl[plot]: without it, --plot says how to install it before doing anything
    policy, png, recording = REPO / "policies" / "lab.yaml", tmp_path / "replay.png", tmp_path / "no-recording.jsonl"
    plot = _run(
        [str(bin_dir / "bgpctl"), "replay", "--policy", str(policy), "--plot", str(png), str(recording)], env=env
    )
    assert (plot.returncode, plot.stderr) == (1, "bgpctl: a picture needs matplotlib: pip install 'bgpctl[plot]'\n")

    daemon = _run([str(bin_dir / "bgpctl"), "daemon", "--help"], env=env)
    assert daemon.returncode == 0, daemon.stderr
    assert "--policy" in daemon.stdout

    for argv in (["lab", "up"], ["demo"]):
        lab = _run([str(bin_dir / "bgpctl"), *argv], env=env)
        assert lab.returncode == 1
        assert lab.stderr == "bgpctl: the lab is not installed: pip install 'bgpctl[lab]' (netfilterqueue missing)\n"

    # the control: the lab extra needs a C build (NetfilterQueue), which this environment refuses
    (nfq,) = [r for r in _lab_extra() if r.lower().startswith("netfilterqueue")]
    lab_extra = _run([*pip, "install", "-q", "--no-cache-dir", "--no-deps", nfq], env=env)
    assert lab_extra.returncode != 0, "installing the lab extra without a compiler should fail here"
    assert "Failed building wheel for NetfilterQueue" in lab_extra.stderr, lab_extra.stderr[-3000:]  # not the network
