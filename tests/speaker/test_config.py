"""ExaBGP configuration rendering; every rendered file is checked by the real ``exabgp validate``."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bgpctl.errors import SpeakerError
from bgpctl.policy.load import load_policy
from bgpctl.policy.model import Policy
from bgpctl.speaker import config
from tests.speaker.lab import make_policy

ROOT = Path(__file__).resolve().parents[2]
EXABGP = Path(sys.executable).parent / "exabgp"  # the venv the tests run in
RELAY = str(ROOT / "bgpctl" / "speaker" / "relay.py")


def _relay(tmp_path: Path) -> list[str]:
    return [sys.executable, RELAY, str(tmp_path / "api.sock")]


def _validate(tmp_path: Path, rendered: config.Rendered) -> subprocess.CompletedProcess[str]:
    conf, env = tmp_path / "exabgp.conf", tmp_path / "exabgp.env"
    config.write_private(conf, rendered.config)
    config.write_private(env, rendered.env)
    return subprocess.run(
        [str(EXABGP), "--env-file", str(env), "validate", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _variant(**changes: object) -> Policy:
    doc = json.loads(make_policy().model_dump_json(by_alias=True))
    for dotted, value in changes.items():
        node = doc
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[leaf] = value
    return Policy.model_validate_json(json.dumps(doc))


def test_lab_policy_renders_and_validates(tmp_path: Path) -> None:
    policy = make_policy()
    rendered = config.render(policy, _relay(tmp_path), {"edge": "tbspk-secret"})
    text = rendered.config
    block = text[text.index("neighbor 198.18.1.1 {") :]
    block = block[: block.index("\n}\n")]
    for expected in (
        'md5-password "tbspk-secret";',
        "outgoing-ttl 255;",
        "incoming-ttl 255;",
        "hold-time 9;",
        "capability { add-path send; }",
        "local-address 198.18.1.2;",
        "peer-as 65010;",
    ):
        assert expected in block
    v6 = text[text.index("neighbor 2001:db8:1::1 {") :]
    assert "local-address 2001:db8:1::2;" in v6 and "ipv6 unicast;" in v6
    assert "graceful-restart 120;" in text and "manual-eor true;" in text
    api = text[text.index("api {") : text.index("neighbor 198.18.1.1")]
    assert "neighbor-changes;" in api and "receive { parsed; update; notification; }" in api
    assert f"run {' '.join(_relay(tmp_path))};" in text
    assert "terminate = true" in rendered.env and "user = 'root'" in rendered.env
    result = _validate(tmp_path, rendered)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("exabgp.conf", "exabgp.env"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_without_graceful_restart_exabgp_sends_eor_itself(tmp_path: Path) -> None:
    policy = _variant(**{"speaker.exabgp.graceful_restart": 0, "peers.0.md5_password": None})
    rendered = config.render(policy, _relay(tmp_path), {})
    assert "graceful-restart" not in rendered.config and "manual-eor false;" in rendered.config
    assert "md5-password" not in rendered.config
    result = _validate(tmp_path, rendered)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dual_stack_policy_renders_both_ways_of_carrying_ipv6(tmp_path: Path) -> None:
    """MP-BGP: ipv6 unicast in the IPv4 session's family block (with ADD-PATH for both families); an IPv6
    session of its own: its own neighbour block, IPv6 local address, ipv6 unicast only."""
    policy = load_policy(ROOT / "policies" / "examples" / "dual-stack.yaml")
    rendered = config.render(policy, _relay(tmp_path), {})
    text = rendered.config
    edge = text[text.index("neighbor 198.18.1.1 {") :]
    edge = edge[: edge.index("\n}\n")]
    assert "    family {\n        ipv4 unicast;\n        ipv6 unicast;\n    }" in edge
    assert "    add-path {\n        ipv4 unicast;\n        ipv6 unicast;\n    }" in edge
    v6 = text[text.index("neighbor 2001:db8:1::12 {") :]
    v6 = v6[: v6.index("\n}\n")]
    assert "local-address 2001:db8:1::2;" in v6 and "peer-as 64513;" in v6
    assert "    family {\n        ipv6 unicast;\n    }" in v6
    result = _validate(tmp_path, rendered)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate_catches_a_broken_config(tmp_path: Path) -> None:
    """The validator is not a rubber stamp: the notes' gotcha (neighbor-changes inside receive {}) fails."""
    rendered = config.render(make_policy(), _relay(tmp_path), {"edge": "x"})
    broken = rendered.config.replace(
        "receive { parsed; update; notification; }", "receive { parsed; update; notification; neighbor-changes; }"
    )
    assert _validate(tmp_path, config.Rendered(broken, rendered.env)).returncode != 0


def test_secret_from_env_and_file(tmp_path: Path) -> None:
    policy = make_policy()
    assert config.read_secrets(policy, {"TBSPK_MD5": "from-env"}) == {"edge": "from-env"}
    secret_file = tmp_path / "md5"
    secret_file.write_text("from-file\n")
    by_file = _variant(**{"peers.0.md5_password": {"file": str(secret_file)}})
    assert config.read_secrets(by_file, {}) == {"edge": "from-file"}


@pytest.mark.parametrize(
    "bad",
    ['has"quote', "semi;colon", "new\nline", "", "x" * 81, "brace}", "it's", "back\\slash", "sp ace", "caf\u00e9"],
)
def test_bad_secret_is_refused_without_echoing_it(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SpeakerError, match="MD5 password of peer edge") as err:
        config.render(make_policy(), _relay(tmp_path), {"edge": bad})
    if bad:
        assert bad not in str(err.value)


def test_missing_secret_source_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SpeakerError, match=r"TBSPK_MD5 .* is not set: export it"):
        config.read_secrets(make_policy(), {})
    missing = _variant(**{"peers.0.md5_password": {"file": str(tmp_path / "nope")}})
    with pytest.raises(SpeakerError, match="cannot read the MD5 password file"):
        config.read_secrets(missing, {})


def test_description_cannot_break_the_config(tmp_path: Path) -> None:
    policy = _variant(**{"peers.0.description": 'x"; } neighbor 1.2.3.4 { peer-as 1; local-as 2; }'})
    rendered = config.render(policy, _relay(tmp_path), {"edge": "s"})
    assert [ln for ln in rendered.config.splitlines() if ln.startswith("neighbor ")] == [
        "neighbor 198.18.1.1 {",
        "neighbor 2001:db8:1::1 {",
        "neighbor 198.18.1.11 {",
    ]
    assert 'description "x  neighbor 1.2.3.4  peer-as 1 local-as 2 ";' in rendered.config
    assert _validate(tmp_path, rendered).returncode == 0


def test_relay_path_with_spaces_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpeakerError, match="cannot carry"):
        config.render(make_policy(), [sys.executable, RELAY, "/tmp/a b/api.sock"], {"edge": "s"})
