"""Bad command-line options, option values and environment, for every command, against the real CLI.

Each case runs ``python -m bgpctl ...`` as a process, in an empty directory that is also its HOME and
the lab state root, and asserts:

* the exit code: 2 for a usage error (an option or value the command line itself gets wrong), 3 for
  refused input (a file named on the command line that is refused whole), see bgpctl/errors.py and
  docs/cli.md;
* stderr is exactly one line, matching the case's pattern, which names the option (or the file) and
  says what to do; stdout is empty; no traceback;
* nothing was written: the directory holds what it held before (no run directory, lock, record file,
  lab state).

Daemon cases run in a network namespace of their own when the tests run as root (``unshare --net``):
should a regression let a bad option through, that daemon would pin its probes in a throw-away
namespace, never in the host's. As another user they cannot pin anything (no CAP_NET_ADMIN) anyway.
The daemon failures that need a running system (a metrics port in use, an address no interface has, a
run directory that cannot be created, planted symlinks, signals) are in tests/daemon/test_daemon_cli.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bgpctl.cli.main import main
from bgpctl.errors import EXIT_REFUSED, EXIT_USAGE

REPO = Path(__file__).resolve().parents[2]
LAB_POLICY = str(REPO / "policies" / "lab.yaml")
BAD_POLICY = str(REPO / "tests" / "policy" / "bad" / "bool-yes.yaml")  # line 12: ttl_security: yes
CASE_TIMEOUT_S = 30.0  # a case that runs instead of refusing is stopped, and fails
NO_NETNS = "tbcorpus_none"  # a namespace that does not exist: a meter let through could not send anywhere


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int
    line: str  # regular expression for the one stderr line; {tmp} is the case's directory
    env: dict[str, str] = field(default_factory=dict)


def usage(command: str, message: str) -> str:
    """The one line of a usage error (bgpctl.cli.main.usage_line), ``message`` a regular expression."""
    where = f"{command}: " if command else ""
    help_path = " ".join(["bgpctl", command]) if command else "bgpctl"
    return rf"bgpctl: {where}{message}; see '{re.escape(help_path)} --help'"


def q(text: str) -> str:
    return re.escape(text)


METRICS_SHAPE = "write ADDR:PORT with a port 1-65535, e.g. 127.0.0.1:9477"
LAB_NAME_RULE = q(
    "is not valid: 1 to 20 letters, digits, '_' or '.', starting with a letter or digit "
    "(no '-': namespaces are named <lab>-<node>)"
)

CASES: list[Case] = [
    # ------------------------------------------------------------------ bgpctl itself
    Case("root-unknown-command", ("nosuch",), EXIT_USAGE, usage("", q("No such command 'nosuch'"))),
    Case("root-unknown-option", ("--bogus",), EXIT_USAGE, usage("", q("No such option '--bogus'"))),
    # ------------------------------------------------------------------ daemon
    Case("daemon-no-policy", ("daemon",), EXIT_USAGE, usage("daemon", q("Missing option '--policy'"))),
    Case(
        "daemon-unknown-option",
        ("daemon", "--policy", LAB_POLICY, "--bogus"),
        EXIT_USAGE,
        usage("daemon", q("No such option '--bogus'")),
    ),
    Case(
        "daemon-policy-is-a-directory",
        ("daemon", "--policy", "{tmp}"),
        EXIT_USAGE,
        usage("daemon", q("Invalid value for '--policy': File '") + "{tmp}" + q("' is a directory")),
    ),
    Case(
        "daemon-policy-missing",
        ("daemon", "--policy", "{tmp}/nope.yaml"),
        EXIT_REFUSED,
        r"bgpctl: {tmp}/nope\.yaml: no such file \(check the path\)",
    ),
    Case(
        "daemon-policy-refused",
        ("daemon", "--policy", BAD_POLICY),
        EXIT_REFUSED,
        rf"bgpctl: {q(BAD_POLICY)}:12 peers\[0\]\.ttl_security: expected true or false.*",
    ),
    *(
        Case(
            f"daemon-metrics-{i}",
            ("daemon", "--policy", LAB_POLICY, "--metrics", value),
            EXIT_USAGE,
            usage("daemon", q(f"Invalid value for '--metrics': {value!r}: ") + hint),
        )
        for i, (value, hint) in enumerate(
            [
                ("nope", q(METRICS_SHAPE)),
                ("127.0.0.1", q(METRICS_SHAPE)),
                ("127.0.0.1:", q(METRICS_SHAPE)),
                ("127.0.0.1:0", q(METRICS_SHAPE)),
                ("127.0.0.1:65536", q(METRICS_SHAPE)),
                ("127.0.0.1:-1", q(METRICS_SHAPE)),
                ("127.0.0.1:\uff19\uff14\uff17\uff17", q(METRICS_SHAPE)),  # full-width digits: isdigit() says yes
                ("::1:9477", q("put an IPv6 address in brackets, e.g. [::1]:9477")),
                ("[::1:9477", q("close the IPv6 address's bracket, e.g. [::1]:9477")),
                ("[nothost]:9477", q("'nothost' in brackets is not an IPv6 address, e.g. [::1]:9477")),
                ("bad host:9477", q("'bad host' is not an address or host name, e.g. 127.0.0.1:9477")),
            ]
        )
    ),
    Case(
        "daemon-log-format",
        ("daemon", "--policy", LAB_POLICY, "--log-format", "xml"),
        EXIT_USAGE,
        usage("daemon", q("Invalid value for '--log-format': 'xml' is not one of 'json', 'console', 'auto'")),
    ),
    Case(
        "daemon-log-level",
        ("daemon", "--policy", LAB_POLICY, "--log-level", "trace"),
        EXIT_USAGE,
        usage(
            "daemon", q("Invalid value for '--log-level': 'trace' is not one of 'debug', 'info', 'warning', 'error'")
        ),
    ),
    Case(
        "daemon-run-dir-is-a-file",
        ("daemon", "--policy", LAB_POLICY, "--run-dir", LAB_POLICY),
        EXIT_USAGE,
        usage("daemon", q(f"Invalid value for '--run-dir': Directory '{LAB_POLICY}' is a file")),
    ),
    Case(
        "daemon-record-is-a-directory",
        ("daemon", "--policy", LAB_POLICY, "--record", "{tmp}"),
        EXIT_USAGE,
        usage("daemon", q("Invalid value for '--record': File '") + "{tmp}" + q("' is a directory")),
    ),
    Case(
        "daemon-flag-with-a-value",
        ("daemon", "--policy", LAB_POLICY, "--withdraw-on-exit=yes"),
        EXIT_USAGE,
        usage("daemon", q("Option '--withdraw-on-exit' does not take a value")),
    ),
    # ------------------------------------------------------------------ policy
    Case("policy-unknown-command", ("policy", "nosuch"), EXIT_USAGE, usage("policy", q("No such command 'nosuch'"))),
    Case(
        "policy-check-no-file", ("policy", "check"), EXIT_USAGE, usage("policy check", q("Missing argument 'FILES...'"))
    ),
    Case(
        "policy-check-missing-file",
        ("policy", "check", "{tmp}/nope.yaml"),
        EXIT_REFUSED,
        r"{tmp}/nope\.yaml: no such file \(check the path\)",
    ),
    Case(
        "policy-check-directory",
        ("policy", "check", "{tmp}"),
        EXIT_REFUSED,
        r"{tmp}: is a directory \(name the policy file itself, e\.g\. policies/lab\.yaml\)",
    ),
    Case("policy-plan-no-file", ("policy", "plan"), EXIT_USAGE, usage("policy plan", q("Missing argument 'FILE'"))),
    Case(
        "policy-plan-stats-missing",
        ("policy", "plan", LAB_POLICY, "--stats", "{tmp}/nope.json"),
        EXIT_REFUSED,
        "bgpctl: {tmp}" + q("/nope.json: no such file (check the path)"),
    ),
    Case(
        "policy-plan-stats-directory",
        ("policy", "plan", LAB_POLICY, "--stats", "{tmp}"),
        EXIT_REFUSED,
        "bgpctl: {tmp}" + q(": is a directory (name the stats snapshot file itself, e.g. ") + ".*" + q(")"),
    ),
    Case(
        "policy-show-unknown-option",
        ("policy", "show", "--bogus", LAB_POLICY),
        EXIT_USAGE,
        usage("policy show", q("No such option '--bogus'")),
    ),
    Case(
        "policy-schema-extra-argument",
        ("policy", "schema", "extra"),
        EXIT_USAGE,
        usage("policy schema", q("Got unexpected extra argument (extra)")),
    ),
    # ------------------------------------------------------------------ probe
    Case("probe-no-policy", ("probe", "media"), EXIT_USAGE, usage("probe", q("Missing option '--policy' / '-p'"))),
    *(
        Case(
            f"probe-count-{value}",
            ("probe", "-p", LAB_POLICY, "-c", value, "media"),
            EXIT_USAGE,
            usage("probe", q(f"Invalid value for '--count' / '-c': {message}")),
        )
        for value, message in [
            ("0", "0 is not in the range 1<=x<=1000000"),
            ("abc", "'abc' is not a valid integer range"),
            ("1000001", "1000001 is not in the range 1<=x<=1000000"),
        ]
    ),
    Case(
        "probe-no-path",
        ("probe", "-p", LAB_POLICY),
        EXIT_USAGE,
        usage("probe", q("name at least one PATH, or give --all (not both)")),
    ),
    Case(
        "probe-path-and-all",
        ("probe", "-p", LAB_POLICY, "--all", "media"),
        EXIT_USAGE,
        usage("probe", q("name at least one PATH, or give --all (not both)")),
    ),
    Case(
        "probe-record-directory",
        ("probe", "-p", LAB_POLICY, "--record", "{tmp}", "media"),
        EXIT_USAGE,
        usage("probe", q("Invalid value for '--record': File '") + "{tmp}" + q("' is a directory")),
    ),
    Case(
        "probe-env-policy-missing",
        ("probe", "media"),
        EXIT_USAGE,
        usage("probe", q("Invalid value for '--policy' / '-p': File '") + "{tmp}" + q("/nope.yaml' does not exist")),
        env={"BGPCTL_POLICY": "{tmp}/nope.yaml"},
    ),
    Case(
        "probe-env-policy-directory",
        ("probe", "media"),
        EXIT_USAGE,
        usage("probe", q("Invalid value for '--policy' / '-p': File '") + "{tmp}" + q("' is a directory")),
        env={"BGPCTL_POLICY": "{tmp}"},
    ),
    # ------------------------------------------------------------------ reflector (its --listen and NaN
    # --seconds are checked on the hostile-packets branch, with its own corpus)
    Case(
        "reflector-port-0",
        ("reflector", "--port", "0", "--seconds", "1"),
        EXIT_USAGE,
        usage("reflector", q("Invalid value for '--port': 0 is not in the range 1<=x<=65535")),
    ),
    Case(
        "reflector-port-text",
        ("reflector", "--port", "stamp", "--seconds", "1"),
        EXIT_USAGE,
        usage("reflector", q("Invalid value for '--port': 'stamp' is not a valid integer range")),
    ),
    Case(
        "reflector-tcp-port",
        ("reflector", "--tcp-port", "99999", "--seconds", "1"),
        EXIT_USAGE,
        usage("reflector", q("Invalid value for '--tcp-port': 99999 is not in the range 1<=x<=65535")),
    ),
    Case(
        "reflector-seconds-negative",
        ("reflector", "--seconds", "-1"),
        EXIT_USAGE,
        usage("reflector", q("Invalid value for '--seconds': -1.0 is not in the range 0<x<=1000000000.0")),
    ),
    # ------------------------------------------------------------------ replay
    Case("replay-no-recording", ("replay",), EXIT_USAGE, usage("replay", q("Missing argument 'SAMPLES'"))),
    *(
        Case(
            f"replay-tick-{value}",
            ("replay", "--policy", LAB_POLICY, "--tick", value, "-"),
            EXIT_USAGE,
            usage("replay", q(f"Invalid value for '--tick': {message}")),
        )
        for value, message in [
            ("0", "0.0 is not in the range 0.001<=x<=60.0"),
            ("-1", "-1.0 is not in the range 0.001<=x<=60.0"),
            ("nan", "'nan' is not a finite number (0.001<=x<=60.0)"),
            ("abc", "'abc' is not a valid float range"),
        ]
    ),
    Case(
        "replay-recording-missing",
        ("replay", "--policy", LAB_POLICY, "{tmp}/nope.jsonl"),
        EXIT_REFUSED,
        "bgpctl: {tmp}"
        + q("/nope.jsonl: cannot open it: No such file or directory (check the path and its permissions)"),
    ),
    Case(
        "replay-policy-missing",
        ("replay", "--policy", "{tmp}/nope.yaml", "-"),
        EXIT_REFUSED,
        r"bgpctl: {tmp}/nope\.yaml: no such file \(check the path\)",
    ),
    # ------------------------------------------------------------------ lab
    Case("lab-unknown-command", ("lab", "nosuch"), EXIT_USAGE, usage("lab", q("No such command 'nosuch'"))),
    Case(
        "lab-up-mode",
        ("lab", "up", "--mode", "bogus"),
        EXIT_USAGE,
        usage(
            "lab up",
            q("Invalid value for '--mode': 'bogus' is not one of 'no-controller', 'controller', 'no-controller-bfd'"),
        ),
    ),
    Case(
        "lab-up-budget-text",
        ("lab", "up", "--budget", "abc"),
        EXIT_USAGE,
        usage("lab up", q("Invalid value for '--budget': 'abc' is not a valid float range")),
    ),
    Case(
        "lab-up-budget-nan",
        ("lab", "up", "--budget", "nan"),
        EXIT_USAGE,
        usage("lab up", q("Invalid value for '--budget': 'nan' is not a finite number (0<x<=3600)")),
    ),
    Case(
        "lab-name-env",
        ("lab", "status"),
        EXIT_USAGE,
        usage("lab status", q("Invalid value for '--lab': lab name 'bad-name' ") + LAB_NAME_RULE),
        env={"BGPCTL_LAB_NAME": "bad-name"},
    ),
    Case(
        "lab-name-too-long",
        ("lab", "down", "--lab", "a" * 21),
        EXIT_USAGE,
        usage("lab down", q(f"Invalid value for '--lab': lab name '{'a' * 21}' ") + LAB_NAME_RULE),
    ),
    Case("lab-meter-no-target", ("lab", "meter"), EXIT_USAGE, usage("lab meter", q("Missing option '--to'"))),
    *(
        Case(
            f"lab-meter{option}-{value}",
            ("lab", "meter", "--netns", NO_NETNS, "--to", "203.0.113.10", option, value),
            EXIT_USAGE,
            usage("lab meter", q(f"Invalid value for '{option}': {message}")),
        )
        for option, value, message in [
            ("--dscp", "64", "64 is not in the range 0<=x<=63"),
            ("--rate", "0", "0.0 is not in the range 1<=x<=1000.0"),
            ("--seconds", "inf", "inf is not in the range 0<x<=3600.0"),
            ("--seconds", "nan", "'nan' is not a finite number (0<x<=3600.0)"),
            ("--flows", "0", "0 is not in the range 1<=x<=256"),
            ("--count", "0", "0 is not in the range 1<=x<=400000"),
            ("--port", "70000", "70000 is not in the range 1<=x<=65535"),
            ("--drain", "-1", "-1.0 is not in the range 0<=x<=5.0"),
        ]
    ),
    # runtime overrides: refused by the CLI before the daemon is asked (no socket needed)
    *(
        Case(f"override-{name}", argv, EXIT_USAGE, usage(argv[0], q(message)))
        for name, argv, message in [
            ("drain-no-reason", ("drain", "use1"), "Missing option '--reason'"),
            ("drain-no-target", ("drain", "--reason", "x"), "Missing argument 'REGION[/PATH]'"),
            (
                "drain-upper-case",
                ("drain", "USE1", "--reason", "x"),
                "Invalid value for 'REGION[/PATH]': must be REGION or REGION/PATH, like use1 or use1/dx",
            ),
            (
                "drain-for-words",
                ("drain", "use1", "--reason", "x", "--for", "soon"),
                "Invalid value for '--for': must be a duration like 90s, 15m, 2h30m or 1d",
            ),
            (
                "drain-for-a-year",
                ("drain", "use1", "--reason", "x", "--for", "365d"),
                "Invalid value for '--for': must be between 1 s and 30 days",
            ),
            (
                "drain-reason-escape",
                ("drain", "use1", "--reason", "\x1b[31m"),
                "Invalid value for '--reason': must be printable text of 1-500 characters saying why",
            ),
            (
                "drain-service-bad",
                ("drain", "use1", "--reason", "x", "--service", "a/b"),
                "Invalid value for '--service': must be a name (lower case letters, digits, '-' and '_', at most 32)",
            ),
            ("pin-no-region", ("pin", "media", "--reason", "x"), "Missing argument 'REGION'"),
            ("unpin-service-option", ("unpin", "media", "--service", "x"), "No such option '--service'"),
            ("freeze-no-reason", ("freeze",), "Missing option '--reason'"),
            ("thaw-for", ("thaw", "--for", "1h"), "No such option '--for'"),
            ("undrain-now-value", ("undrain", "use1", "--now=yes"), "Option '--now' does not take a value"),
        ]
    ),
]


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


def _fill(text: str, tmp: Path) -> str:
    return text.replace("{tmp}", str(tmp))


def _snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def _run_process(argv: list[str], work: Path, env: dict[str, str]) -> Outcome:
    """The real CLI as a process (the daemon cases: in a throw-away network namespace when root)."""
    cmd = [sys.executable, "-m", "bgpctl", *argv]
    if os.geteuid() == 0 and shutil.which("unshare"):
        cmd = ["unshare", "--net", "--", *cmd]  # a daemon let through pins in a throw-away namespace
    try:
        done = subprocess.run(
            cmd,
            check=False,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running after {CASE_TIMEOUT_S:g} s: the bad input was accepted") from None
    return Outcome(done.returncode, done.stdout, done.stderr)


def _run_in_process(
    argv: list[str],
    work: Path,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Outcome:
    """The CLI's entry point (bgpctl.cli.main.main) in this process: the same code path as the
    ``bgpctl`` script after start-up, without paying the interpreter's start-up per case."""
    for key in [k for k in os.environ if k.startswith("BGPCTL_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "argv", ["bgpctl", *argv])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    code = exited.value.code
    return Outcome(code if isinstance(code, int) else 1, out.out, out.err)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_option_is_one_line_with_its_exit_code_and_writes_nothing(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "cwd"
    work.mkdir()
    before = _snapshot(tmp_path)
    env = {
        "HOME": str(work),
        "BGPCTL_LAB_STATE_ROOT": str(tmp_path / "lab-state"),  # a lab command let through would write here
        **{k: _fill(v, tmp_path) for k, v in case.env.items()},
    }
    argv = [_fill(a, tmp_path) for a in case.argv]
    if case.argv[0] == "daemon":
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        outcome = _run_process(argv, work, {**base, **env})
    else:
        outcome = _run_in_process(argv, work, env, monkeypatch, capsys)
    assert "Traceback" not in outcome.stderr, outcome.stderr
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.stderr
    pattern = case.line.replace("{tmp}", re.escape(str(tmp_path)))
    assert re.fullmatch(pattern, lines[0]), lines[0]
    assert outcome.code == case.code, (outcome.code, lines[0])
    assert outcome.stdout == ""
    assert _snapshot(tmp_path) == before, "something was written"
