"""``bgpctl --help`` starts fast: the root command imports no sub-command, nothing heavy, not the lab.

The timing itself is a benchmark (bench/bench_cli_startup.py, docs/benchmarks.md); here only what is
imported is checked, which is what makes it fast and does not depend on the machine's load.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

from bgpctl.cli import main

HEAVY = (
    "pyroute2",
    "scapy",
    "netfilterqueue",
    "bgpctl_lab",
    "exabgp",
    "pydantic",
    "structlog",
    "jsonschema",
    "ruamel",
    "prometheus_client",
    "matplotlib",
)


def _imported_after(code: str) -> list[str]:
    """Top-level packages of HEAVY imported by ``code`` in a fresh interpreter."""
    script = "\n".join(
        [
            "import json, sys",
            textwrap.dedent(code),
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))",
        ]
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    imported: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return imported


def test_importing_the_cli_imports_nothing_heavy() -> None:
    assert _imported_after("import bgpctl.cli.main") == []


@pytest.mark.parametrize("argv", [["--help"], ["daemon", "--help"], ["status", "--help"], ["routes", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    code = f"""
        from bgpctl.cli.main import cli
        try:
            cli({argv!r}, prog_name="bgpctl")
        except SystemExit as e:
            assert e.code == 0, e.code
    """
    assert _imported_after(code) == []


@pytest.mark.parametrize("argv", [["replay", "--help"], ["lab", "drill", "--help"]])
def test_the_commands_that_draw_import_matplotlib_only_to_draw(argv: list[str]) -> None:
    code = f"""
        from bgpctl.cli.main import cli
        try:
            cli({argv!r}, prog_name="bgpctl")
        except SystemExit as e:
            assert e.code == 0, e.code
    """
    assert "matplotlib" not in _imported_after(code)


@pytest.mark.parametrize("name", sorted(main.COMMANDS))
def test_the_help_table_says_what_each_command_says_itself(name: str) -> None:
    command = main.load(name)
    assert command.name == name
    assert main.COMMANDS[name].short_help == command.get_short_help_str(limit=300)


def test_every_command_is_listed_by_help() -> None:
    result = CliRunner().invoke(main.cli, ["--help"])
    assert result.exit_code == 0
    for name in main.COMMANDS:
        assert f"\n  {name} " in result.output


@pytest.mark.parametrize("argv", [["lab", "up"], ["lab", "--help"], ["demo"]])
def test_without_the_lab_its_commands_say_how_to_install_it(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> object:
        return None if name == "netfilterqueue" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = CliRunner().invoke(main.cli, argv)
    assert result.exit_code == 1
    assert result.output == "bgpctl: the lab is not installed: pip install 'bgpctl[lab]' (netfilterqueue missing)\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_the_lab_commands_load_when_the_lab_is_installed() -> None:
    assert main.lab_missing() is None
    lab = main.load("lab")
    assert isinstance(lab, click.Group)
    assert {"up", "down", "drill", "drills", "fault", "meter"} <= set(lab.commands)
