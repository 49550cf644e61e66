"""The one place that builds the registry: nothing registers a metric as an import side effect,
and no other module registers one at all."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client.metrics_core import InfoMetricFamily
from prometheus_client.registry import Collector

from example_service import __version__
from example_service.app import Observer
from example_service.fibonacci import IMPLEMENTATION
from example_service.lifecycle import Lifecycle
from example_service.log_output import LogOutput
from example_service.metrics.container import ContainerCollector
from example_service.metrics.demo import DemoCollector
from example_service.metrics.formats import Encoder, Format, Rendered, format_key
from example_service.metrics.hardware import HardwareCollector
from example_service.metrics.http import RequestMetrics
from example_service.metrics.in_flight import InFlightCollector
from example_service.metrics.lab import LabMetrics
from example_service.metrics.log_output import LogOutputCollector
from example_service.metrics.loop_local import CounterFamily
from example_service.metrics.readings import ReadingsCollector
from example_service.metrics.runtime import ConstantCollector, GCCollector, ProcessCollector
from example_service.system.cgroup import CgroupReader


class Registry(CollectorRegistry):
    """prometheus-client's registry (it checks that no family is registered twice), which
    also writes the page itself, byte for byte as the library's encoders would, from text
    kept for each series (metrics/formats.py). A collector that writes its own text (every
    collector of the service's) does so without building the library's family objects."""

    def __init__(self) -> None:
        super().__init__(auto_describe=True)
        # The collectors in page order, each with its own lines or None (the library's).
        self._parts: list[tuple[Collector, Rendered | None]] = []
        self._formats: dict[Hashable, Format] = {}

    def register(self, collector: Collector) -> None:
        super().register(collector)
        own = collector if isinstance(collector, Rendered) else None
        self._parts.append((collector, own))

    def unregister(self, collector: Collector) -> None:
        super().unregister(collector)
        self._parts = [part for part in self._parts if part[0] is not collector]

    def render(self, encoder: Encoder) -> bytes:
        """What encoder(self) writes, byte for byte, in a fraction of the time."""
        key = format_key(encoder)
        page_format = self._formats.get(key)
        if page_format is None:
            page_format = self._formats[key] = Format(encoder)
        parts: list[str] = []
        for collector, own in self._parts:
            if own is None:
                parts += (page_format.family(family) for family in collector.collect())
            else:
                parts.append(own.render(page_format))
        page_format.page_done()
        return "".join(parts).encode() + page_format.trailer


@dataclass(frozen=True)
class Metrics:
    """The registry /metrics exposes, the readings it takes off the event loop first, the
    observers the app reports each request to, and the count of requests shed by reason."""

    registry: Registry
    readings: ReadingsCollector
    observers: tuple[Observer, ...]
    shed: CounterFamily


def build_registry(
    *,
    lifecycle: Lifecycle,
    log_output: LogOutput,
    cgroup: CgroupReader,
    sysfs_root: Path,
    demo_readings: bool,
    request_metrics: bool,
) -> Metrics:
    """The process and Python runtime collectors, the requests in flight, the log lines
    dropped, the system readings
    (the lab's hand-set figures with demo_readings), the requests shed, and
    the lab's and the per-route request families unless request_metrics is off (then no
    request is observed, and the families are absent rather than frozen at 0)."""
    # The lab's output has no *_created series. The loop-local families never make one;
    # this keeps it so for any prometheus-client Counter or Histogram added to the registry.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = Registry()
    registry.register(ProcessCollector())
    registry.register(ConstantCollector.platform())
    registry.register(GCCollector())
    build = InfoMetricFamily(
        "example_service_build",
        "Version of the running example-service.",
        value={"version": __version__, "fib": IMPLEMENTATION},
    )
    registry.register(ConstantCollector([build]))
    registry.register(InFlightCollector(lifecycle))
    registry.register(LogOutputCollector(log_output))
    hardware = DemoCollector() if demo_readings else HardwareCollector(sysfs_root=sysfs_root)
    readings = ReadingsCollector(hardware, ContainerCollector(cgroup=cgroup))
    registry.register(readings)
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
