"""A pure ASGI middleware that times each request and hands the outcome to its observers.

Request metrics and the access log both need the route, the status and the duration; one
wrapper measures them once for both, and is left out when neither is enabled.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from time import perf_counter
from typing import Protocol

from example_service.asgi import ASGIApp, Message, Receive, Scope, Send

# Every unknown path is reported under this one route, so no client can create new series.
UNMATCHED_ROUTE = "<unmatched>"


class Observer(Protocol):
    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None: ...


class ObserveRequests:
    def __init__(self, app: ASGIApp, paths: Collection[str], observers: Sequence[Observer]) -> None:
        self._app = app
        self._paths = frozenset(paths)
        self._observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        start = perf_counter()
        # A handler that fails before answering is reported as the 500 the server sends.
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_and_note_status)
        finally:
            seconds = perf_counter() - start
            path = scope["path"]
            route = path if path in self._paths else UNMATCHED_ROUTE
            for observer in self._observers:
                observer.record(scope, route, status, seconds)
