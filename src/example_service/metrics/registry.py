"""The one place that builds the registry: nothing registers a metric as an import side effect,
and no other module registers one at all."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from example_service import __version__
from example_service.logs.writer import LogOutput
from example_service.metrics.container import ContainerCollector
from example_service.metrics.contract import LabMetrics
from example_service.metrics.demo import DemoCollector
from example_service.metrics.family import Family, ValueCollector
from example_service.metrics.hardware import HardwareCollector
from example_service.metrics.http import RequestMetrics
from example_service.metrics.loop_local import CounterFamily
from example_service.metrics.readings import ReadingsCollector
from example_service.server.app import Observer
from example_service.server.lifecycle import Lifecycle
from example_service.system.cgroup import CgroupReader
from example_service.workload.admission import Workload
from example_service.workload.fibonacci import IMPLEMENTATION

IN_FLIGHT = Family(
    "gauge",
    "example_service_http_requests_in_flight",
    "HTTP requests being served, this scrape included.",
)
LOG_LINES_DROPPED = Family(
    "counter",
    "example_service_log_lines_dropped",
    "Log lines (access lines included) dropped because stdout did not take them in time.",
)
WORKER_THREADS_DIED = Family(
    "counter",
    "example_service_worker_threads_died",
    "Worker threads that ended unexpectedly and were replaced.",
)


@dataclass(frozen=True)
class Metrics:
    """What /metrics exposes: the registry, and the system readings, taken off the event loop
    for each scrape and handed to their collectors (metrics/exposition.py); the observers the
    app reports each request to, and the count of requests shed by reason."""

    registry: CollectorRegistry
    readings: ReadingsCollector
    observers: tuple[Observer, ...]
    shed: CounterFamily


def build_registry(
    *,
    lifecycle: Lifecycle,
    log_output: LogOutput,
    workload: Workload,
    cgroup: CgroupReader,
    sysfs_root: Path,
    demo_readings: bool,
    request_metrics: bool,
) -> Metrics:
    """prometheus-client's process, platform and GC collectors, the build, the requests in
    flight, the log lines dropped, the worker threads that died, the requests shed, and the
    lab's and the per-route request families unless request_metrics is off (then no request
    is observed, and the families are absent rather than frozen at 0); beside them, the
    system readings (the lab's hand-set figures with demo_readings)."""
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
    registry.register(ValueCollector(IN_FLIGHT, lambda: lifecycle.in_flight))
    registry.register(ValueCollector(LOG_LINES_DROPPED, lambda: log_output.dropped))
    registry.register(ValueCollector(WORKER_THREADS_DIED, lambda: workload.worker_threads_died))
    hardware = DemoCollector() if demo_readings else HardwareCollector(sysfs_root=sysfs_root)
    readings = ReadingsCollector(hardware, ContainerCollector(cgroup=cgroup))
    shed = CounterFamily(
        "example_service_requests_shed",
        "Requests answered 503 at once, without being served, because the service is "
        "overloaded, by reason.",
        ("reason",),
    )
    registry.register(shed)
    if not request_metrics:
        return Metrics(registry, readings, (), shed)
    lab, requests = LabMetrics(), RequestMetrics()
    for family in (*lab.families, *requests.families):
        registry.register(family)
    return Metrics(registry, readings, (lab, requests), shed)
