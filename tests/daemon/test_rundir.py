"""The run directory is checked before use and nothing in it is ever written through a symlink.

Real files in a temporary directory: a victim file outside the run directory stands for /etc/shadow; a
symlink to it is planted where bgpctl writes (the lock, the config, the config's temporary file) and
the victim must come out untouched.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bgpctl.daemon.run import LOCK_NAME, single_instance
from bgpctl.rundir import RunDir, RunDirError, locked, ownership_problem
from bgpctl.speaker.config import write_private

VICTIM_TEXT = "root:x:0:0:do not overwrite me\n"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir(mode=0o750)
    d.chmod(0o750)
    return d


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim"
    v.write_text(VICTIM_TEXT)
    v.chmod(0o644)
    return v


def _one_line(e: pytest.ExceptionInfo[RunDirError]) -> str:
    text = str(e.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_a_symlink_planted_as_the_lock_is_refused_and_its_target_untouched(run_dir: Path, victim: Path) -> None:
    (run_dir / LOCK_NAME).symlink_to(victim)
    with pytest.raises(RunDirError) as e, single_instance(run_dir):
        pass
    assert _one_line(e) == (
        f"{run_dir / LOCK_NAME} is a symlink: bgpctl never follows links in its run directory; "
        f"remove it and find out who put it there"
    )
    assert victim.read_text() == VICTIM_TEXT and stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_the_lock_holds_the_pid_and_a_second_holder_is_refused_naming_it(run_dir: Path) -> None:
    with single_instance(run_dir):
        assert (run_dir / LOCK_NAME).read_text() == f"{os.getpid()}\n"
        assert stat.S_IMODE((run_dir / LOCK_NAME).stat().st_mode) == 0o600
        with RunDir.open(run_dir) as again, pytest.raises(RunDirError) as e, locked(again, LOCK_NAME):
            pass
    assert _one_line(e) == (
        f"another bgpctl daemon (pid {os.getpid()}) holds {run_dir / LOCK_NAME}: stop it first, "
        f"or give this one another --run-dir"
    )


@pytest.mark.parametrize("planted", ["exabgp.conf", ".exabgp.conf.tmp"])
def test_a_symlink_where_the_config_goes_is_replaced_not_followed(run_dir: Path, victim: Path, planted: str) -> None:
    (run_dir / planted).symlink_to(victim)
    write_private(run_dir / "exabgp.conf", "neighbor 198.18.1.1 { md5-password secret; }\n")
    conf = run_dir / "exabgp.conf"
    assert not conf.is_symlink() and conf.read_text().startswith("neighbor 198.18.1.1")
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert not (run_dir / ".exabgp.conf.tmp").exists() and not (run_dir / ".exabgp.conf.tmp").is_symlink()
    assert victim.read_text() == VICTIM_TEXT and stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_a_symlinked_run_dir_is_refused(tmp_path: Path, run_dir: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(run_dir)
    with pytest.raises(RunDirError) as e:
        RunDir.open(link)
    assert _one_line(e).startswith(f"run directory {link} is a symlink: give the real directory as --run-dir")
    assert list(run_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o770, "its group"), (0o757, "others"), (0o777, "its group and others"), (0o1777, "its group and others")],
)
def test_a_run_dir_writable_by_others_is_refused_with_the_fix(run_dir: Path, mode: int, who: str) -> None:
    run_dir.chmod(mode)
    with pytest.raises(RunDirError) as e, single_instance(run_dir):
        pass
    assert _one_line(e) == (
        f"run directory {run_dir} is writable by {who} (mode {mode:04o}): chown the daemon's user {run_dir} "
        f"&& chmod 0750 {run_dir}, or let systemd create it (RuntimeDirectory=bgpctl)"
    )
    assert list(run_dir.iterdir()) == []  # no lock written


def test_a_missing_run_dir_is_created_private(tmp_path: Path) -> None:
    d = tmp_path / "a" / "run"
    with single_instance(d):
        assert stat.S_IMODE(d.stat().st_mode) & 0o077 == 0


def test_a_run_dir_that_cannot_be_created_says_so(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    d = tmp_path / "file" / "run"
    with pytest.raises(RunDirError) as e:
        RunDir.open(d)
    assert _one_line(e) == (
        f"run directory {d} cannot be created: Not a directory; create it (owned by the daemon's user, mode 0750) "
        f"or give another --run-dir"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_run_dir_owned_by_another_user_is_refused(run_dir: Path) -> None:
    os.chown(run_dir, 65534, -1)
    with pytest.raises(RunDirError) as e:
        RunDir.open(run_dir)
    assert _one_line(e).startswith(f"run directory {run_dir} is owned by uid 65534, not by the daemon's user (uid 0)")


def _st(mode: int, uid: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 2, uid, 0, 4096, 0, 0, 0))


@pytest.mark.parametrize(
    ("mode", "uid", "problem"),
    [
        (stat.S_IFDIR | 0o750, 1000, None),
        (stat.S_IFDIR | 0o700, 1000, None),
        (stat.S_IFDIR | 0o755, 1000, None),
        (stat.S_IFDIR | 0o750, 0, "is owned by uid 0, not by the daemon's user (uid 1000)"),
        (stat.S_IFDIR | 0o770, 1000, "is writable by its group (mode 0770)"),
        (stat.S_IFREG | 0o600, 1000, "is not a directory"),
    ],
)
def test_ownership_rules(mode: int, uid: int, problem: str | None) -> None:
    assert ownership_problem(_st(mode, uid), euid=1000) == problem
