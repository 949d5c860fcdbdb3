"""The daemon's run directory: checked once, then every file in it is reached through its directory fd.

The run directory holds the lock, ExaBGP's rendered configuration (with the MD5 keys) and its env file,
and the API socket. Anyone who can write to it could plant a symlink where bgpctl writes (the lock,
the config's temporary file) and make a root daemon overwrite any file on the host, or swap the
socket. So, before anything is written:

* the directory is created (mode 0700) if missing, and opened without following a symlink at its last
  component (``O_NOFOLLOW | O_DIRECTORY``): a symlinked run directory is refused;
* it must be owned by the daemon's effective user and writable by nobody else (no group/other write
  bit); systemd's ``RuntimeDirectory=bgpctl`` with ``RuntimeDirectoryMode=0750`` gives exactly that;
* every file is then opened relative to that directory fd, never following symlinks (``O_NOFOLLOW``),
  new files exclusively (``O_CREAT | O_EXCL``), and replaced by ``rename`` (which replaces a planted
  symlink itself, never its target).

Pure checks (:func:`ownership_problem`) are separate from the system calls, so they are unit-tested
with any ``stat`` result.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bgpctl.errors import BgpctlError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


class RunDirError(BgpctlError):
    """The run directory cannot be used (not creatable, a symlink, foreign-owned, writable by others, ...)."""


def ownership_problem(st: os.stat_result, *, euid: int) -> str | None:
    """Why a directory with this ``stat`` must not be the run directory of a daemon running as ``euid``."""
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != euid:
        return f"is owned by uid {st.st_uid}, not by the daemon's user (uid {euid})"
    writers = [who for bit, who in ((stat.S_IWGRP, "its group"), (stat.S_IWOTH, "others")) if st.st_mode & bit]
    if writers:
        return f"is writable by {' and '.join(writers)} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _fix_hint(path: Path) -> str:
    return f"chown the daemon's user {path} && chmod 0750 {path}, or let systemd create it (RuntimeDirectory=bgpctl)"


@dataclass
class RunDir:
    """An open, checked run directory. Use :meth:`open` (or as a context manager) and :meth:`close`."""

    path: Path
    fd: int

    @classmethod
    def open(cls, path: Path | str) -> RunDir:
        path = Path(path)
        if not path.is_absolute():
            path = Path.cwd() / path
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            pass  # e.g. a dangling symlink: refused below with its own message
        except OSError as e:
            raise RunDirError(
                f"run directory {path} cannot be created: {e.strerror}; create it (owned by the daemon's user, "
                f"mode 0750) or give another --run-dir"
            ) from None
        try:
            fd = os.open(path, _DIR_FLAGS)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR) and path.is_symlink():
                raise RunDirError(
                    f"run directory {path} is a symlink: give the real directory as --run-dir "
                    f"(or speaker.exabgp.run_dir); a symlink there could redirect what bgpctl writes"
                ) from None
            raise RunDirError(f"run directory {path} cannot be opened: {e.strerror}; {_fix_hint(path)}") from None
        problem = ownership_problem(os.fstat(fd), euid=os.geteuid())
        if problem is not None:
            os.close(fd)
            raise RunDirError(f"run directory {path} {problem}: {_fix_hint(path)}")
        return cls(path, fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ files

    def _refuse_link(self, name: str, e: OSError) -> RunDirError:
        what = "a symlink" if e.errno == errno.ELOOP else e.strerror
        return RunDirError(
            f"{self.path / name} is {what}: bgpctl never follows links in its run directory; "
            f"remove it and find out who put it there"
        )

    def open_lock(self, name: str) -> int:
        """The lock file's fd (read/write, created 0600 if missing, never through a symlink)."""
        try:
            return os.open(name, os.O_RDWR | os.O_CREAT | _FILE_FLAGS, 0o600, dir_fd=self.fd)
        except OSError as e:
            raise self._refuse_link(name, e) from None

    def write_private(self, name: str, text: str) -> None:
        """Write ``name`` mode 0600 from the first byte: a fresh temporary file (``O_EXCL``, no symlink
        followed; a stale one is unlinked first), fsynced, then renamed over ``name``."""
        tmp = f".{name}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=self.fd)  # a stale temporary (or a planted link): the link itself goes
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS, 0o600, dir_fd=self.fd)
        except OSError as e:
            raise self._refuse_link(tmp, e) from None
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.fd)
            raise

    def read_private(self, name: str, max_bytes: int) -> str | None:
        """The text of ``name`` (None if absent), never through a symlink; RunDirError for a link, a
        file that is not a regular file, one writable by others or larger than ``max_bytes``."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _FILE_FLAGS, dir_fd=self.fd)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise self._refuse_link(name, e) from None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise RunDirError(f"{self.path / name} is not a regular file: remove it")
            if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise RunDirError(f"{self.path / name} is writable by others: remove it and find out who wrote it")
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise RunDirError(f"{self.path / name} is larger than {max_bytes} bytes: remove it")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise RunDirError(f"{self.path / name} is not UTF-8 text: remove it") from None

    def remove(self, name: str) -> None:
        """Unlink ``name`` (a symlink there is removed itself); absent is fine."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.fd)


@contextlib.contextmanager
def locked(run_dir: RunDir, name: str) -> Iterator[int]:
    """Hold an exclusive flock on ``name`` in ``run_dir``; yields the fd (the caller writes its pid)."""
    fd = run_dir.open_lock(name)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            other = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
        finally:
            os.close(fd)
        raise RunDirError(
            f"another bgpctl daemon (pid {other}) holds {run_dir.path / name}: stop it first, "
            f"or give this one another --run-dir"
        ) from None
    try:
        yield fd
    finally:
        os.close(fd)
