"""In-process stand-ins for granian's RSGI scope and protocol, for unit tests of the app.

They implement exactly the Protocols of example_service.server.rsgi and nothing more, so a handler
that reached for anything else granian offers would fail here before it failed in review.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from example_service.server.app import App
from example_service.server.rsgi import Scope


class FakeHeaders:
    """Request headers as the client sent them, in order, repeats kept.

    Names match whatever their case, as in granian, whose lookups are case-insensitive."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs = [(name.lower(), value) for name, value in pairs]

    def get_all(self, key: str) -> list[str]:
        key = key.lower()
        return [value for name, value in self._pairs if name == key]


@dataclass(frozen=True)
class FakeScope:
    method: str = "GET"
    path: str = "/"
    client: str = "127.0.0.1:40000"
    headers: FakeHeaders = field(default_factory=FakeHeaders)


@dataclass(frozen=True)
class SentResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of a response header sent once (None when absent); fails on repeats."""
        values = [value for key, value in self.headers if key == name]
        assert len(values) <= 1, f"header {name!r} sent {len(values)} times: {self.headers}"
        return values[0] if values else None


class FakeProtocol:
    """Records what the app hands the server; a real server accepts one response a request."""

    def __init__(self) -> None:
        self.sent: list[SentResponse] = []

    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        # A copy: the app hands every request answered with one Response the same list.
        self.sent.append(SentResponse(status, list(headers), body))

    @property
    def response(self) -> SentResponse:
        assert len(self.sent) == 1, f"expected one response, the app sent {len(self.sent)}"
        return self.sent[0]


def request(method: str = "GET", path: str = "/", headers: Iterable[tuple[str, str]] = ()) -> Scope:
    return FakeScope(method=method, path=path, headers=FakeHeaders(headers))


async def call(app: App, scope: Scope) -> SentResponse:
    """One request through the app, as granian would make it, inside a running event loop."""
    protocol = FakeProtocol()
    await app.__rsgi__(scope, protocol)
    return protocol.response


def serve(app: App, scope: Scope) -> SentResponse:
    """One request through the app on an event loop of its own."""
    return asyncio.run(call(app, scope))
