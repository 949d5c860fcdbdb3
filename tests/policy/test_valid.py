"""The shipped policies pass; `policy show` and `policy schema` agree with the loader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from bgpctl.cli.main import cli
from bgpctl.errors import EXIT_REFUSED
from bgpctl.policy import Policy, load_policy, load_policy_text
from bgpctl.policy.model import Announce, PathState, PeerRole, Withdraw

HERE = Path(__file__).parent
REPO = HERE.parent.parent
POLICIES = sorted((REPO / "policies").glob("*.yaml"))
VALID = [*POLICIES, HERE / "good" / "base.yaml"]
IDS = [str(p.relative_to(REPO)) for p in VALID]


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_shipped_policies_exist() -> None:
    assert {p.name for p in POLICIES} >= {"lab.yaml", "production.yaml"}


def test_policy_check_of_every_shipped_policy_exits_0() -> None:
    code, out, err = _run("policy", "check", *[str(p.relative_to(REPO)) for p in POLICIES])
    assert code == 0, err
    assert out.splitlines() == [
        "policies/lab-ha-cr1.yaml: ok (3 peers, 2 regions, 3 services)",
        "policies/lab-ha-cr2.yaml: ok (3 peers, 2 regions, 3 services)",
        "policies/lab.yaml: ok (3 peers, 2 regions, 3 services)",
        "policies/production.yaml: ok (6 peers, 2 regions, 3 services)",
    ]
    # production names MD5 secrets that do not exist on this machine: warned about, never fatal
    assert all(" warning: " in line for line in err.splitlines())


def test_production_shape() -> None:
    p = load_policy(REPO / "policies" / "production.yaml")
    assert list(p.regions) == ["us-east-1", "us-west-2"]
    for region in p.regions.values():
        assert {name: path.priority for name, path in region.paths.items()} == {"interconnect": 0, "vpn": 10}
        assert all(p.peer(path.peer).role is PeerRole.TRANSIT_GATEWAY for path in region.paths.values())
    assert set(p.services) == {"media", "signalling", "api"}
    tgw = [p.actions.get(s, PeerRole.TRANSIT_GATEWAY) for s in PathState if s is not PathState.DOWN]
    assert [a.communities for a in tgw if isinstance(a, Announce)] == [["7224:7300"], ["7224:7200"], ["7224:7100"]]
    assert isinstance(p.actions.get(PathState.DOWN, PeerRole.EDGE), Withdraw)
    secrets = [peer.md5_password for peer in p.peers if peer.md5_password is not None]
    assert any(s.file for s in secrets) and any(s.env for s in secrets)
    assert any(peer.ttl_security for peer in p.peers)
    assert all(peer.add_path.value == "send" for peer in p.peers if peer.role is PeerRole.EDGE)


@pytest.mark.parametrize("path", VALID, ids=IDS)
@pytest.mark.parametrize("effective", [True, False], ids=["effective", "as-written"])
def test_show_output_reloads_to_an_equal_policy(path: Path, effective: bool) -> None:
    code, out, err = _run("policy", "show", *(["--effective"] if effective else []), str(path.relative_to(REPO)))
    assert code == 0, err
    assert load_policy_text(out, "<show>") == load_policy(path)
    if effective:  # every default is spelt out
        assert "group_updates: true" in out and "fail_static: true" in out
    else:
        assert "group_updates" not in out


def test_python_mode_round_trip_still_works() -> None:
    """Other code builds policies in Python: the friendlier address validators must not get in the way."""
    p = load_policy(REPO / "policies" / "production.yaml")
    assert Policy.model_validate(p.model_dump()) == p


def _schema() -> dict[str, object]:
    code, out, err = _run("policy", "schema")
    assert code == 0, err
    schema = json.loads(out)
    assert isinstance(schema, dict)
    return schema


def test_schema_is_draft_2020_12_and_by_alias() -> None:
    schema = _schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "transit-gateway" in json.dumps(schema)


@pytest.mark.parametrize("path", VALID, ids=IDS)
def test_schema_accepts_the_valid_policies(path: Path) -> None:
    data = YAML(typ="safe", pure=True).load(path.read_text())
    errors = list(Draft202012Validator(_schema()).iter_errors(json.loads(json.dumps(data))))
    assert errors == []


@pytest.mark.parametrize(
    "bad", ["version-2", "unknown-field-typo", "enum-role-typo", "int-quoted", "range-hold-time", "withdraw-with-med"]
)
def test_schema_refuses_structurally_bad_files(bad: str) -> None:
    data = YAML(typ="safe", pure=True).load((HERE / "bad" / f"{bad}.yaml").read_text())
    assert list(Draft202012Validator(_schema()).iter_errors(json.loads(json.dumps(data))))


def test_good_and_bad_on_one_command_line() -> None:
    code, out, err = _run(
        "policy", "check", "tests/policy/good/base.yaml", "tests/policy/bad/xref-unknown-sla.yaml", "policies/lab.yaml"
    )
    assert code == EXIT_REFUSED
    assert out.splitlines() == [
        "tests/policy/good/base.yaml: ok (3 peers, 2 regions, 2 services)",
        "policies/lab.yaml: ok (3 peers, 2 regions, 3 services)",
    ]
    assert err == (HERE / "bad" / "xref-unknown-sla.expected").read_text()


def test_unreadable_inputs_are_problems_too(tmp_path: Path) -> None:
    code, out, err = _run("policy", "check", str(tmp_path / "nope.yaml"), str(tmp_path), "policies/lab.yaml")
    assert code == EXIT_REFUSED
    assert out == "policies/lab.yaml: ok (3 peers, 2 regions, 3 services)\n"
    assert err.splitlines() == [
        f"{tmp_path / 'nope.yaml'}: no such file (check the path)",
        f"{tmp_path}: is a directory (name the policy file itself, e.g. policies/lab.yaml)",
    ]


def test_show_of_a_bad_file_exits_2_with_the_problems() -> None:
    code, out, err = _run("policy", "show", "--effective", "tests/policy/bad/xref-unknown-sla.yaml")
    assert (code, out) == (EXIT_REFUSED, "")
    assert err == (HERE / "bad" / "xref-unknown-sla.expected").read_text()
