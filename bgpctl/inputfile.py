"""Reading an operator's input file safely: the one place that opens policies and stats snapshots.

Limits (docs/design.md, "Input limits"): only a regular file is read (a FIFO, a device, a socket or a
directory is refused, and a FIFO is opened without blocking, so naming one never hangs); at most
``max_bytes`` are read (a bigger file is refused before it is parsed); the text must be UTF-8 without
NUL, other C0 control characters (tab, CR and LF are fine), DEL or C1 control characters. Every refusal
is one :class:`~bgpctl.errors.FileProblem` naming the file (and the line of a bad character).
"""

from __future__ import annotations

import errno
import os
import re
import stat

from bgpctl.errors import FileProblem, Problem

KIB = 1024

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
"""Characters refused in every text input: C0 controls except tab, LF and CR; DEL; C1 controls; the two
non-characters U+FFFE and U+FFFF."""


class InputFileError(Exception):
    """The file was refused; ``problem`` says why. Callers wrap it in their own RefusedInput subclass."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(problem.render())


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"  # pragma: no cover - every other kind is one of the above


def special_kind(path: str) -> str | None:
    """What ``path`` is when it exists and is not a regular file ("a socket", ...); None otherwise."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else _kind(mode)


def _size(n: int) -> str:
    return f"{n // KIB} KiB" if n % KIB == 0 else f"{n} bytes"


def _open(path: str, what: str, eg: str, *, nofollow: bool) -> int:
    """An fd of ``path`` opened for reading without blocking (a FIFO) or following a last-component link
    (``nofollow``); InputFileError saying what the path is otherwise."""

    def refuse(message: str, hint: str) -> InputFileError:
        return InputFileError(FileProblem(path, None, "", message, hint))

    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (os.O_NOFOLLOW if nofollow else 0)
    try:
        return os.open(path, flags)
    except FileNotFoundError:
        raise refuse("no such file", "check the path") from None
    except PermissionError:
        raise refuse("permission denied", "run as a user that can read it, or fix its mode") from None
    except OSError as e:
        if nofollow and e.errno == errno.ELOOP:
            raise refuse(
                "is a symbolic link", f"name the {what} file itself (a link could point anywhere){eg}"
            ) from None
        kind = special_kind(path)  # a socket cannot be opened (ENXIO): say what it is
        if kind is not None:
            raise refuse(f"is {kind}", f"name the {what} file itself{eg}") from None
        raise refuse(f"cannot open it: {e.strerror}", "check the path and its permissions") from None


def read_regular(path: str, max_bytes: int, what: str, example: str = "", *, nofollow: bool = False) -> bytes:
    """The bytes of the regular file ``path`` (at most ``max_bytes``); InputFileError otherwise.

    ``nofollow``: a symbolic link (as the last component) is refused rather than followed.

    ``what`` names the kind of file in hints ("policy", "stats snapshot"); ``example`` is a path to show.
    """

    def refuse(message: str, hint: str) -> InputFileError:
        return InputFileError(FileProblem(path, None, "", message, hint))

    eg = f", e.g. {example}" if example else ""

    fd = _open(path, what, eg, nofollow=nofollow)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise refuse(f"is {_kind(st.st_mode)}", f"name the {what} file itself{eg}")
        if st.st_size > max_bytes:
            raise refuse(
                f"is {st.st_size} bytes, more than the {_size(max_bytes)} a {what} may have",
                f"a {what} is a small text file: check that this is the right file",
            )
        data = b""
        while len(data) <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as e:
        raise refuse(f"cannot read it: {e.strerror}", "check the path and its permissions") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew while we read it
        raise refuse(
            f"is more than the {_size(max_bytes)} a {what} may have",
            f"a {what} is a small text file: check that this is the right file",
        )
    return data


def control_character(text: str) -> tuple[int, int, str] | None:
    """(line, column, U+XXXX) of the first refused control character in ``text``, or None."""
    m = _CONTROL.search(text)
    if m is None:
        return None
    line = text.count("\n", 0, m.start()) + 1
    column = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
    return line, column, f"U+{ord(m.group()):04X}"


def decode_text(data: bytes, path: str, what: str) -> str:
    """``data`` as UTF-8 text without control characters; InputFileError naming the byte or the line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise InputFileError(
            FileProblem(path, None, "", f"not UTF-8 text (byte {e.start}, line {line})", "save the file as UTF-8")
        ) from None
    check_characters(text, path, what)
    return text


def check_characters(text: str, path: str, what: str) -> None:
    """InputFileError at the first control character of ``text`` (see :data:`_CONTROL`)."""
    bad = control_character(text)
    if bad is not None:
        line, column, code = bad
        raise InputFileError(
            Problem(
                path,
                line,
                "",
                f"control character {code} at column {column}",
                f"a {what} is plain text: remove it; tab, line feed and carriage return are the only "
                "control characters allowed",
            )
        )


def read_text(path: str, max_bytes: int, what: str, example: str = "") -> str:
    """:func:`read_regular` then :func:`decode_text`."""
    return decode_text(read_regular(path, max_bytes, what, example), path, what)
