"""The few ASGI types and the one response shape every handler returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TEXT = b"text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: bytes = TEXT
    headers: tuple[tuple[bytes, bytes], ...] = field(default=())


def header(scope: Scope, name: bytes) -> str:
    """The value of a request header (lower-case name), or "" when absent; repeats are joined."""
    values = [value for key, value in scope["headers"] if key == name]
    return b",".join(values).decode("latin-1")
