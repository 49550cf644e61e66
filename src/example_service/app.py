"""The ASGI application: a fixed table of routes, each answering a Response, and the hook
that reports every request (route, status, duration) to its observers.

Five fixed paths need no routing framework. Observation and the in-flight count live here
rather than in ASGI middleware: each middleware layer wraps `send` in a new closure per
request, and on one core those layers cost more than the metrics they fed (README,
"Performance").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import perf_counter
from typing import Protocol

from example_service.asgi import Receive, Response, Scope, Send
from example_service.lifecycle import Lifecycle

Handler = Callable[[Scope], Awaitable[Response]]
Routes = Mapping[str, Mapping[str, Handler]]

# Every unknown path is reported under this one route, so no client can create new series.
UNMATCHED_ROUTE = "<unmatched>"
NOT_FOUND = Response(404, b"not found\n")


class Observer(Protocol):
    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None: ...


class App:
    """Dispatches by exact path, then by method; HEAD is GET without the body."""

    def __init__(
        self, routes: Routes, lifecycle: Lifecycle, observers: Sequence[Observer] = ()
    ) -> None:
        self._routes = routes
        self._lifecycle = lifecycle
        self._observers = tuple(observers)
        self._not_allowed = {
            path: Response(
                405,
                b"method not allowed\n",
                headers=((b"allow", _allow(methods).encode()),),
            )
            for path, methods in routes.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        start = perf_counter()
        self._lifecycle.request_started()
        path = scope["path"]
        methods = self._routes.get(path)
        # A handler that raises is answered 500 by the server, and reported as such.
        status = 500
        try:
            response = await self._respond(scope, path, methods)
            status = response.status
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", response.content_type),
                        (b"content-length", str(len(response.body)).encode()),
                        *response.headers,
                    ],
                }
            )
            body = b"" if scope["method"] == "HEAD" else response.body
            await send({"type": "http.response.body", "body": body})
        finally:
            self._lifecycle.request_finished()
            if self._observers:
                seconds = perf_counter() - start
                route = UNMATCHED_ROUTE if methods is None else path
                for observer in self._observers:
                    observer.record(scope, route, status, seconds)

    async def _respond(
        self, scope: Scope, path: str, methods: Mapping[str, Handler] | None
    ) -> Response:
        if methods is None:
            return NOT_FOUND
        method = scope["method"]
        handler = methods.get("GET" if method == "HEAD" else method)
        if handler is None:
            return self._not_allowed[path]
        return await handler(scope)


def _allow(methods: Mapping[str, Handler]) -> str:
    allowed = set(methods)
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))
