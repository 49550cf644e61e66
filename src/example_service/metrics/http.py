"""Request metrics for every route: a counter by method, route and status, and a histogram.

Labels stay bounded whatever clients send: a route is one of the app's exact paths (or one fixed
value for unknown paths) and methods outside HTTP's registered set count as "OTHER".
"""

from __future__ import annotations

from example_service.metrics.loop_local import Count, CounterFamily, Histogram, HistogramFamily
from example_service.server.rsgi import Scope

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
)
# Finer than the lab's buckets at the fast end, where probes and scrapes live. Eleven, not
# more: every bucket is a line per method and route on each scrape, and formatting lines
# is most of what a scrape costs.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 10)


class _Series:
    """The counter and the histogram one (method, route, status) updates."""

    __slots__ = ("count", "duration")

    def __init__(self, count: Count, duration: Histogram) -> None:
        self.count, self.duration = count, duration


class RequestMetrics:
    def __init__(self) -> None:
        self._requests = CounterFamily(
            "http_requests",
            "HTTP requests answered, by method, route and status code.",
            ("method", "route", "status"),
        )
        self._duration = HistogramFamily(
            "http_request_duration_seconds",
            "Time from receiving an HTTP request to sending its last byte, by route.",
            ("method", "route"),
            DURATION_BUCKETS,
        )
        self.families: tuple[CounterFamily | HistogramFamily, ...] = (
            self._requests,
            self._duration,
        )
        # One lookup per request finds both: the keys are as bounded as the labels.
        self._series: dict[tuple[str, str, int], _Series] = {}

    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        method = scope.method
        if method not in KNOWN_METHODS:
            method = "OTHER"
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(
                self._requests.child((method, route, str(status))),
                self._duration.child((method, route)),
            )
        series.count.value += 1
        series.duration.observe(seconds)
