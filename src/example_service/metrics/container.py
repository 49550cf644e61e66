"""The container's own resources as families: what system/cgroup.py reads.

"Unlimited" is never exported as a number: the limit's series is absent. Names and rules are
in docs/readings.md."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from example_service.metrics.readings import Source, source_up_family
from example_service.system.cgroup import CgroupReader, CgroupReadings

SOURCE = "cgroup"


class ContainerCollector:
    """The cgroup's limits and usage as example_service_cgroup_* families."""

    def __init__(self, *, cgroup: CgroupReader) -> None:
        self._cgroup = cgroup
        self._source = Source(SOURCE, cgroup.read, CgroupReadings.unavailable)

    @property
    def sources(self) -> Sequence[Source[Any]]:
        return (self._source,)

    def describe(self) -> Iterator[Metric]:
        yield InfoMetricFamily(_INFO[0], _INFO[1])
        for name, help_text, kind, _ in _FAMILIES:
            yield kind(name, help_text)
        yield source_up_family(())

    def collect(self) -> Iterator[Metric]:
        cgroup = self._cgroup
        readings = self._source.current()
        if cgroup.version is not None:
            labels = {"version": str(cgroup.version), "path": cgroup.path or ""}
            yield InfoMetricFamily(_INFO[0], _INFO[1], value=labels)
            for name, help_text, kind, attribute in _FAMILIES:
                value = getattr(readings, attribute)
                if value is not None:
                    yield kind(name, help_text, value=value)
        yield source_up_family([(SOURCE, readings.up)])


_INFO = ("example_service_cgroup", "The cgroup of this process: version (1 or 2) and path.")
_FAMILIES: tuple[tuple[str, str, type[GaugeMetricFamily] | type[CounterMetricFamily], str], ...] = (
    (
        "example_service_cgroup_cpu_quota_cores",
        "CPU time the cgroup may use per period, in cores (absent when unlimited).",
        GaugeMetricFamily,
        "cpu_quota_cores",
    ),
    (
        "example_service_cgroup_cpu_period_seconds",
        "Length of the cgroup's CPU quota period (absent when unlimited).",
        GaugeMetricFamily,
        "cpu_period_seconds",
    ),
    (
        "example_service_cgroup_cpu_usage_seconds_total",
        "CPU time used by the cgroup's processes.",
        CounterMetricFamily,
        "cpu_usage_seconds",
    ),
    (
        "example_service_cgroup_cpu_periods_total",
        "CPU quota periods in which the cgroup's processes ran.",
        CounterMetricFamily,
        "cpu_periods",
    ),
    (
        "example_service_cgroup_cpu_throttled_periods_total",
        "CPU quota periods in which the cgroup was throttled.",
        CounterMetricFamily,
        "cpu_throttled_periods",
    ),
    (
        "example_service_cgroup_cpu_throttled_seconds_total",
        "Time the cgroup's processes spent throttled.",
        CounterMetricFamily,
        "cpu_throttled_seconds",
    ),
    (
        "example_service_cgroup_memory_limit_bytes",
        "Memory limit of the cgroup (absent when unlimited).",
        GaugeMetricFamily,
        "memory_limit_bytes",
    ),
    (
        "example_service_cgroup_memory_usage_bytes",
        "Memory charged to the cgroup, page cache included.",
        GaugeMetricFamily,
        "memory_usage_bytes",
    ),
    (
        "example_service_cgroup_memory_working_set_bytes",
        "Memory usage minus inactive file cache, as the kubelet counts it for eviction.",
        GaugeMetricFamily,
        "memory_working_set_bytes",
    ),
    (
        "example_service_cgroup_oom_kills_total",
        "Processes in the cgroup killed by the OOM killer.",
        CounterMetricFamily,
        "oom_kills",
    ),
)
