"""The requests in flight, read at scrape time from the lifecycle's own count.

Read at scrape time rather than kept in a Gauge: the count already exists for the drain,
and a gauge would add two locked updates to every request.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from example_service.metrics.family import Family, FamilyCollector, Samples
from example_service.server.lifecycle import Lifecycle

IN_FLIGHT = Family(
    "gauge",
    "example_service_http_requests_in_flight",
    "HTTP requests being served, this scrape included.",
)


class InFlightCollector(FamilyCollector):
    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle

    def describe(self) -> Iterator[Metric]:
        yield IN_FLIGHT.metric()

    def samples(self) -> Iterator[tuple[Family, Samples]]:
        yield IN_FLIGHT, (((), self._lifecycle.in_flight),)
