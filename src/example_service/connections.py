"""Client connections: the limit on how many are held at once, and how many are open.

Granian holds at most MAX_CONNECTIONS connections (its `backpressure`: a connection takes a
permit before it is accepted and gives it back when it closes). At the limit it stops
accepting, and new connections wait in the kernel's listen queue, which clients see as a
hang until their own timeout. `LimitGuard` turns that wait into a close at once: when the
queue stays non-empty across two looks and the connections held reach the limit, it
accepts what waits and closes it, so a client or a load balancer learns at once to go
elsewhere.

Granian exposes no count of its connections in embedded mode. The gauge counts, at scrape
time, the open TCP connections to the service's port as the kernel's socket diagnostics
report them (what `ss` reads): an exact count, those waiting in the listen queue included.
/proc/net/tcp says the same at several times the cost: it formats every socket as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import os
import resource
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Descriptors the process needs besides its connections: the listener, the event loop's,
# the worker pool's pipes, files read at scrape time.
RESERVED_DESCRIPTORS = 256
# How often the guard looks at the listen queue: a connection beyond the limit is closed
# within two looks.
GUARD_INTERVAL = 0.05
# How long a count of the connections held stands for the guard.
RECOUNT = 1.0

# Socket diagnostics over netlink, from <linux/sock_diag.h>, <linux/inet_diag.h>, <linux/netlink.h>.
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_BC_S_GE = 2
INET_DIAG_BC_S_LE = 3
TCP_ESTABLISHED = 1
TCP_CLOSE_WAIT = 8
# Open on the service's side: established, or closed by the client and not yet by the server.
OPEN_STATES = 1 << TCP_ESTABLISHED | 1 << TCP_CLOSE_WAIT
_NLMSG_HEADER = struct.Struct("=IHHII")
_INET_DIAG_REQ_V2 = struct.Struct("=BBBBI48x")  # family, protocol, ext, pad, states, sockid
_BC_OP = struct.Struct("=BBH")  # code, jump when true, jump when false
_NLA_HEADER = struct.Struct("=HH")


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


def find_listener(port: int) -> socket.socket | None:
    """A duplicate of the server's listening socket on port, found among this process's
    descriptors (granian makes the listener itself and does not hand it out), or None."""
    for name in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            candidate = socket.socket(fileno=os.dup(int(name)))
        except OSError:  # closed since listed
            continue
        try:
            bound = candidate.getsockname()
            if (
                candidate.type == socket.SOCK_STREAM
                and candidate.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                and isinstance(bound, tuple)
                and bound[1] == port
            ):
                candidate.setblocking(False)
                return candidate
        except OSError:
            pass
        candidate.close()
    return None


def _queued(listener: socket.socket) -> int:
    # For a listening socket, struct tcp_info's tcpi_unacked is the length of its accept
    # queue (Linux tcp_get_info), read without taking anything from the queue.
    info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    return int(struct.unpack_from("=I", info, 24)[0])


class LimitGuard:
    """Closes at once the connections that wait because granian holds its limit."""

    def __init__(self, port: int, family: socket.AddressFamily, limit: int) -> None:
        self._port = port
        self._family = family
        self._limit = limit
        self._listener: socket.socket | None = None
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
            if self._listener is None:
                # Granian's worker makes its listener just after the start-up hook.
                self._listener = find_listener(self._port)
                continue
            queued = _queued(self._listener)
            if queued and waited and self._holds_limit(queued, loop.time()):
                self._close(self._listener, queued)
            waited = queued > 0

    def _holds_limit(self, queued: int, now: float) -> bool:
        """Whether granian holds MAX_CONNECTIONS: a queue that lasts may also be a burst of
        connections that granian, short of CPU, has not caught up with yet. The count costs
        a walk of the kernel's socket table, so it is taken at most once a RECOUNT."""
        if now - self._checked >= RECOUNT:
            self._checked = now
            self._at_limit = established(self._port, self._family) - queued >= self._limit
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
        """Before the server closes its listener: this duplicate would keep it listening."""
        if self._task is not None:
            self._task.cancel()
        if self._listener is not None:
            self._listener.close()


def family_of(host: str) -> socket.AddressFamily:
    """The address family of the listener, and so of every connection it accepts (IPv4
    clients of an IPv6 wildcard listener arrive as IPv4-mapped IPv6 connections)."""
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


def established(port: int, family: socket.AddressFamily) -> int:
    """Open TCP connections of family whose local port is port, in this network namespace.

    The kernel filters by port, but walks its whole table of established sockets to do so:
    the cost grows with that table's size (set by the machine's memory) and with the
    connections open (measured in README, "Reliability").
    """
    # Accept sport >= port, then sport <= port; a false test jumps past the end, which
    # rejects. Each comparison op carries its port in the op that follows it.
    bytecode = (
        _BC_OP.pack(INET_DIAG_BC_S_GE, 8, 20)
        + _BC_OP.pack(0, 0, port)
        + _BC_OP.pack(INET_DIAG_BC_S_LE, 8, 12)
        + _BC_OP.pack(0, 0, port)
    )
    request = (
        _INET_DIAG_REQ_V2.pack(family, socket.IPPROTO_TCP, 0, 0, OPEN_STATES)
        + _NLA_HEADER.pack(_NLA_HEADER.size + len(bytecode), INET_DIAG_REQ_BYTECODE)
        + bytecode
    )
    header = _NLMSG_HEADER.pack(
        _NLMSG_HEADER.size + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
    )
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as netlink:
        netlink.sendto(header + request, (0, 0))
        return sum(1 for _ in _messages(netlink))


def _messages(netlink: socket.socket) -> Iterator[None]:
    """One item per socket the dump reports, until its end."""
    while True:
        data = netlink.recv(1 << 16)
        offset = 0
        while offset < len(data):
            length, kind, _, _, _ = _NLMSG_HEADER.unpack_from(data, offset)
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                errno = -struct.unpack_from("=i", data, offset + _NLMSG_HEADER.size)[0]
                raise OSError(errno, os.strerror(errno))
            yield None
            offset += (length + 3) & ~3


OPEN = "example_service_connections_open"
OPEN_HELP = "Open client connections to the service's port, those waiting to be accepted included."
CLOSED = "example_service_connections_closed_at_limit"
CLOSED_HELP = "Connections closed at once because MAX_CONNECTIONS were already held."


class ConnectionsCollector(Collector):
    """The open connections, counted at scrape time, and those closed at the limit."""

    def __init__(self, port: int, family: socket.AddressFamily, guard: LimitGuard) -> None:
        self._port = port
        self._family = family
        self._guard = guard

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(OPEN, OPEN_HELP)
        yield CounterMetricFamily(CLOSED, CLOSED_HELP)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with contextlib.suppress(OSError):  # no sock_diag (a restricted kernel): no sample
            yield GaugeMetricFamily(OPEN, OPEN_HELP, value=established(self._port, self._family))
        yield CounterMetricFamily(CLOSED, CLOSED_HELP, value=self._guard.closed)
