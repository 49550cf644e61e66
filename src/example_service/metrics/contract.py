"""The lab's request metrics for GET /abc, named and described as docs/contract.md, Metrics,
fixes them."""

from __future__ import annotations

from example_service.metrics.loop_local import CounterFamily, HistogramFamily
from example_service.server.rsgi import Scope

# The lab's buckets, exactly (docs/contract.md, Metrics).
LAB_LATENCY_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
ABC_ROUTE = "/abc"
# The methods /abc computes for; any other is answered 405 without computing.
_COMPUTING_METHODS = frozenset({"GET", "HEAD"})


class LabMetrics:
    """request_total and request_latency_seconds: +1 and one observation per answered /abc."""

    def __init__(self) -> None:
        requests = CounterFamily("request", "Number of request processed by this service.", ())
        # Present from the start, as 0, so a scraper sees the series before the first request.
        self._requests = requests.child(())
        latency = HistogramFamily(
            "request_latency_seconds", "Time spent in this service.", (), LAB_LATENCY_BUCKETS
        )
        self._latency = latency.child(())
        self.families: tuple[CounterFamily | HistogramFamily, ...] = (requests, latency)

    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        """Every answered GET (or HEAD) /abc: +1 and one observation, whatever the status.

        An observer of the app rather than code in the handler: the app times every request
        already, and a second pair of clock reads measured the same span."""
        if route == ABC_ROUTE and scope.method in _COMPUTING_METHODS:
            self._requests.value += 1
            self._latency.observe(seconds)
