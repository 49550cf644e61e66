"""The servers under measure: started pinned to their cores through the package's process
runner, timed to ready, stopped; and the plain HTTP the harness speaks to them."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError
from bench.sampling import tree_cpu_seconds
from bench.targets import LOOPBACK, RunSpec, Target
from example_service.settings import ENVIRONMENT_VARIABLES
from example_service.stack.processes import Component, StartError

# The servers exit promptly on SIGTERM (example-service runs without a drain delay here);
# past this, SIGKILL.
STOP_TIMEOUT = 3.0


@dataclass
class Server:
    target: Target
    component: Component
    port: int
    cpus: Sequence[int]
    ready_s: float = 0.0
    # CPU spent until ready: unlike the wall time, it barely moves when the machine is busy.
    ready_cpu_s: float = 0.0

    @property
    def pid(self) -> int:
        assert self.component.process is not None
        return self.component.process.pid


def start_server(
    target: Target, spec: RunSpec, cpus: Sequence[int], logdir: Path, ready_timeout: float
) -> Server:
    # Of the variables example-service reads, a server gets only PORT, HOST and NUM: one set
    # in the shell running the bench cannot change what is measured.
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    env.update(PORT=str(spec.port), HOST=LOOPBACK)
    if spec.num is not None:
        env["NUM"] = str(spec.num)
    component = Component(
        target.name,
        ["taskset", "-c", ",".join(map(str, cpus)), *target.command(spec)],
        f"http://{LOOPBACK}:{spec.port}",
        "/healthz",
        logdir / f"{target.name}-{spec.port}.log",
        env=env,
    )
    component.start()
    server = Server(target, component, spec.port, cpus)
    try:
        # From spawn to the first 200, polled every half millisecond.
        server.ready_s = component.wait_ready(ready_timeout, interval=0.0005)
        server.ready_cpu_s = tree_cpu_seconds(server.pid)
    except StartError as exc:
        stop_server(server)
        raise BenchError(f"{exc}:\n{component.log_tail()}") from None
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server: Server) -> None:
    """SIGTERM, then SIGKILL; then anything left in the server's session (an orphaned
    worker) is killed too."""
    server.component.stop(STOP_TIMEOUT)


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """One GET with Connection: close over a raw socket; returns (status, body)."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise BenchError(f"GET {path}: not an HTTP response: {head[:60]!r}")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return int(head.split()[1]), body


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])
