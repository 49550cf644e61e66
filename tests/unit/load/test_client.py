"""The load command's HTTP client against small servers on loopback, in process.

Each server speaks the HTTP (or breaks it) the way a test needs; the client must frame
the answers, reuse connections and name every failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from support.ports import free_port

from example_service.load.client import HttpClient
from example_service.load.stats import Outcome

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
CLOSING = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """Answers each request head it reads with reply(head, writer)."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.connections = 0
        self.heads: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while not writer.is_closing():
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                await self.reply(head, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/abc?n=1"

    async def __aexit__(self, *_: object) -> None:
        self._server.close()


def replying(*answers: bytes, close: bool = False) -> Reply:
    """The answers in turn, then the last one again; close: hang up after each."""
    sent = 0

    async def reply(head: bytes, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        writer.write(answers[min(sent, len(answers) - 1)])
        sent += 1
        await writer.drain()
        if close:
            writer.close()

    return reply


def delayed(seconds: float) -> Reply:
    """OK, after seconds."""

    async def reply(head: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(seconds)
        writer.write(OK)

    return reply


def test_answers_are_framed_and_the_connection_is_kept_alive() -> None:
    server = Server(replying(OK, CHUNKED, OK))

    async def scenario() -> None:
        async with server as url, HttpClient((url,), timeout=5) as client:
            results = [await client.send(0) for _ in range(50)]
        assert results == [200, 404, *([200] * 48)]

    asyncio.run(scenario())
    assert server.connections == 1
    head = server.heads[0].decode()
    assert head.startswith("GET /abc?n=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert "\r\nUser-Agent: example-service-load/" in head


def test_at_most_one_connection_per_request_in_flight() -> None:
    server = Server(delayed(0.01))

    async def scenario() -> None:
        async with server as url, HttpClient((url,), timeout=5) as client:

            async def worker() -> list[int | Outcome]:
                return [await client.send(0) for _ in range(10)]

            results = await asyncio.gather(*(worker() for _ in range(4)))
        assert all(result == [200] * 10 for result in results)

    asyncio.run(scenario())
    assert server.connections == 4


def test_a_connection_the_server_closes_is_replaced() -> None:
    server = Server(replying(CLOSING, close=True))

    async def scenario() -> None:
        async with server as url, HttpClient((url,), timeout=5) as client:
            assert [await client.send(0) for _ in range(3)] == [200, 200, 200]

    asyncio.run(scenario())
    assert server.connections == 3


def test_failures_are_named() -> None:
    async def scenario() -> None:
        garbage = Server(replying(b"SSH-2.0-OpenSSH\r\n\r\n"))
        cut = Server(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", close=True))
        hanging = Server(delayed(60))
        async with garbage as bad, cut as short, hanging as slow:
            refused = f"http://127.0.0.1:{free_port()}/abc"
            async with HttpClient((bad, short, slow, refused), timeout=0.2) as client:
                assert await client.send(0) == Outcome.PROTOCOL_ERROR
                assert await client.send(1) == Outcome.CONNECTION_ERROR
                assert await client.send(2) == Outcome.TIMEOUT
                assert await client.send(3) == Outcome.CONNECTION_ERROR

    asyncio.run(scenario())


def test_a_cancelled_request_leaves_no_connection_for_reuse() -> None:
    server = Server(delayed(0.2))

    async def scenario() -> None:
        async with server as url, HttpClient((url,), timeout=5) as client:
            request = asyncio.create_task(client.send(0))
            await asyncio.sleep(0.05)
            request.cancel()
            await asyncio.gather(request, return_exceptions=True)
            # The cancelled answer arrives on the old connection, never as this one's.
            assert await client.send(0) == 200

    asyncio.run(scenario())
    assert server.connections == 2
