"""The one place that builds the registry: nothing registers a metric as an import side effect."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from example_service import __version__
from example_service.fibonacci import IMPLEMENTATION
from example_service.metrics.loop_local import CounterFamily, HistogramFamily
from example_service.rsgi import Scope

# The lab's buckets, exactly (SPEC.md section 2).
LAB_LATENCY_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
ABC_ROUTE = "/abc"
# The methods /abc computes for; any other is answered 405 without computing.
_COMPUTING_METHODS = frozenset({"GET", "HEAD"})


class LabMetrics:
    """The lab's request metrics for GET /abc, named and described as SPEC.md fixes them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        requests = CounterFamily("request", "Number of request processed by this service.", ())
        # Present from the start, as 0, so a scraper sees the series before the first request.
        self._requests = requests.child(())
        latency = HistogramFamily(
            "request_latency_seconds", "Time spent in this service.", (), LAB_LATENCY_BUCKETS
        )
        self._latency = latency.child(())
        registry.register(requests)
        registry.register(latency)

    def record(self, scope: Scope, route: str, status: int, seconds: float) -> None:
        """Every answered GET (or HEAD) /abc: +1 and one observation, whatever the status.

        An observer of the app rather than code in the handler: the app times every request
        already, and a second pair of clock reads measured the same span."""
        if route == ABC_ROUTE and scope.method in _COMPUTING_METHODS:
            self._requests.value += 1
            self._latency.observe(seconds)


def build_registry() -> CollectorRegistry:
    """A registry with the process and Python runtime collectors and the build info."""
    # The lab's output has no *_created series. The loop-local families never make one;
    # this keeps it so for any prometheus-client Counter or Histogram added to the registry.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    Info(
        "example_service_build", "Version of the running example-service.", registry=registry
    ).info({"version": __version__, "fib": IMPLEMENTATION})
    return registry
