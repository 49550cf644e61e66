"""The ASGI application: a fixed table of routes, each answering a Response.

Six fixed paths need no routing framework; measured on one core, Starlette's routing and
request objects doubled the CPU cost of a request (README, "Performance").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from example_service.asgi import Receive, Response, Scope, Send

Handler = Callable[[Scope], Awaitable[Response]]
Routes = Mapping[str, Mapping[str, Handler]]

NOT_FOUND = Response(404, b"not found\n")


class App:
    """Dispatches by exact path, then by method; HEAD is GET without the body."""

    def __init__(self, routes: Routes) -> None:
        self._routes = routes
        self._not_allowed = {
            path: Response(
                405,
                b"method not allowed\n",
                headers=((b"allow", _allow(methods).encode()),),
            )
            for path, methods in routes.items()
        }

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        methods = self._routes.get(path)
        if methods is None:
            response = NOT_FOUND
        else:
            method = scope["method"]
            handler = methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                response = self._not_allowed[path]
            else:
                response = await handler(scope)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (b"content-type", response.content_type),
                    (b"content-length", str(len(response.body)).encode()),
                    *response.headers,
                ],
            }
        )
        body = b"" if scope["method"] == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body})


def _allow(methods: Mapping[str, Handler]) -> str:
    allowed = set(methods)
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed))
