"""Client connections: the limit on how many are held at once, and how many are open.

Granian holds at most MAX_CONNECTIONS connections (its `backpressure`: a connection takes a
permit before it is accepted and gives it back when it closes). At the limit it stops
accepting, and new connections wait in the kernel's listen queue, which clients see as a
hang until their own timeout. `LimitGuard` turns that wait into a close at once: when the
queue stays non-empty across two looks and the connections held reach the limit, it
accepts what waits and closes it, so a client or a load balancer learns at once to go
elsewhere.

Granian exposes no count of its connections in embedded mode. It serves inside this
process, so every connection it holds is a socket descriptor of this process: `Connections`
counts those whose local end is the service's port, plus those the kernel has accepted and
granian not yet (the listen queue's length). The kernel's own socket diagnostics (what `ss`
reads) give the same count but walk the kernel's whole table of established sockets at
every call, whose size follows the machine's memory: 4 ms on an idle service (README,
"Reliability").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import resource
import socket
import stat
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.metrics_core import Metric

from example_service.metrics.family import Family, FamilyCollector, Samples
from example_service.system.files import KEPT_DESCRIPTORS

log = logging.getLogger(__name__)

# Descriptors the process needs besides its connections: the listener, the event loop's,
# the worker pool's pipes, files read at scrape time.
RESERVED_DESCRIPTORS = 256
# How often the guard looks at the listen queue: a connection beyond the limit is closed
# within two looks.
GUARD_INTERVAL = 0.05
# How long a count of the connections held stands for the guard.
RECOUNT = 1.0


def somaxconn(procfs_root: Path) -> int | None:
    """The kernel's ceiling on a listen queue, or None when it cannot be read."""
    try:
        return int((procfs_root / "sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return None


def listen_backlog(max_connections: int, ceiling: int | None) -> int:
    """A queue as deep as the connection limit, within the kernel's ceiling (which it would
    otherwise apply silently): a burst of that many clients connecting at once all get in."""
    return max_connections if ceiling is None else min(max_connections, ceiling)


def raise_descriptor_limit(max_connections: int) -> int:
    """Raise the soft limit on open files to the hard one (as Go's runtime does at start),
    and return the connections that fit in it beside the process's own descriptors.

    A full descriptor table does not refuse a connection: accept() fails while the
    connection stays queued, which is a hang for the client.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard not in (resource.RLIM_INFINITY, soft):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft == resource.RLIM_INFINITY:
        return max_connections
    fits = max(1, soft - RESERVED_DESCRIPTORS)
    if fits < max_connections:
        log.warning(
            "open files limit below MAX_CONNECTIONS: holding fewer connections",
            extra={"max_connections": max_connections, "open_files_limit": soft, "held": fits},
        )
        return fits
    return max_connections


def _sockets() -> Iterator[tuple[int, int]]:
    """The descriptor and inode of each socket this process has open.

    fstat rather than readlink on /proc/self/fd: a third of the cost per descriptor. The
    files the readers keep open are known not to be sockets, and are not looked at.
    """
    for name in os.listdir("/proc/self/fd"):
        descriptor = int(name)
        if descriptor in KEPT_DESCRIPTORS:
            continue
        try:
            status = os.fstat(descriptor)
        except OSError:  # closed since listed, the listing's own descriptor among them
            continue
        if stat.S_ISSOCK(status.st_mode):
            yield descriptor, status.st_ino


def _duplicate(descriptor: int, inode: int) -> socket.socket | None:
    """A socket object on a duplicate of descriptor, or None if descriptor no longer holds
    the socket inode (closed, and its number reused, since it was listed)."""
    try:
        duplicate = os.dup(descriptor)
    except OSError:
        return None
    try:
        if os.fstat(duplicate).st_ino == inode:
            return socket.socket(fileno=duplicate)
    except OSError:
        pass
    os.close(duplicate)
    return None


def _local_port(candidate: socket.socket) -> int | None:
    if candidate.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    if candidate.type != socket.SOCK_STREAM:
        return None
    return int(candidate.getsockname()[1])


def find_listener(port: int) -> socket.socket | None:
    """A duplicate of the server's listening socket on port, found among this process's
    descriptors (granian makes the listener itself and does not hand it out), or None."""
    for descriptor, inode in _sockets():
        candidate = _duplicate(descriptor, inode)
        if candidate is None:
            continue
        try:
            if _local_port(candidate) == port and candidate.getsockopt(
                socket.SOL_SOCKET, socket.SO_ACCEPTCONN
            ):
                candidate.setblocking(False)
                return candidate
        except OSError:
            pass
        candidate.close()
    return None


def _is_connection(descriptor: int, inode: int, port: int) -> bool | None:
    """Whether the socket is a TCP connection whose local end is port (one the server
    accepted); None if the descriptor no longer holds it.

    Granian keeps, beside its listener, a socket bound to the port that neither listens
    nor connects: a connection is the one with a peer.
    """
    candidate = _duplicate(descriptor, inode)
    if candidate is None:
        return None
    with candidate:
        if _local_port(candidate) != port:
            return False
        try:
            candidate.getpeername()
        except OSError:
            return False
        return True


def _queued(listener: socket.socket) -> int:
    # For a listening socket, struct tcp_info's tcpi_unacked is the length of its accept
    # queue (Linux tcp_get_info), read without taking anything from the queue.
    info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("=I", info, 24)[0])


class Connections:
    """The client connections to the service's port: those the server holds, and those
    waiting in the listen queue.

    Each socket is looked at once, when first seen (a few microseconds); after that a count
    costs one fstat per descriptor of the process.
    """

    def __init__(self, port: int) -> None:
        self._port = port
        self._lock = threading.Lock()  # a scrape may count off the event loop
        self._listener: socket.socket | None = None
        self._closed = False
        # Socket inode: whether it is a connection to the port. Inodes of closed sockets
        # drop out at the next count.
        self._kinds: dict[int, bool] = {}

    def listener(self) -> socket.socket | None:
        """A duplicate of the server's listener, once the server has made it."""
        with self._lock:
            if self._listener is None and not self._closed:
                self._listener = find_listener(self._port)
            return self._listener

    def held(self) -> int:
        """The connections the server has accepted and not closed: open on its side."""
        with self._lock:
            kinds: dict[int, bool] = {}
            for descriptor, inode in _sockets():
                kind = self._kinds.get(inode)
                if kind is None:
                    kind = _is_connection(descriptor, inode, self._port)
                if kind is not None:
                    kinds[inode] = kind
            self._kinds = kinds
            return sum(kinds.values())

    def queued(self) -> int:
        """The connections the kernel has accepted for the server, not yet taken by it."""
        listener = self.listener()
        return 0 if listener is None else _queued(listener)

    def close(self) -> None:
        """Before the server closes its listener: the duplicate would keep it listening."""
        with self._lock:
            self._closed = True
            if self._listener is not None:
                self._listener.close()
                self._listener = None


class LimitGuard:
    """Closes at once the connections that wait because granian holds its limit."""

    def __init__(self, connections: Connections, limit: int) -> None:
        self._connections = connections
        self._limit = limit
        self._task: asyncio.Task[None] | None = None
        self._warned = False
        self._at_limit = False
        self._checked = -math.inf
        self.closed = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        waited = False
        while True:
            await asyncio.sleep(GUARD_INTERVAL)
            # Granian's worker makes its listener just after the start-up hook.
            listener = self._connections.listener()
            if listener is None:
                continue
            queued = _queued(listener)
            if queued and waited and self._holds_limit(loop.time()):
                self._close(listener, queued)
            waited = queued > 0

    def _holds_limit(self, now: float) -> bool:
        """Whether granian holds MAX_CONNECTIONS: a queue that lasts may also be a burst of
        connections that granian, short of CPU, has not caught up with yet. The count costs
        an fstat per descriptor, thousands at the limit, so it is taken at most once a
        RECOUNT."""
        if now - self._checked >= RECOUNT:
            self._checked = now
            self._at_limit = self._connections.held() >= self._limit
        return self._at_limit

    def _close(self, listener: socket.socket, count: int) -> None:
        for _ in range(count):
            try:
                connection, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # granian took the rest
            except OSError as error:  # out of descriptors: the rest stay queued
                if not self._warned:
                    self._warned = True
                    log.warning("cannot close connections over the limit: %s", error)
                return
            # A reset rather than a FIN: the client learns at once, instead of after
            # sending a request that nobody reads.
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()
            self.closed += 1

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._connections.close()


OPEN = Family(
    "gauge",
    "example_service_connections_open",
    "Client connections to the service's port open on its side, those waiting to be "
    "accepted included.",
)
CLOSED = Family(
    "counter",
    "example_service_connections_closed_at_limit",
    "Connections closed at once because MAX_CONNECTIONS were already held.",
)


class ConnectionsCollector(FamilyCollector):
    """The open connections, counted at scrape time, and those closed at the limit."""

    def __init__(self, connections: Connections, guard: LimitGuard) -> None:
        self._connections = connections
        self._guard = guard

    def describe(self) -> Iterator[Metric]:
        yield OPEN.metric()
        yield CLOSED.metric()

    def samples(self) -> Iterator[tuple[Family, Samples]]:
        with contextlib.suppress(OSError):  # no /proc mounted: no sample
            open_ = self._connections.held() + self._connections.queued()
            yield OPEN, (((), open_),)
        yield CLOSED, (((), self._guard.closed),)
