"""The blocking client of the control socket, for the CLI (stdlib only: ``bgpctl status`` starts fast).

:func:`call` sends one request and returns the result; every way it can fail is a :class:`ControlError`
with one line saying what to do (the daemon is not running, permission denied, it did not answer in
time, it refused the request).
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bgpctl.control import protocol
from bgpctl.errors import EXIT_REFUSED, EXIT_USAGE, BgpctlError

DEFAULT_TIMEOUT_S = 10.0
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class ControlError(BgpctlError):
    """The daemon could not be asked, or refused: exit code 1 (2 for arguments it refused, 3 for a change
    it refused as it stands: the last healthy region, an override that is not in force)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        if code in (protocol.Code.BAD_ARGS, protocol.Code.UNKNOWN_VERB):
            self.exit_code = EXIT_USAGE
        elif code == protocol.Code.REFUSED:
            self.exit_code = EXIT_REFUSED


def socket_path(run_dir: Path) -> Path:
    return run_dir / protocol.SOCKET_NAME


def _connect(path: Path, timeout_s: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(str(path))
    except OSError as e:
        sock.close()
        raise ControlError(_why_not(path, e)) from None
    return sock


def _why_not(path: Path, e: OSError) -> str:
    if e.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR):
        what = "no socket" if e.errno != errno.ECONNREFUSED else "a stale socket, nobody listening"
        return (
            f"the daemon is not running ({what} at {path}): start it (systemctl start bgpctl), "
            "or give the run directory it uses with --run-dir or --policy"
        )
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied on {path}: run as root, or as a member of the policy's control.group"
    if isinstance(e, TimeoutError):
        return f"the daemon did not accept a connection on {path} in time: is it stuck? (see its log)"
    return f"cannot connect to {path}: {e.strerror or e}"


def _read_line(sock: socket.socket, path: Path) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            raise ControlError(f"the daemon did not answer in time on {path}: is it stuck? (see its log)") from None
        except OSError as e:
            raise ControlError(f"the connection to the daemon broke ({e.strerror or e}) on {path}") from None
        if not chunk:
            raise ControlError(f"the daemon closed the connection without an answer on {path} (see its log)")
        chunks.append(chunk)
        size += len(chunk)
        if b"\n" in chunk:
            return b"".join(chunks).split(b"\n", 1)[0]
        if size > MAX_ANSWER_BYTES:
            raise ControlError(f"the daemon's answer on {path} is larger than {MAX_ANSWER_BYTES} bytes")


def parse_answer(line: bytes, path: Path) -> Mapping[str, Any]:
    """An answer line -> its result; ControlError with the daemon's message and hint for an error."""
    try:
        answer = json.loads(line)
    except ValueError:
        raise ControlError(f"the daemon's answer on {path} is not JSON: is this a bgpctl control socket?") from None
    if not isinstance(answer, dict) or answer.get("v") != protocol.VERSION or not isinstance(answer.get("ok"), bool):
        raise ControlError(f"the daemon on {path} does not speak control protocol version {protocol.VERSION}")
    if answer["ok"]:
        result = answer.get("result")
        if not isinstance(result, dict):
            raise ControlError(f"the daemon's answer on {path} has no result object")
        return result
    err = answer["error"] if isinstance(answer.get("error"), dict) else {}
    message, hint, code = str(err.get("message", "refused")), str(err.get("hint", "")), err.get("code")
    sep = "\n" if "\n" in message else " "  # a list of problems (reload): the hint on a line of its own
    return _raise(f"the daemon refused: {message}" + (f"{sep}({hint})" if hint else ""), code)


def _raise(message: str, code: object) -> Mapping[str, Any]:
    raise ControlError(message, code if isinstance(code, str) else None)


def call(
    run_dir: Path, verb: str, args: Mapping[str, Any] | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Mapping[str, Any]:
    """Ask the daemon of ``run_dir`` one thing; its result, or ControlError."""
    path = socket_path(run_dir)
    sock = _connect(path, timeout_s)
    try:
        try:
            sock.sendall(protocol.request_line(verb, args))
        except (BrokenPipeError, ConnectionResetError):
            # the daemon may answer before it reads (``busy``) and close: its answer is still ours to read
            pass
        except OSError as e:
            raise ControlError(f"cannot send to the daemon on {path}: {e.strerror or e}") from None
        return parse_answer(_read_line(sock, path), path)
    finally:
        sock.close()
