"""What the datagram probe kinds (STAMP over UDP, ICMP echo) share: one non-blocking socket bound to
the path's probe source, marked with the service's DSCP, read as replies arrive (``watch``) or once per
probe slot (:meth:`DatagramProbe.poll`), with the kernel's receive timestamps.

A subclass opens its socket kind (:meth:`_new_socket`), sends, and judges each datagram
(:meth:`_judge`): a :class:`~bgpctl.probe.protocol.ProbeResult`, a
:class:`~bgpctl.probe.protocol.Problem`, or nothing (somebody else's packet).
"""

from __future__ import annotations

import asyncio
import socket
from typing import TypeAlias

from bgpctl.probe.netns import entered
from bgpctl.probe.protocol import BadCallback, ProbeResult, Problem, ResultCallback
from bgpctl.probe.sockopt import ancillary_space, enable_receive_info, set_dscp

Address: TypeAlias = tuple[str, int] | tuple[str, int, int, int]
Ancillary: TypeAlias = list[tuple[int, int, bytes]]


class DatagramProbe:
    source: str
    dscp: int
    netns: str | None
    recv_size: int = 65535

    def __init__(self) -> None:
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watching = False
        self._on_result: ResultCallback | None = None
        self._on_bad: BadCallback | None = None
        self._ancspace = ancillary_space()

    # ------------------------------------------------------------------ for subclasses

    def _new_socket(self) -> socket.socket:
        raise NotImplementedError

    def _configure(self, sock: socket.socket) -> None:
        """Extra socket options of the kind (after bind and DSCP)."""

    def _judge(
        self, data: bytes, flags: int, addr: Address, anc: Ancillary
    ) -> tuple[Problem | None, ProbeResult | None]:
        raise NotImplementedError

    # ------------------------------------------------------------------ the Probe protocol

    def open(self, on_result: ResultCallback, on_bad: BadCallback, *, watch: bool = True) -> None:
        with entered(self.netns):
            sock = self._new_socket()
        try:
            sock.setblocking(False)
            sock.bind((self.source, 0))
            set_dscp(sock, self.dscp)
            self._configure(sock)
            enable_receive_info(sock)
        except BaseException:
            sock.close()
            raise
        self._sock, self._on_result, self._on_bad = sock, on_result, on_bad
        self._loop = asyncio.get_running_loop()
        self._watching = watch
        if watch:
            self._loop.add_reader(sock.fileno(), self.poll)

    def close(self) -> None:
        if self._sock is not None:
            if self._watching and self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def poll(self) -> None:
        sock = self._sock
        if sock is None:
            return
        assert self._on_result is not None and self._on_bad is not None
        while True:
            try:
                data, anc, flags, addr = sock.recvmsg(self.recv_size, self._ancspace)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # a queued socket error: reported once; what is left is read next time
                return
            problem, result = self._judge(data, flags, addr, anc)
            if problem is not None:
                self._on_bad(problem)
            elif result is not None:
                self._on_result(result)
