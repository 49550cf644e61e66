"""Request metrics for every route: a counter by method, route and status, and a histogram.

Labels stay bounded whatever clients send: routes arrive as templates (or one fixed value for
unknown paths) and methods outside HTTP's registered set count as "OTHER".
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from example_service.asgi import Scope

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
)
# Finer than the lab's buckets at the fast end, where probes and scrapes live.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
)  # fmt: skip


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ("method", "route", "status"),
            registry=registry,
        )
        self._duration = Histogram(
            "http_request_duration_seconds",
            "Time from receiving an HTTP request to sending its last byte, by route template.",
            ("method", "route"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )

    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        method = scope["method"]
        if method not in KNOWN_METHODS:
            method = "OTHER"
        self._requests.labels(method, route, str(status)).inc()
        self._duration.labels(method, route).observe(seconds)
