"""The RSGI application: a fixed table of routes, each answering a Response, and the hook
that reports every request (route, status, duration) to its observers.

Five fixed paths need no routing framework. Observation and the in-flight count live here
rather than in middleware layers, each of which would cost a call per request (docs/design.md,
"Choices").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import perf_counter
from typing import Protocol

from example_service.server.lifecycle import Lifecycle
from example_service.server.rsgi import HTTPProtocol, Response, Scope

Handler = Callable[[Scope], Awaitable[Response]]
Routes = Mapping[str, Mapping[str, Handler]]

# Every unknown path is reported under this one route, so no client can create new series.
UNMATCHED_ROUTE = "<unmatched>"
NOT_FOUND = Response(404, b"not found\n")


class Observer(Protocol):
    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None: ...


class App:
    """Dispatches by exact path, then by method. HEAD is answered as GET: the server sends
    the headers, Content-Length included, and leaves the body out."""

    def __init__(
        self, routes: Routes, lifecycle: Lifecycle, observers: Sequence[Observer] = ()
    ) -> None:
        self._routes = routes
        self._lifecycle = lifecycle
        self._observers = tuple(observers)
        self._not_allowed = {
            path: Response(405, b"method not allowed\n", headers=(("allow", _allow(methods)),))
            for path, methods in routes.items()
        }

    async def __rsgi__(self, scope: Scope, protocol: HTTPProtocol) -> None:
        start = perf_counter()
        self._lifecycle.request_started()
        path = scope.path
        methods = self._routes.get(path)
        # A handler that raises is answered 500 by the server, and reported as such.
        status = 500
        try:
            if methods is None:
                response = NOT_FOUND
            else:
                method = scope.method
                handler = methods.get("GET" if method == "HEAD" else method)
                if handler is None:
                    response = self._not_allowed[path]
                else:
                    response = await handler(scope)
            status = response.status
            protocol.response_bytes(status, response.header_list, response.body)
        finally:
            self._lifecycle.request_finished()
            if self._observers:
                seconds = perf_counter() - start
                route = UNMATCHED_ROUTE if methods is None else path
                for observer in self._observers:
                    observer.record(scope, route, status, seconds)


def _allow(methods: Mapping[str, Handler]) -> str:
    allowed = set(methods)
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))
