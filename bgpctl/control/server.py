"""The control socket's server, in the daemon's asyncio loop; never a TCP listener.

The socket (``control.sock`` in the run directory) is created mode 0600 (owner only), or 0660 with the
group of the policy's ``control.group``. Every connection's peer credentials (SO_PEERCRED: pid, uid,
gid) are read when it is accepted and go with each request to the :class:`Dispatcher`. A connection may
send requests one after the other; every limit of :mod:`bgpctl.control.protocol` holds (line size, time
to send a line, time to read the answer, connections at once), and a bad request gets one error answer
and changes nothing. Handlers are plain functions of the snapshot the loop keeps: answering never awaits
anything but the socket, so a request cannot hold up routing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from bgpctl import events
from bgpctl.control import protocol
from bgpctl.control.protocol import Code, ProtocolError, Request

Handler = Callable[[Mapping[str, Any]], Mapping[str, Any] | Awaitable[Mapping[str, Any]]]
"""A verb's handler: checked arguments -> result. Raises ProtocolError for a refusal. A verb that changes
state gets the peer credentials too, as ``args["by"]`` ({pid, uid, gid}; no client can send ``by``).
A handler may be a coroutine function (``reload``: it sets up probes); the others answer from the snapshot
without awaiting anything."""


@dataclass(frozen=True, slots=True)
class PeerCred:
    """Who is at the other end of a connection (SO_PEERCRED)."""

    pid: int
    uid: int
    gid: int

    def as_dict(self) -> dict[str, int]:
        return {"pid": self.pid, "uid": self.uid, "gid": self.gid}


def peer_cred(sock: socket.socket) -> PeerCred:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCred(pid, uid, gid)


def may_change_state(
    cred: PeerCred, *, owner_uid: int, group_gid: int | None, groups: Callable[[int], set[int]]
) -> bool:
    """Root, the daemon's own user, or (with ``control.group``) a member of that group."""
    if cred.uid in (0, owner_uid):
        return True
    if group_gid is None:
        return False
    return cred.gid == group_gid or group_gid in groups(cred.uid)


def groups_of(uid: int) -> set[int]:
    """The groups of user ``uid`` (its primary group and the supplementary ones); empty if unknown."""
    import pwd  # noqa: PLC0415 - only for state-changing verbs

    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return set()
    return set(os.getgrouplist(pw.pw_name, pw.pw_gid))


class Dispatcher:
    """Request line + peer credentials -> answer. Every verb goes through here; those that change state
    are checked against :func:`may_change_state` and logged (``control.change``: who, verb, args, reason)
    before their handler runs."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        log: structlog.typing.FilteringBoundLogger,
        *,
        verbs: Mapping[str, protocol.Verb] | None = None,
        owner_uid: int | None = None,
        group_gid: int | None = None,
        groups: Callable[[int], set[int]] = groups_of,
    ) -> None:
        self.verbs = dict(protocol.VERBS if verbs is None else verbs)
        missing = sorted(set(self.verbs) - set(handlers))
        if missing:
            raise ValueError(f"no handler for verb(s) {', '.join(missing)}")
        self.handlers = dict(handlers)
        self.log = log
        self.owner_uid = os.geteuid() if owner_uid is None else owner_uid
        self.group_gid = group_gid
        self.groups = groups

    def handle(self, line: bytes, cred: PeerCred) -> dict[str, Any]:
        """For handlers that answer at once (a coroutine handler is answered ``internal``: use
        :meth:`handle_async`)."""
        try:
            request = protocol.parse_request(line)
            result = self._run(request, cred)
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                raise TypeError(f"handler of {request.verb} is a coroutine: use handle_async")
            return protocol.ok(request.id, result)
        except ProtocolError as e:
            return self._refused(e, cred)
        except Exception as e:  # a bug in a handler: answer, log it, keep the daemon running
            return self._failed(e, cred)

    async def handle_async(self, line: bytes, cred: PeerCred) -> dict[str, Any]:
        """As :meth:`handle`, awaiting a coroutine handler (the server's path)."""
        try:
            request = protocol.parse_request(line)
            result = self._run(request, cred)
            if inspect.isawaitable(result):
                try:
                    result = await result
                except ProtocolError as e:
                    e.request_id = request.id
                    raise
            return protocol.ok(request.id, result)
        except ProtocolError as e:
            return self._refused(e, cred)
        except Exception as e:  # a bug in a handler: answer, log it, keep the daemon running
            return self._failed(e, cred)

    def _refused(self, e: ProtocolError, cred: PeerCred) -> dict[str, Any]:
        self.log.info(events.CONTROL_REFUSED, code=str(e.code), error=e.message, **cred.as_dict())
        return protocol.error_of(e)

    def _failed(self, e: Exception, cred: PeerCred) -> dict[str, Any]:
        self.log.exception(events.CONTROL_FAILED, error=repr(e), **cred.as_dict())
        return protocol.error(None, Code.INTERNAL, "the daemon failed to answer (logged)", "report it with the log")

    def _run(self, request: Request, cred: PeerCred) -> Mapping[str, Any] | Awaitable[Mapping[str, Any]]:
        verb = self.verbs.get(request.verb)
        if verb is None:
            raise ProtocolError(
                Code.UNKNOWN_VERB,
                f"unknown verb '{protocol._clip(request.verb)}'",
                f"verbs: {', '.join(sorted(self.verbs))}",
                request.id,
            )
        try:
            args = protocol.check_args(verb, request.args)
        except ProtocolError as e:
            e.request_id = request.id
            raise
        if verb.changes_state:
            if not may_change_state(cred, owner_uid=self.owner_uid, group_gid=self.group_gid, groups=self.groups):
                raise ProtocolError(
                    Code.FORBIDDEN,
                    f"{verb.name} changes the daemon's state: uid {cred.uid} may not",
                    "run it as root or as a member of the policy's control.group",
                    request.id,
                )
            self.log.warning(events.CONTROL_CHANGE, verb=verb.name, args=args, reason=args["reason"], **cred.as_dict())
            args = {**args, "by": cred.as_dict()}
        else:
            self.log.debug(events.CONTROL_REQUEST, verb=verb.name, args=args, **cred.as_dict())
        try:
            return self.handlers[verb.name](args)
        except ProtocolError as e:
            e.request_id = request.id
            raise


class ControlServer:
    """Listens on ``path`` (a Unix socket) and answers through ``dispatcher``."""

    def __init__(
        self,
        path: Path,
        dispatcher: Dispatcher,
        log: structlog.typing.FilteringBoundLogger,
        *,
        group_gid: int | None = None,
        request_timeout_s: float = protocol.REQUEST_TIMEOUT_S,
        write_timeout_s: float = protocol.WRITE_TIMEOUT_S,
        max_connections: int = protocol.MAX_CONNECTIONS,
    ) -> None:
        self.path, self.dispatcher, self.log = Path(path), dispatcher, log
        self.group_gid = group_gid
        self.request_timeout_s, self.write_timeout_s = request_timeout_s, write_timeout_s
        self.max_connections = max_connections
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self.counters: dict[str, int] = {"connections": 0, "requests": 0, "refused": 0}

    @property
    def open_connections(self) -> int:
        return len(self._clients)

    def _bind(self) -> socket.socket:
        """Bind with a umask that leaves no window in which others could connect, then set the mode."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket of an earlier daemon: the run directory's lock says we own it
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        except OSError:
            sock.close()
            raise
        finally:
            os.umask(old)
        if self.group_gid is not None:
            os.chown(self.path, -1, self.group_gid)
            os.chmod(self.path, 0o660)
        else:
            os.chmod(self.path, 0o600)
        sock.listen(self.max_connections)
        sock.setblocking(False)
        return sock

    async def start(self) -> None:
        sock = self._bind()
        self._server = await asyncio.start_unix_server(self._on_client, sock=sock, limit=protocol.MAX_REQUEST_BYTES)
        self.log.info(
            events.CONTROL_LISTENING,
            socket=str(self.path),
            mode=oct(self.path.stat().st_mode & 0o777),
            gid=self.group_gid,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for t in list(self._clients):
            t.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or stopped reading: nothing to answer
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), self.write_timeout_s)

    async def _answer(self, writer: asyncio.StreamWriter, message: Mapping[str, Any]) -> None:
        writer.write(protocol.encode(message))
        await asyncio.wait_for(writer.drain(), self.write_timeout_s)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.counters["connections"] += 1
        sock = writer.get_extra_info("socket")
        cred = peer_cred(sock)
        if len(self._clients) > self.max_connections:
            self.counters["refused"] += 1
            self.log.warning(events.CONTROL_REFUSED, code=str(Code.BUSY), **cred.as_dict())
            await self._answer(
                writer,
                protocol.error(
                    None, Code.BUSY, f"{self.max_connections} control connections are open", "try again shortly"
                ),
            )
            return
        while True:
            try:
                line = await asyncio.wait_for(reader.readuntil(b"\n"), self.request_timeout_s)
            except TimeoutError:
                await self._answer(
                    writer,
                    protocol.error(
                        None,
                        Code.TIMEOUT,
                        f"no whole request line within {self.request_timeout_s:g} s",
                        "send the request and its newline at once",
                    ),
                )
                return
            except asyncio.LimitOverrunError:
                await self._answer(
                    writer,
                    protocol.error(
                        None, Code.TOO_LARGE, f"request longer than {protocol.MAX_REQUEST_BYTES} bytes", "send less"
                    ),
                )
                return
            except asyncio.IncompleteReadError as e:
                if e.partial.strip():  # the client closed its side after a line without its newline
                    await self._answer(writer, await self.dispatcher.handle_async(e.partial, cred))
                return
            self.counters["requests"] += 1
            await self._answer(writer, await self.dispatcher.handle_async(line, cred))
