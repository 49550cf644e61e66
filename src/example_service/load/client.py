"""The HTTP client: asyncio connections parsed by httptools (llhttp), chosen by measurement.

Side by side with wrk on one replica (bench/load_clients.py, figures in docs/load.md),
aiohttp and pyreqwest spent three to eight times this client's CPU per request, and
pyreqwest's hand-offs between its Rust thread and the event loop made every answer wait
for two thread wake-ups, which a busy machine delays by milliseconds. Here one thread
does everything between the socket and the count, as wrk does: each target's request
is encoded once, each connection writes it and feeds the answer to llhttp (through
httptools, the parser uvicorn uses), which frames it (Content-Length, chunked, keep-alive)
and rejects what is not HTTP. The body is never copied out.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast
from urllib.parse import urlsplit

from httptools import HttpParserError, HttpResponseParser

from example_service import __version__
from example_service.load.stats import Outcome


class _Connection(asyncio.Protocol):
    """One kept-alive connection; one request on it at a time."""

    # Set by connection_made, which asyncio calls before create_connection returns.
    transport: asyncio.Transport

    def __init__(self) -> None:
        self.parser = HttpResponseParser(self)
        self.answer: asyncio.Future[int | Outcome] | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.open = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except HttpParserError:
            self._answer(Outcome.PROTOCOL_ERROR)
            self.close()

    def on_message_complete(self) -> None:  # called by the parser
        if not self.parser.should_keep_alive():
            self.close()
        self._answer(self.parser.get_status_code())

    def connection_lost(self, error: Exception | None) -> None:
        self.open = False
        # Closed before the answer was complete (or before any, when the peer gave up).
        self._answer(Outcome.CONNECTION_ERROR)

    def _answer(self, result: int | Outcome) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(result)

    def _expire(self) -> None:
        # The answer is late: what may still arrive on this connection is not the next's.
        self._answer(Outcome.TIMEOUT)
        self.close()

    def close(self) -> None:
        self.open = False
        self.transport.close()

    def request(self, head: bytes, deadline: float) -> asyncio.Future[int | Outcome]:
        """Send head; the future is the answer's status, or TIMEOUT at deadline (loop time).

        One timer per request rather than asyncio.timeout(), whose context manager costs a
        large share of the client's CPU per request (docs/load.md).
        """
        loop = asyncio.get_running_loop()
        self.answer = answer = loop.create_future()
        self.deadline = loop.call_at(deadline, self._expire)
        self.transport.write(head)
        return answer


class _Target:
    """Where one URL connects, the request it sends, and its idle connections."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or ""
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.head = (
            f"GET {path} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n"
            f"User-Agent: example-service-load/{__version__}\r\nAccept: */*\r\n\r\n"
        ).encode("ascii")
        self.idle: list[_Connection] = []


class HttpClient:
    """GETs to a fixed list of URLs, each connection kept alive and reused.

    A connection serves one request at a time and is reused once its answer is complete,
    so a run holds at most one connection per request in flight (per target). There is no
    proxy (environment variables are not read) and redirects are answers, not followed:
    either could carry loopback traffic elsewhere.
    """

    def __init__(self, urls: tuple[str, ...], timeout: float) -> None:
        self._targets = [_Target(url) for url in urls]
        self._timeout = timeout
        self._tls: ssl.SSLContext | None = None
        self._all: set[_Connection] = set()

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        for connection in self._all:
            connection.close()

    async def _connect(self, target: _Target) -> _Connection:
        tls = None
        if target.tls:
            tls = self._tls = self._tls or ssl.create_default_context()
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, target.host, target.port, ssl=tls)
        self._all.add(connection)
        return connection

    async def send(self, index: int) -> int | Outcome:
        """The status code of the answer (its body read whole), or how the request failed.

        --timeout bounds it all, from connecting (when no idle connection is left) to the
        last byte of the answer.
        """
        target = self._targets[index]
        deadline = asyncio.get_running_loop().time() + self._timeout
        idle = target.idle
        while idle:
            connection = idle.pop()
            if connection.open:
                break
            self._all.discard(connection)
        else:
            try:
                async with asyncio.timeout_at(deadline):
                    connection = await self._connect(target)
            except TimeoutError:
                return Outcome.TIMEOUT
            except OSError:  # refused, unreachable, reset, TLS failure
                return Outcome.CONNECTION_ERROR
        try:
            result = await connection.request(target.head, deadline)
        except BaseException:  # cancelled mid-answer: the connection's state is unknown
            connection.close()
            self._all.discard(connection)
            raise
        if connection.open:
            idle.append(connection)
        else:
            self._all.discard(connection)
        return result
