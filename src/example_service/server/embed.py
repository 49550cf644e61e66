"""Runs the service: granian embedded in our own event loop, and the shutdown sequence.

Granian's embeddable server runs inside this process's asyncio loop and stops when told, so
signals, readiness and the drain stay the service's own code (docs/design.md, "Lifecycle").
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
from pathlib import Path

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.server.embed import Server

from example_service import __version__
from example_service.logs.writer import LogOutput
from example_service.server.wiring import Service
from example_service.settings import Settings

log = logging.getLogger(__name__)

# Request line and headers together may take this many bytes (hyper's buffer); a larger head
# closes the connection with 431. Request bodies are not read by any route.
MAX_HEAD_BYTES = 16 * 1024

# How long granian may take to let go of its connections once no request is in flight.
SERVER_STOP_GRACE = 1.0

# Descriptors the process needs besides its connections: the listener, the event loop's,
# the files read at scrape time.
RESERVED_DESCRIPTORS = 256


class ListenError(Exception):
    """The port could not be bound."""


async def run(settings: Settings, log_output: LogOutput) -> int:
    """Serve until SIGTERM or SIGINT, then drain and stop; the exit status."""
    _check_port_free(settings.host, settings.port)
    max_connections = raise_descriptor_limit(settings.max_connections)
    service = Service(settings, log_output)
    server = Server(
        service.app,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI,
        http=HTTPModes.http1,
        websockets=False,
        # Granian holds at most `backpressure` connections; past it it stops accepting and
        # new ones wait in the listen queue until one closes, as with most servers. Its
        # defaults (a queue of 128, as many connections held) let 256 idle connections stop
        # the service answering, probes included.
        backlog=listen_backlog(max_connections, somaxconn(settings.procfs_root)),
        backpressure=max_connections,
        http1_settings=HTTP1Settings(
            header_read_timeout=round(settings.header_timeout * 1000),
            max_buffer_size=MAX_HEAD_BYTES,
        ),
        log_enabled=False,
    )
    stop = asyncio.Event()
    _install_signal_handlers(stop, log_output)
    server.on_startup(service.started)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait((serving, stopping), return_when=asyncio.FIRST_COMPLETED)
    if serving.done():
        stopping.cancel()
        service.close()
        error = serving.exception()
        raise ListenError(f"cannot listen on {settings.host}:{settings.port}: {error}")
    log.info(
        "shutdown: draining",
        extra={"step": "drain", "drain_delay_s": settings.drain_delay},
    )
    service.draining()
    await asyncio.sleep(settings.drain_delay)
    log.info("shutdown: closing the listener", extra={"step": "close"})
    server.stop()  # type: ignore[no-untyped-call]
    finished = await service.lifecycle.wait_idle(settings.shutdown_timeout)
    log.info(
        "shutdown: in-flight requests " + ("finished" if finished else "abandoned"),
        extra={"step": "in-flight", "abandoned": service.lifecycle.in_flight},
    )
    # Granian would wait for every connection to close, the abandoned ones included: past the
    # shutdown timeout they are cut, and with none left it only needs a moment.
    if finished:
        await asyncio.wait((serving,), timeout=SERVER_STOP_GRACE)
    serving.cancel()
    service.close()
    log.info("shutdown: complete", extra={"step": "exit", "version": __version__})
    return 0


def somaxconn(procfs_root: Path) -> int | None:
    """The kernel's ceiling on a listen queue, or None when it cannot be read."""
    try:
        return int((procfs_root / "sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return None


def listen_backlog(max_connections: int, ceiling: int | None) -> int:
    """A queue as deep as the connection limit, within the kernel's ceiling (which it would
    otherwise apply silently): a burst of that many clients connecting at once all get in,
    and past the limit as many wait their turn."""
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


def _check_port_free(host: str, port: int) -> None:
    """Refuse a port that another process listens on.

    Granian binds with SO_REUSEPORT, with which a second instance on the same port would
    start without error and silently take half the connections.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise ListenError(f"cannot listen on {host}:{port}: {error.strerror}") from None


def _install_signal_handlers(stop: asyncio.Event, log_output: LogOutput) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            # A second signal means "now": skip the drain, as operators expect of Ctrl-C twice.
            log.warning("second signal: exiting at once", extra={"signal": signum})
            log_output.close()
            os._exit(128 + signum)
        log.info("signal received", extra={"signal": signal.Signals(signum).name})
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
