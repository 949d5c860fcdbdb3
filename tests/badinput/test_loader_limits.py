"""Policy files the loader refuses whole, fast, in one line: not a regular file, too big, control characters,
not UTF-8, YAML bombs and depth, huge numbers, foreign tags, and MD5 passwords ExaBGP cannot carry.

Each case runs the real `bgpctl policy check` (tests/badinput/support.py says what is asserted). Timing
bounds are generous for a loaded CI machine; docs/design.md ("Input limits") has the measured numbers.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bgpctl.errors import EXIT_REFUSED, RefusedInput
from bgpctl.policy import check_policy
from bgpctl.policy.load import MAX_POLICY_BYTES
from bgpctl.policy.yamlsource import MAX_ALIASES, MAX_DEPTH, MAX_NODES
from tests.badinput.support import BASE_POLICY, refused

BASE = BASE_POLICY.read_text()
BASE_LINES = len(BASE.splitlines())
FAST_S = 1.0  # CPU seconds (process time: what the work costs, not how loaded the machine is)
"""A refusal by size, bomb or depth: measured 0.01-0.2 s; 1 s leaves room for a loaded machine."""


def _shape(name: str) -> str:
    return rf"{re.escape(name)}(:\d+ (\S+: )?|: )\S.* \(.+\)"


def _check(path: Path) -> str:
    return refused(["policy", "check", str(path)], path.parent, _shape(str(path)))


def _write(tmp_path: Path, text: str | bytes, name: str = "p.yaml") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


# ------------------------------------------------------------------------------------------
# not a regular file


@pytest.mark.timeout(60)
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "policy.yaml"
    os.mkfifo(fifo)
    began = time.monotonic()
    # a subprocess: if the open blocked on the FIFO (no writer), the timeout here would say so
    run = subprocess.run(
        [sys.executable, "-m", "bgpctl", "policy", "check", str(fifo)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == EXIT_REFUSED
    assert run.stderr == f"{fifo}: is a FIFO (named pipe) (name the policy file itself, e.g. policies/lab.yaml)\n"
    assert time.monotonic() - began < 30


def test_a_device_is_refused(tmp_path: Path) -> None:
    line = refused(["policy", "check", "/dev/zero"], tmp_path, _shape("/dev/zero"))
    assert line == "/dev/zero: is a device (name the policy file itself, e.g. policies/lab.yaml)"


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert _check(tmp_path / ".").endswith(": is a directory (name the policy file itself, e.g. policies/lab.yaml)")


def test_a_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
        assert _check(path) == f"{path}: is a socket (name the policy file itself, e.g. policies/lab.yaml)"


# ------------------------------------------------------------------------------------------
# size and time


def test_a_file_over_the_size_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    text = BASE + "#" * (MAX_POLICY_BYTES - len(BASE.encode()) - 1) + "\n"
    assert len(text.encode()) == MAX_POLICY_BYTES + 0
    check_policy(_write(tmp_path, text))  # exactly at the cap: read and parsed
    path = _write(tmp_path, text + "\n")
    assert _check(path) == (
        f"{path}: is {MAX_POLICY_BYTES + 1} bytes, more than the 256 KiB a policy may have "
        "(a policy is a small text file: check that this is the right file)"
    )


def test_four_megabytes_of_comments_are_refused_in_well_under_a_second(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE + "#\n" * (2 * 1024 * 1024))
    began = time.process_time()
    assert "more than the 256 KiB" in _check(path)
    assert time.process_time() - began < FAST_S


def test_a_policy_full_of_comment_lines_up_to_the_cap_loads_quickly(tmp_path: Path) -> None:
    # 127 000 comment lines: the round-trip parser took 0.6 s per 64 Ki comment lines, twice over
    lines = (MAX_POLICY_BYTES - len(BASE.encode())) // 2 - 1
    path = _write(tmp_path, "#\n" * lines + BASE)
    began = time.process_time()
    check_policy(path)
    assert time.process_time() - began < 2.5  # measured 0.2 s


# ------------------------------------------------------------------------------------------
# characters and encodings


@pytest.mark.parametrize(
    ("char", "code"),
    [("\x00", "U+0000"), ("\x1b", "U+001B"), ("\x7f", "U+007F"), ("\x85", "U+0085"), ("\x9b", "U+009B"),
     ("\ufffe", "U+FFFE"), ("\x0c", "U+000C")],
)  # fmt: skip
def test_a_control_character_is_refused_with_its_line_and_column(tmp_path: Path, char: str, code: str) -> None:
    path = _write(tmp_path, BASE.replace("description: ", "").replace("  local_as: 65000", f"  local_as: 6{char}5000"))
    line = _check(path)
    assert line.startswith(f"{path}:4 control character {code} at column 14 (")
    assert char not in line


def test_latin1_is_not_utf8(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("version: 1", "# caf\u00e9\nversion: 1").encode("latin-1"))
    assert _check(path) == f"{path}: not UTF-8 text (byte 111, line 2) (save the file as UTF-8)"


def test_utf16_is_not_utf8(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.encode("utf-16"))
    assert _check(path) == f"{path}: not UTF-8 text (byte 0, line 1) (save the file as UTF-8)"


def test_random_binary_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, bytes(range(256)) * 4)
    assert "not UTF-8 text" in _check(path) or "control character" in _check(path)


# ------------------------------------------------------------------------------------------
# YAML bombs, depth, numbers, tags


def _laughs(levels: int, fan: int) -> str:
    lines = [f"a0: &a0 [{', '.join(['lol'] * fan)}]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("levels", "fan"), [(9, 9), (30, 2), (3, 300)])
def test_billion_laughs_is_refused_fast(tmp_path: Path, levels: int, fan: int) -> None:
    path = _write(tmp_path, _laughs(levels, fan))
    began = time.process_time()
    assert f"more than {MAX_ALIASES} alias expansions" in _check(path)
    assert time.process_time() - began < FAST_S


def test_a_huge_flat_list_is_refused_at_the_value_limit(tmp_path: Path) -> None:
    path = _write(tmp_path, "x: [" + "1," * MAX_NODES + "1]\n")
    assert _check(path).startswith(f"{path}:1 more than {MAX_NODES} values once aliases are expanded (")


def test_a_self_referencing_alias_is_refused(tmp_path: Path) -> None:
    assert f"nested deeper than {MAX_DEPTH} levels" in _check(_write(tmp_path, "a: &a [*a]\n"))


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 100_000])
def test_deep_flow_nesting_is_refused_without_a_recursion_error(tmp_path: Path, depth: int) -> None:
    path = _write(tmp_path, "a: " + "[" * depth + "]" * depth + "\n")
    assert (
        _check(path)
        == f"{path}:1 nested deeper than {MAX_DEPTH} levels (a policy is a few levels deep: check the indentation)"
    )


def test_deep_block_nesting_is_refused(tmp_path: Path) -> None:
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(MAX_DEPTH + 2)) + "  " * (MAX_DEPTH + 2) + "v\n"
    assert f"nested deeper than {MAX_DEPTH} levels" in _check(_write(tmp_path, text))


@pytest.mark.parametrize("digits", [21, 4301, 60_000])
def test_a_huge_integer_is_refused_without_converting_it(tmp_path: Path, digits: int) -> None:
    path = _write(tmp_path, BASE.replace("  local_as: 65000", "  local_as: " + "9" * digits))
    assert _check(path) == (
        f"{path}:4 speaker.local_as: the number 99999999999999999999... has more than 20 digits "
        "(every number in a policy fits in 64 bits: fix the value)"
    )


@pytest.mark.parametrize("tag", ["!!python/object:os.system", "!!binary", "!!set", "!custom"])
def test_a_foreign_yaml_tag_is_refused(tmp_path: Path, tag: str) -> None:
    path = _write(tmp_path, BASE.replace("  router_id: 198.18.1.2", f"  router_id: {tag} aGVsbG8="))
    assert "YAML tag" in _check(path)


def test_a_merge_of_a_scalar_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("speaker:\n", "speaker:\n  <<: 1\n", 1))
    assert "'<<' must merge a mapping" in _check(path)


# ------------------------------------------------------------------------------------------
# MD5 passwords ExaBGP cannot carry: refused at check time, never echoed

EDGE = "    role: edge\n"


@pytest.mark.parametrize(
    "secret",
    ['Qx7"quoted', "Qx7'apos", "Qx7\\back", "Qx7 space", "Qx7\ttab", "Qx7\u00e9accent", "Qx7;semi", "Qx7{brace",
     "Qx7}brace", "Qx7\x01ctl", "Qx7" + "z" * 78],
)  # fmt: skip
def test_an_md5_password_exabgp_cannot_carry_is_refused_unechoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    monkeypatch.setenv("BGPCTL_BADINPUT_MD5", secret)
    path = _write(tmp_path, BASE.replace(EDGE, EDGE + "    md5_password: { env: BGPCTL_BADINPUT_MD5 }\n", 1))
    line = _check(path)
    assert line.startswith(f"{path}:12 peers[0].md5_password.env: the MD5 password in environment variable ")
    assert "Qx7" not in line
    if len(secret) > 80:
        assert "is 81 characters long, at most 80" in line


@pytest.mark.parametrize("content", [b'Qx7"in-a-file\n', b"Qx7\xffnot-utf8\n", b"Qx7 two words\n"])
def test_an_md5_password_file_exabgp_cannot_carry_is_refused_unechoed(tmp_path: Path, content: bytes) -> None:
    key = tmp_path / "keys" / "edge.key"
    key.parent.mkdir()
    key.write_bytes(content)
    key.chmod(0o600)
    path = _write(tmp_path, BASE.replace(EDGE, EDGE + f"    md5_password: {{ file: {key} }}\n", 1))
    line = _check(path)
    assert line.startswith(f"{path}:12 peers[0].md5_password.file: the MD5 password in secret file {key} ")
    assert "Qx7" not in line


def test_a_good_md5_password_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BGPCTL_BADINPUT_MD5", "Qx7-all#printable&ASCII(ok)~|")
    path = _write(tmp_path, BASE.replace(EDGE, EDGE + "    md5_password: { env: BGPCTL_BADINPUT_MD5 }\n", 1))
    assert check_policy(path).warnings == ()


# ------------------------------------------------------------------------------------------
# fuzz: whatever the bytes, a policy or a RefusedInput, quickly

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
"""deadline: 2 s per case (a case takes milliseconds; the bound catches a hang or a quadratic pass)."""


def _load_or_refuse(path: Path) -> None:
    try:
        check_policy(path)
    except RefusedInput as e:
        assert str(e).strip(), "a refusal says why"
        assert "Traceback" not in str(e)


@FUZZ
@given(st.binary(max_size=4096))
@example(data=b"+_")  # YAML's int pattern without a digit: ruamel raised ValueError (found by this fuzz)
def test_fuzz_random_bytes(tmp_path: Path, data: bytes) -> None:
    _load_or_refuse(_write(tmp_path, data, "fuzz.yaml"))


@st.composite
def _mutated_policy(draw: st.DrawFn) -> bytes:
    """base.yaml with up to 8 spans replaced by random bytes or YAML's sharp edges."""
    out = bytearray(BASE.encode())
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(out)))
        junk = draw(st.binary(max_size=12) | st.sampled_from([b"&a ", b"*a", b"[", b"{", b"\t", b"!!", b"\x85"]))
        out[at : at + draw(st.integers(0, 12))] = junk
    return bytes(out)


@FUZZ
@given(_mutated_policy())
def test_fuzz_mutated_policy(tmp_path: Path, data: bytes) -> None:
    _load_or_refuse(_write(tmp_path, data, "fuzz.yaml"))


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_YAMLISH = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=40,
)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "version",
                "speaker",
                "peers",
                "regions",
                "services",
                "sla_classes",
                "actions",
                "guards",
                "corporate",
                "overrides",
                "x",
            ]
        ),
        _YAMLISH,
        max_size=8,
    )
)
def test_fuzz_random_yaml_documents(tmp_path: Path, doc: dict[str, object]) -> None:
    _load_or_refuse(_write(tmp_path, json.dumps(doc), "fuzz.yaml"))  # JSON is YAML: any structure, any scalar
