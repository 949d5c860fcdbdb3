"""load_policy / check_policy as a library: every problem in one PolicyError, warnings for secrets,
and no input, however mangled, escapes as anything but a PolicyError."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from bgpctl.cli.main import cli
from bgpctl.errors import EXIT_REFUSED, PolicyError
from bgpctl.policy import check_policy_text, load_policy, load_policy_text
from bgpctl.policy.model import Policy

HERE = Path(__file__).parent
BASE = (HERE / "good" / "base.yaml").read_text()
EDGE = "    role: edge\n"


def _with(old: str, new: str) -> str:
    assert BASE.count(old) == 1
    return BASE.replace(old, new)


def test_load_policy_text_returns_the_policy() -> None:
    p = load_policy_text(BASE, "base.yaml")
    assert isinstance(p, Policy)
    assert str(p.regions["use1"].paths["interconnect"].next_hop) == "198.18.1.11"


def test_every_problem_in_one_error_sorted_by_line() -> None:
    text = _with("    sla: voice\n", "    sla: voicee\n").replace("local_as: 65000", "local_as: '65000'")
    with pytest.raises(PolicyError) as e:
        load_policy_text(text, "x.yaml")
    assert [p.render() for p in e.value.problems] == [
        "x.yaml:4 speaker.local_as: expected an integer, got the string '65000' (remove the quotes)",
        "x.yaml:30 services.media.sla: unknown SLA class 'voicee' "
        "(did you mean 'voice'? known SLA classes: voice, api)",
    ]
    assert e.value.exit_code == EXIT_REFUSED
    assert str(e.value) == "\n".join(p.render() for p in e.value.problems)


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such file"):
        load_policy(tmp_path / "absent.yaml")


def test_non_utf8_file_is_a_policy_error(tmp_path: Path) -> None:
    f = tmp_path / "latin1.yaml"
    f.write_bytes(b"version: 1\ndescription: caf\xe9\n")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy(f)


def test_field_path_and_line_of_a_nested_list_item() -> None:
    text = _with("    address: 198.18.1.12\n", "    address: 198.18.1.312\n")
    with pytest.raises(PolicyError) as e:
        load_policy_text(text, "f.yaml")
    (p,) = e.value.problems
    assert (p.line, p.path) == (17, "peers[2].address")
    assert p.line is not None and text.splitlines()[p.line - 1].strip() == "address: 198.18.1.312"


def test_alias_fields_keep_their_yaml_spelling_in_paths() -> None:
    text = _with('transit-gateway: { communities: ["7224:7300"] }', "transit-gateway: { med: -1 }")
    with pytest.raises(PolicyError) as e:
        load_policy_text(text, "f.yaml")
    assert [p.path for p in e.value.problems] == ["actions.preferred.transit-gateway.med"]


# --------------------------------------------------------------------------------------------
# secrets: referenced, never read into messages; missing ones warn


def _md5(ref: str) -> str:
    return _with(EDGE, EDGE + f"    md5_password: {ref}\n")


def test_md5_env_missing_is_a_warning_not_an_error() -> None:
    checked = check_policy_text(_md5("{ env: BGPCTL_TEST_MD5 }"), "s.yaml", environ={})
    assert [w.render() for w in checked.warnings] == [
        "s.yaml:12 peers[0].md5_password.env: warning: environment variable BGPCTL_TEST_MD5 is not set "
        "(the daemon reads it at start: set it in the service's environment)"
    ]
    assert checked.policy.peers[0].md5_password is not None


def test_md5_env_set_gives_no_warning_and_its_value_is_never_shown() -> None:
    checked = check_policy_text(
        _md5("{ env: BGPCTL_TEST_MD5 }"), "s.yaml", environ={"BGPCTL_TEST_MD5": "Sup3r-secret-Pw"}
    )
    assert checked.warnings == ()
    assert "Sup3r-secret-Pw" not in repr(checked)


def test_md5_file_checks(tmp_path: Path) -> None:
    key = tmp_path / "edge.key"
    key.write_text("Sup3r-secret-Pw\n")
    key.chmod(0o644)
    loose = check_policy_text(_md5(f"{{ file: {key} }}"), "s.yaml", environ={})
    assert [w.message for w in loose.warnings] == [f"warning: secret file {key} has mode 0644"]
    assert loose.warnings[0].hint == f"make it readable by its owner only: chmod 600 {key}"
    key.chmod(0o600)
    assert check_policy_text(_md5(f"{{ file: {key} }}"), "s.yaml", environ={}).warnings == ()
    gone = check_policy_text(_md5(f"{{ file: {tmp_path / 'gone.key'} }}"), "s.yaml", environ={})
    assert [w.message for w in gone.warnings] == [
        f"warning: secret file {tmp_path / 'gone.key'}: No such file or directory"
    ]


def test_cli_check_prints_warnings_and_still_exits_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BGPCTL_TEST_MD5", raising=False)
    f = tmp_path / "p.yaml"
    f.write_text(_md5("{ env: BGPCTL_TEST_MD5 }"))
    result = CliRunner().invoke(cli, ["policy", "check", str(f)])
    assert result.exit_code == 0
    assert result.stdout == f"{f}: ok (3 peers, 2 regions, 2 services)\n"
    assert "warning: environment variable BGPCTL_TEST_MD5 is not set" in result.stderr
    monkeypatch.setenv("BGPCTL_TEST_MD5", "Sup3r-secret-Pw")
    result = CliRunner().invoke(cli, ["policy", "check", str(f)])
    assert (result.exit_code, result.stderr) == (0, "")
    assert "Sup3r-secret-Pw" not in result.output


def test_the_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPCTL_TEST_MD5", "x")
    assert check_policy_text(_md5("{ env: BGPCTL_TEST_MD5 }"), "s.yaml").warnings == ()
    assert os.environ["BGPCTL_TEST_MD5"] == "x"


# --------------------------------------------------------------------------------------------
# robustness: any mangling of a valid file gives a Policy or a PolicyError with sane problems

_SNIPPETS = [
    "",
    "x",
    "- x",
    "  - ",
    "foo: bar",
    ":",
    "[",
    "{a: 1",
    "'",
    '"',
    "\t",
    "  bogus: 1",
    "null",
    "- { }",
    "  role: edge",
    "peers: 3",
    "  - name: edge",
    "*x",
    "&a b",
    "<<: *a",
    "? k",
    "!!int x",
    "version: 1",
    "  local_as: 1.5",
    "    prefixes: [::/0]",
    "---",
    "...",
    "%YAML 1.2",
    "# c",
    "    table: 101",
    "    sla: [voice]",
    "2001:db8::1",
    "7224:7300",
    "~",
    "0x10",
    "1e3",
]


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=BASE.count("\n")),
            st.sampled_from(["replace", "insert", "delete", "indent"]),
            st.sampled_from(_SNIPPETS),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mangled_files_never_escape_as_anything_but_policy_error(edits: list[tuple[int, str, str]]) -> None:
    lines = BASE.splitlines()
    for where, how, snippet in edits:
        at = min(where, len(lines))
        if how == "replace" and at < len(lines):
            lines[at] = snippet
        elif how == "insert":
            lines.insert(at, snippet)
        elif how == "delete" and at < len(lines):
            del lines[at]
        elif how == "indent" and at < len(lines):
            lines[at] = "  " + lines[at]
    text = "\n".join(lines) + "\n"
    try:
        load_policy_text(text, "m.yaml")
    except PolicyError as e:
        assert e.problems
        for p in e.problems:
            assert p.file == "m.yaml"
            assert p.line is None or 1 <= p.line <= len(lines) + 1
            assert p.message
            assert p.render().startswith("m.yaml")
        shown = [p.line or 0 for p in e.problems]
        assert shown == sorted(shown)
