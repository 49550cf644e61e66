"""The HTTP client: pyreqwest (Rust's reqwest and hyper), chosen by measurement.

Side by side with wrk on one replica (bench/load_clients.py, figures in docs/load.md) it
spent the least client CPU per request of the libraries tried, and its network work runs
on its own Rust thread, off the event loop that paces and counts. Each request is a copy
of one prebuilt request per target, so a URL is parsed and its headers built once.
"""

from __future__ import annotations

from datetime import timedelta
from types import TracebackType

from pyreqwest.client import Client, ClientBuilder
from pyreqwest.exceptions import (
    DecodeError,
    NetworkError,
    PyreqwestError,
    RequestTimeoutError,
)
from pyreqwest.request import ConsumedRequest

from example_service import __version__
from example_service.load.stats import Outcome


def _outcome(error: PyreqwestError) -> Outcome:
    if isinstance(error, RequestTimeoutError):
        return Outcome.TIMEOUT
    if isinstance(error, NetworkError):
        return Outcome.CONNECTION_ERROR
    if isinstance(error, DecodeError):  # not HTTP, or a body cut short of its length
        return Outcome.PROTOCOL_ERROR
    return Outcome.OTHER_ERROR


class HttpClient:
    """GETs to a fixed list of URLs over at most `connections` kept-alive connections."""

    def __init__(self, urls: tuple[str, ...], connections: int, timeout: float) -> None:
        self._client: Client = (
            ClientBuilder()
            # One connection per request in flight, kept alive between requests.
            .max_connections(connections)
            .pool_max_idle_per_host(connections)
            # Connection to last byte of the body, as --timeout promises.
            .timeout(timedelta(seconds=timeout))
            # Proxy variables from the environment would send loopback traffic elsewhere,
            # and a redirect could leave loopback: both would defeat the targets' check.
            .no_proxy()
            .follow_redirects(False)
            .gzip(False)
            .brotli(False)
            .zstd(False)
            .deflate(False)
            .user_agent(f"example-service-load/{__version__}")
            .build()
        )
        self._requests: list[ConsumedRequest] = [self._client.get(url).build() for url in urls]

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._client.close()

    async def send(self, target: int) -> int | Outcome:
        """The status code of the answer (its body read whole), or how the request failed."""
        try:
            response = await self._requests[target].copy().send()
        except PyreqwestError as error:
            return _outcome(error)
        return response.status
