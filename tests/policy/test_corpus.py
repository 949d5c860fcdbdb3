"""The golden corpus: every file in bad/ is refused by the real CLI with exactly its expected message.

Each bad file is a small variation of good/base.yaml (which must itself pass). Regenerate the goldens
with ``BGPCTL_REGEN=1 pytest tests/policy/test_corpus.py`` and review the diff by eye.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from bgpctl.cli.main import cli
from bgpctl.errors import EXIT_REFUSED
from tests.golden import check_golden

HERE = Path(__file__).parent
REPO = HERE.parent.parent
BAD = sorted((HERE / "bad").glob("*.yaml"))


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages name the file as given on the command line: relative to the repository, as a user would.
    monkeypatch.chdir(REPO)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_corpus_is_large_enough() -> None:
    assert len(BAD) >= 40
    assert {p.stem for p in BAD} == {p.stem for p in (HERE / "bad").glob("*.expected")}, (
        "every bad file needs its .expected golden and no golden may be left over"
    )


def test_base_of_the_corpus_is_valid() -> None:
    result = CliRunner().invoke(cli, ["policy", "check", _rel(HERE / "good" / "base.yaml")])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "tests/policy/good/base.yaml: ok (3 peers, 2 regions, 2 services)\n"


def test_dual_stack_base_and_example_are_valid() -> None:
    """The dual-* bad files break one thing each of good/dual-stack.yaml; the shipped example passes too."""
    files = [_rel(HERE / "good" / n) for n in ("dual-stack.yaml", "dual-stack-icmp.yaml")]
    result = CliRunner().invoke(cli, ["policy", "check", *files, "policies/examples/dual-stack.yaml"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "tests/policy/good/dual-stack.yaml: ok (4 peers, 2 regions, 2 services)\n"
        "tests/policy/good/dual-stack-icmp.yaml: ok (4 peers, 2 regions, 2 services)\n"
        "policies/examples/dual-stack.yaml: ok (4 peers, 2 regions, 3 services)\n"
    )


@pytest.mark.parametrize("bad", BAD, ids=[p.stem for p in BAD])
def test_bad_policy_is_refused_with_its_golden_message(bad: Path) -> None:
    name = _rel(bad)
    result = CliRunner().invoke(cli, ["policy", "check", name])
    assert result.exit_code == EXIT_REFUSED, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines, "a refused file must say why"
    for line in lines:
        # FILE:LINE [FIELD.PATH:] message (hint)
        assert re.match(rf"^{re.escape(name)}:\d+ \S.* \(.+\)$", line), line
    numbers = [int(re.match(rf"^{re.escape(name)}:(\d+)", line)[1]) for line in lines]  # type: ignore[index]
    assert numbers == sorted(numbers), "problems are sorted by line"
    assert max(numbers) <= len(bad.read_text().splitlines()) + 1
    assert "Sup3r-secret-Pw" not in result.output, "a secret written into a policy is never echoed"
    check_golden(bad.with_suffix(".expected"), result.stderr)
