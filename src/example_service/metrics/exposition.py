"""GET /metrics: the classic text format or OpenMetrics as the scraper asks, gzipped on request,
written by prometheus-client's own encoders.

An explicit handler rather than prometheus-client's ASGI app: that app answers /metrics with a
redirect when mounted, and it could not take the system readings off the event loop first.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from example_service.metrics.readings import Readings, ReadingsCollector
from example_service.server.rsgi import Response, Scope, header

# The cheapest level: on this repetitive text the higher ones cost more CPU for little size.
GZIP_LEVEL = 1


def accepts_gzip(accept_encoding: str) -> bool:
    """True when gzip is listed and not refused with q=0 (RFC 9110 section 12.5.3)."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "x-gzip"):
            continue
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


class Page(Collector):
    """One scrape's families: the registry's, then those of the readings taken for it."""

    def __init__(self, registry: Collector, readings: Readings) -> None:
        self._registry = registry
        self._readings = readings

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()
        yield from self._readings.collect()


class MetricsEndpoint:
    """Takes the system readings off the event loop (a file that blocks must not stall it),
    then encodes the page on the loop, where the request metrics live."""

    def __init__(self, registry: Collector, readings: ReadingsCollector) -> None:
        self._registry = registry
        self._readings = readings

    async def __call__(self, scope: Scope) -> Response:
        encoder, content_type = choose_encoder(header(scope, "accept"))
        readings = await self._readings.take()
        body = encoder(Page(self._registry, readings))
        headers: tuple[tuple[str, str], ...] = (("vary", "Accept, Accept-Encoding"),)
        if accepts_gzip(header(scope, "accept-encoding")):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers += (("content-encoding", "gzip"),)
        return Response(200, body, content_type, headers)
