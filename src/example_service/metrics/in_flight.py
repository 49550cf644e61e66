"""The requests in flight, read at scrape time from the lifecycle's own count.

Read at scrape time rather than kept in a Gauge: the count already exists for the drain,
and a gauge would add two locked updates to every request.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from example_service.lifecycle import Lifecycle

NAME = "example_service_http_requests_in_flight"
HELP = "HTTP requests being served, this scrape included."


class InFlightCollector(Collector):
    def __init__(self, lifecycle: Lifecycle) -> None:
        self._lifecycle = lifecycle

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(NAME, HELP)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(NAME, HELP, value=self._lifecycle.in_flight)
