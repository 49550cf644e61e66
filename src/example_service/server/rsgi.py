"""The request and response shapes of RSGI, granian's own interface, as the service uses them.

RSGI rather than ASGI: a response is one call carrying status, headers and body, where ASGI
needs two awaited messages built as dictionaries, and a bare RSGI callable costs less CPU per
request than a bare ASGI one: bench/bare_granian.py measures both (docs/design.md, "Choices").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

TEXT = "text/plain; charset=utf-8"


class Headers(Protocol):
    def get_all(self, key: str) -> list[str]: ...


class Scope(Protocol):
    """What a handler may read of a request (granian's RSGI scope provides it)."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...  # percent-decoded, without the query string
    @property
    def client(self) -> str: ...  # "address:port"
    @property
    def headers(self) -> Headers: ...


class HTTPProtocol(Protocol):
    def response_bytes(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Response:
    """Immutable, so one instance can answer every request that gets the same reply."""

    status: int
    body: bytes
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = field(default=())
    # Built once: what the server is handed for every request answered with this Response.
    header_list: list[tuple[str, str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "header_list", [("content-type", self.content_type), *self.headers]
        )


def header(scope: Scope, name: str) -> str:
    """A request header's value (lower-case name), "" when absent; repeats joined by commas."""
    return ",".join(scope.headers.get_all(name))
