"""Reading a signal's source: a flag file or an HTTP(S) JSON document. Each read returns a
:class:`~bgpctl.signals.document.Reading` (the document, or the SignalError saying why not); nothing raises.

* File: read in a worker thread (a hung file system never stalls the event loop). Absent: the signal says
  nothing (fresh, no marks). A symbolic link, a directory, a FIFO, a device, an unreadable or oversized
  file is refused (:func:`bgpctl.inputfile.read_regular`, without following a link). Empty (or only
  white space): the policy's ``present`` mark, if it has one. Otherwise a JSON or YAML document.
* HTTP(S): one GET with httpx under ``asyncio.timeout(timeout_s)`` for the whole exchange (connect, TLS,
  headers, body: a server that trickles bytes is cut at the deadline), the body streamed and cut past
  ``max_bytes`` (also after content decoding), redirects refused (``url`` must name the document itself),
  any status but 200 refused. Proxies and netrc from the environment are not used (``trust_env=False``).
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Callable
from typing import Protocol

import httpx

from bgpctl import __version__
from bgpctl.core.types import Health, SignalMark
from bgpctl.inputfile import InputFileError, read_regular
from bgpctl.policy.model import FileSignal, HttpSignal, MarkState, Policy
from bgpctl.signals.document import Document, Reading, SignalError, document_reading, parse_document

USER_AGENT = f"bgpctl/{__version__} (outside signals)"


class Source(Protocol):
    name: str

    async def read(self) -> Reading: ...


class FileSource:
    def __init__(self, name: str, spec: FileSignal, policy: Policy, clock: Callable[[], float] = time.time) -> None:
        self.name, self.spec, self.policy, self.clock = name, spec, policy, clock

    async def read(self) -> Reading:
        return await asyncio.to_thread(self.read_now)

    def read_now(self) -> Reading:
        """The blocking read (the daemon calls :meth:`read`, which runs this in a worker thread)."""
        at = self.clock()
        try:
            st = os.lstat(self.spec.path)
        except FileNotFoundError:
            return Reading(at, Document(()))  # no flag: the signal says nothing
        except OSError as e:
            return Reading(at, error=SignalError("unreadable", f"{self.spec.path}: cannot stat it: {e.strerror}"))
        if stat.S_ISREG(st.st_mode) and st.st_size > self.spec.max_bytes:
            return Reading(at, error=_too_large(self.spec.path, st.st_size, self.spec.max_bytes))
        try:
            data = read_regular(self.spec.path, self.spec.max_bytes, "signal", nofollow=True)
        except InputFileError as e:
            reason = "too_large" if "more than" in e.problem.message else "unreadable"
            return Reading(at, error=SignalError(reason, e.problem.render()))
        try:
            return document_reading(at, self._document(data), born=st.st_mtime)
        except SignalError as e:
            return Reading(at, error=SignalError(e.reason, f"{self.spec.path}: {e.message}"))

    def _document(self, data: bytes) -> Document:
        if data.strip():
            return parse_document(self.name, data, self.policy, yaml=True)
        present = self.spec.present
        if present is None:
            raise SignalError(
                "malformed",
                "the file is empty and the policy gives this signal no 'present' mark: write a document "
                "(docs/signals.md) into it, or add present: {region: ..., reason: ...} to the policy",
            )
        health = Health.DOWN if present.state is MarkState.DOWN else Health.DEGRADED
        return Document((SignalMark(self.name, present.region, present.path, health, present.reason),))


def _too_large(where: str, size: int | None, limit: int) -> SignalError:
    said = f"{size} bytes" if size is not None else "more"
    return SignalError("too_large", f"{where}: {said}, more than max_bytes {limit}: is this the right document?")


class HttpSource:
    def __init__(
        self,
        name: str,
        spec: HttpSignal,
        policy: Policy,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name, self.spec, self.policy, self.client, self.clock = name, spec, policy, client, clock

    async def read(self) -> Reading:
        at = self.clock()
        try:
            async with asyncio.timeout(self.spec.timeout_s):
                data = await self._fetch()
            return document_reading(at, parse_document(self.name, data, self.policy))
        except SignalError as e:
            return Reading(at, error=e)
        except (TimeoutError, httpx.TimeoutException):
            return Reading(
                at, error=SignalError("timeout", f"no complete answer within timeout_s {self.spec.timeout_s:g} s")
            )
        except httpx.ConnectError as e:
            return Reading(at, error=SignalError("connect", f"cannot connect: {_said(e)}"))
        except httpx.HTTPError as e:
            return Reading(at, error=SignalError("http", f"{type(e).__name__}: {_said(e)}"))

    async def _fetch(self) -> bytes:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        limit = self.spec.max_bytes
        timeout = httpx.Timeout(self.spec.timeout_s)
        async with self.client.stream("GET", self.spec.url, headers=headers, timeout=timeout) as r:
            if r.is_redirect:
                where = r.headers.get("location", "?")[:200]
                raise SignalError(
                    "redirect",
                    f"HTTP {r.status_code} redirect to {where!r}: redirects are not followed, set url to the "
                    "document's own address",
                )
            if r.status_code != 200:
                raise SignalError("http_status", f"HTTP {r.status_code} {r.reason_phrase}".rstrip())
            length = r.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise _too_large(self.spec.url, int(length), limit)
            body = bytearray()
            async for chunk in r.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise _too_large(self.spec.url, None, limit)
        return bytes(body)


def _said(e: Exception) -> str:
    return str(e) or type(e).__name__


def make_client() -> httpx.AsyncClient:
    """The daemon's one HTTP client (a pool shared by the HTTP signals)."""
    return httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=httpx.Timeout(60.0))


def sources(policy: Policy, client: httpx.AsyncClient | None) -> dict[str, FileSource | HttpSource]:
    """One source per signal of the policy (``client``: for the HTTP ones)."""
    out: dict[str, FileSource | HttpSource] = {}
    for name, spec in policy.signals.items():
        if isinstance(spec, FileSignal):
            out[name] = FileSource(name, spec, policy)
        else:
            assert client is not None, "an HTTP signal needs the client"
            out[name] = HttpSource(name, spec, policy, client)
    return out
