"""Which HTTP client the load command should use: client CPU per request, side by side.

Each candidate (the load command's own client first) keeps C connections busy in a
closed loop against one replica for D seconds, in a process of its own, alternating with
wrk in the same run. A candidate reports its process's CPU time (every thread) over its
loop; wrk's is read from the kernel. Figures, not a test: the choice in docs/load.md was
made from them.

    .venv/bin/python -m bench.load_clients                 # 3 rounds of 5 s, 32 connections
    .venv/bin/python -m bench.load_clients --rounds 5 --clients load-command,pyreqwest

Needs wrk (Debian: apt-get install wrk) and the candidates: pip install aiohttp pyreqwest
httpx-aiohttp.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.cli import scratch_dir
from bench.sampling import children_cpu_seconds
from bench.servers import free_port, start_server, stop_server
from bench.targets import LOOPBACK, RunSpec, service_target
from bench.wrk import WRK_REPORT, Wrk

SERVICE = Path(sys.executable).with_name("example-service")

Fetch = Callable[[], Awaitable[int]]


async def _closed_loop(fetch: Fetch, connections: int, duration: float) -> tuple[int, float]:
    """Answers with status 200 and the process's CPU seconds (every thread) meanwhile."""
    done = 0
    cpu = time.process_time()
    end = time.monotonic() + duration

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < end:
            if await fetch() == 200:
                done += 1

    await asyncio.gather(*(worker() for _ in range(connections)))
    return done, time.process_time() - cpu


async def run_aiohttp(url: str, connections: int, duration: float) -> tuple[int, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch() -> int:
            async with session.get(url) as response:
                await response.read()
                status: int = response.status
                return status

        return await _closed_loop(fetch, connections, duration)


async def run_pyreqwest(url: str, connections: int, duration: float) -> tuple[int, float]:
    from pyreqwest.client import ClientBuilder

    async with ClientBuilder().max_connections(connections).build() as client:

        async def fetch() -> int:
            response = await client.get(url).build().send()
            await response.bytes()
            status: int = response.status
            return status

        return await _closed_loop(fetch, connections, duration)


async def _run_httpx(
    url: str, connections: int, duration: float, transport: object
) -> tuple[int, float]:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, transport=transport) as client:  # type: ignore[arg-type]

        async def fetch() -> int:
            return (await client.get(url)).status_code

        return await _closed_loop(fetch, connections, duration)


async def run_httpx(url: str, connections: int, duration: float) -> tuple[int, float]:
    return await _run_httpx(url, connections, duration, None)


async def run_httpx_aiohttp(url: str, connections: int, duration: float) -> tuple[int, float]:
    import aiohttp
    from httpx_aiohttp import AiohttpTransport

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))

    return await _run_httpx(url, connections, duration, AiohttpTransport(client=session))


class _Raw(asyncio.Protocol):
    """The floor under any library: one prebuilt request, Content-Length framing only."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.buffer = b""
        self.answer: asyncio.Future[int] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.answer is None:
            return
        head = self.buffer[:head_end].lower()
        start = head.find(b"content-length:") + 15
        length = int(head[start : head.find(b"\r\n", start)])
        if len(self.buffer) >= head_end + 4 + length:
            status = int(self.buffer[9:12])
            self.buffer = self.buffer[head_end + 4 + length :]
            self.answer.set_result(status)

    async def fetch(self) -> int:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(self.request)
        return await self.answer


async def run_raw(url: str, connections: int, duration: float) -> tuple[int, float]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"{url}: the raw client needs a host and a port")
    host, port = parts.hostname, parts.port
    request = f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    protocols = [
        (await loop.create_connection(lambda: _Raw(request), host, port))[1]
        for _ in range(connections)
    ]
    slots = iter(protocols)
    done = 0
    cpu = time.process_time()
    end = time.monotonic() + duration

    async def worker(protocol: _Raw) -> None:
        nonlocal done
        while time.monotonic() < end:
            if await protocol.fetch() == 200:
                done += 1

    await asyncio.gather(*(worker(p) for p in slots))
    return done, time.process_time() - cpu


async def run_load_command(url: str, connections: int, duration: float) -> tuple[int, float]:
    """The load command's own client: asyncio connections parsed by httptools."""
    from example_service.load.client import HttpClient

    async with HttpClient((url,), timeout=15.0) as client:

        async def fetch() -> int:
            result = await client.send(0)
            return result if isinstance(result, int) else 0

        return await _closed_loop(fetch, connections, duration)


CLIENTS: dict[str, Callable[[str, int, float], Awaitable[tuple[int, float]]]] = {
    "load-command": run_load_command,
    "aiohttp": run_aiohttp,
    "pyreqwest": run_pyreqwest,
    "httpx": run_httpx,
    "httpx-aiohttp": run_httpx_aiohttp,
    "raw-asyncio": run_raw,
}


def child(name: str, url: str, connections: int, duration: float) -> None:
    import uvloop

    async def measured() -> tuple[int, float]:
        return await CLIENTS[name](url, connections, duration)

    ok, cpu = uvloop.run(measured())
    print(json.dumps({"ok": ok, "cpu": cpu}))


def client_run(name: str, url: str, args: argparse.Namespace) -> tuple[int, float]:
    """Answers and CPU seconds of one candidate's run, in a process of its own."""
    command = [
        sys.executable, "-m", "bench.load_clients", "--child", name, "--url", url,
        "--connections", str(args.connections), "--duration", str(args.duration),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout
    figures = json.loads(out.splitlines()[-1])
    return figures["ok"], figures["cpu"]


def wrk_run(url: str, script: Path, args: argparse.Namespace) -> tuple[int, float]:
    """Answers and CPU seconds of one wrk run (one thread, on any of this process's CPUs)."""
    cpus = sorted(os.sched_getaffinity(0))
    wrk = Wrk(url, cpus, script, args.connections, 1, args.duration, 10)
    before = children_cpu_seconds()
    result = wrk.run()
    return result.requests - result.error_count, children_cpu_seconds() - before


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--service", type=Path, default=SERVICE)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.connections, args.duration)
        return 0

    names = ["wrk", *args.clients.split(",")]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    with scratch_dir() as tmp:
        script = tmp / "report.lua"
        script.write_text(WRK_REPORT)
        spec = RunSpec(port=free_port(), cores=os.cpu_count() or 1, num=None, service=args.service)
        cpus = sorted(os.sched_getaffinity(0))
        server = start_server(service_target("example-service"), spec, cpus, tmp, 30.0)
        url = f"http://{LOOPBACK}:{spec.port}/abc"
        try:
            for round_number in range(args.rounds):
                for name in names:
                    if name == "wrk":
                        count, cpu = wrk_run(url, script, args)
                    else:
                        count, cpu = client_run(name, url, args)
                    rate = count / args.duration
                    results[name].append((rate, cpu / count * 1e6))
                    print(f"round {round_number + 1} {name:<14} {rate:9.0f} req/s "
                          f"{cpu / count * 1e6:7.1f} us CPU/req", flush=True)  # fmt: skip
        finally:
            stop_server(server)

    wrk_rate = statistics.median(rate for rate, _ in results["wrk"])
    print(
        f"\nmedian of {args.rounds} rounds, {args.connections} connections, {args.duration} s "
        "each, one replica on loopback (fib(10), access log off)"
    )
    print(f"{'client':<14}{'req/s':>9}{'x wrk':>8}{'CPU us/req':>12}")
    for name in names:
        rate = statistics.median(r for r, _ in results[name])
        cpu = statistics.median(c for _, c in results[name])
        print(f"{name:<14}{rate:9.0f}{rate / wrk_rate:8.2f}{cpu:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
