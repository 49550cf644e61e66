"""The floor under the service: a bare callable on granian's embedded server that computes
the lab's fib(10) and answers the lab's reply, with no routing, metrics or lifecycle.

    python bench/bare_granian.py rsgi PORT     # or: asgi PORT

The bench runs both as targets (bare-rsgi, bare-asgi), so the cost of everything the
service adds, and of the interface it uses, is measured in the same run as the service. The
reply and fib are the service's own.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.server.embed import Server

from example_service.server.handlers import REPLY_WITHOUT_NUM as REPLY
from example_service.workload.fibonacci import fib

CONTENT_LENGTH = str(len(REPLY)).encode()


async def asgi(scope: dict[str, Any], receive: Any, send: Callable[..., Awaitable[None]]) -> None:
    fib(10)
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", CONTENT_LENGTH)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": REPLY})


async def rsgi(scope: Any, protocol: Any) -> None:
    fib(10)
    protocol.response_bytes(200, [("content-type", "text/plain; charset=utf-8")], REPLY)


async def serve(interface: str, port: int) -> None:
    app, kind = (asgi, Interfaces.ASGINL) if interface == "asgi" else (rsgi, Interfaces.RSGI)
    server = Server(
        app, address="127.0.0.1", port=port, interface=kind, http=HTTPModes.http1,
        websockets=False, log_enabled=False,
    )  # fmt: skip
    await server.serve()


if __name__ == "__main__":
    uvloop.run(serve(sys.argv[1], int(sys.argv[2])))
