"""What the datagram probe kinds (STAMP over UDP, ICMP echo) share: one non-blocking socket bound to
the path's probe source, marked with the service's DSCP, read as replies arrive (``watch``) or once per
probe slot (:meth:`DatagramProbe.poll`), with the kernel's receive timestamps, and the kernel's
transmit timestamps as send times (:mod:`bgpctl.probe.txstamp`).

Transmit stamps: :meth:`DatagramProbe._transmit` sends, then reads the error queue once; on veth and
loopback the stamp is there by the time sendto() returns (the driver stamps inside the call), and
:meth:`~bgpctl.probe.protocol.Probe.send` returns it. A stamp that comes later (a qdisc held the packet)
is read at the next :meth:`DatagramProbe.poll`, before the replies, and rides on the reply's
:class:`~bgpctl.probe.protocol.ProbeResult` (``sent``). A reply to a probe without a stamp keeps the
user-space send time and is counted (``user_tx_stamp``). Nothing here waits for a stamp.

A subclass opens its socket kind (:meth:`_new_socket`), sends, and judges each datagram
(:meth:`_judge`): a :class:`~bgpctl.probe.protocol.ProbeResult`, a
:class:`~bgpctl.probe.protocol.Problem`, or nothing (somebody else's packet).
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from typing import TypeAlias

from bgpctl.probe.netns import entered
from bgpctl.probe.protocol import BadCallback, ProbeResult, Problem, ResultCallback
from bgpctl.probe.sockopt import (
    ancillary_space,
    enable_receive_info,
    enable_transmit_stamps,
    read_tx_stamps,
    restart_transmit_stamps,
    set_dscp,
)
from bgpctl.probe.txstamp import TxBook

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
        self._tx = TxBook()
        self._tx_on = False  # the kernel agreed to give transmit stamps
        self._tx_waiting = 0  # sends whose error-queue message has not been read (poll reads it if > 0)

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
            self._tx_on = enable_transmit_stamps(sock)
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
        if self._tx_waiting:
            self._read_tx_stamps(sock, once=False)
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
                self._on_result(self._with_send_time(result))

    # ------------------------------------------------------------------ transmit stamps

    def _transmit(self, seq: int, data: bytes, addr: Address, user_ns: int) -> float:
        """Send ``data`` as probe ``seq`` (``user_ns``: time.time_ns() read just before); return the send
        time, the kernel's if its stamp is already there. Raises OSError if the kernel refused."""
        sock = self._sock
        assert sock is not None, "open() first"
        user_at = user_ns / 1e9
        try:
            sock.sendto(data, addr)
        except OSError:
            if self._tx_on:
                self._restart_tx(sock)
            raise
        self._tx.sent(seq, user_at)
        if not self._tx_on:
            return user_at
        self._tx_waiting += 1
        self._read_tx_stamps(sock, once=True)
        kernel_at = self._tx.kernel_at(seq)
        return user_at if kernel_at is None else kernel_at

    def _read_tx_stamps(self, sock: socket.socket, *, once: bool) -> None:
        """Read the error queue (one message, or until it is empty): never blocks."""
        self._tx_waiting = max(0, self._tx_waiting - len(read_tx_stamps(sock, self._tx, once=once)))

    def _restart_tx(self, sock: socket.socket) -> None:
        """After a failed send (which may have used a packet number): read what is queued, then make the
        kernel number from 0 again."""
        self._read_tx_stamps(sock, once=False)
        self._tx_on = restart_transmit_stamps(sock)
        self._tx.restart()
        # _tx_waiting stays: stamps of packets a qdisc still holds come later, and the error queue must be
        # read when they do (a watched socket's reader is woken as long as the queue is not empty).

    def _send_time(self, seq: int) -> float | None:
        """The kernel's transmit time of probe ``seq``, if its stamp has come."""
        return self._tx.kernel_at(seq)

    def _with_send_time(self, result: ProbeResult) -> ProbeResult:
        """Attach the kernel's transmit time to ``result``, or count that there is none."""
        if result.sent is not None:
            return result
        kernel_at = self._tx.kernel_at(result.seq)
        if kernel_at is not None:
            return dataclasses.replace(result, sent=kernel_at)
        if self._tx.knows(result.seq):
            assert self._on_bad is not None
            self._on_bad(Problem.USER_TX_STAMP)
        return result
