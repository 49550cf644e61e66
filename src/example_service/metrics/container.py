"""The container's own resources as families: what system/cgroup.py reads.

"Unlimited" is never exported as a number: the limit's series is absent. Names and rules are
in docs/readings.md."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.metrics_core import Metric

from example_service.metrics.family import Family, Kind, Samples
from example_service.metrics.readings import SOURCE_UP, Readings, Source, source_up
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
        yield _INFO.metric()
        for family, _ in _FAMILIES:
            yield family.metric()
        yield SOURCE_UP.metric()

    def samples(self, readings: Readings) -> Iterator[tuple[Family, Samples]]:
        cgroup = self._cgroup
        reading = readings.of(self._source)
        if cgroup.version is not None:
            yield _INFO, (((str(cgroup.version), cgroup.path or ""), 1.0),)
            for family, attribute in _FAMILIES:
                value = getattr(reading, attribute)
                if value is not None:
                    yield family, (((), value),)
        yield SOURCE_UP, (source_up(SOURCE, reading.up),)


_INFO = Family(
    "info",
    "example_service_cgroup",
    "The cgroup of this process: version (1 or 2) and path.",
    ("version", "path"),
)


def _family(kind: Kind, name: str, documentation: str, attribute: str) -> tuple[Family, str]:
    return Family(kind, name, documentation), attribute


_FAMILIES: tuple[tuple[Family, str], ...] = (
    _family(
        "gauge",
        "example_service_cgroup_cpu_quota_cores",
        "CPU time the cgroup may use per period, in cores (absent when unlimited).",
        "cpu_quota_cores",
    ),
    _family(
        "gauge",
        "example_service_cgroup_cpu_period_seconds",
        "Length of the cgroup's CPU quota period (absent when unlimited).",
        "cpu_period_seconds",
    ),
    _family(
        "counter",
        "example_service_cgroup_cpu_usage_seconds_total",
        "CPU time used by the cgroup's processes.",
        "cpu_usage_seconds",
    ),
    _family(
        "counter",
        "example_service_cgroup_cpu_periods_total",
        "CPU quota periods in which the cgroup's processes ran.",
        "cpu_periods",
    ),
    _family(
        "counter",
        "example_service_cgroup_cpu_throttled_periods_total",
        "CPU quota periods in which the cgroup was throttled.",
        "cpu_throttled_periods",
    ),
    _family(
        "counter",
        "example_service_cgroup_cpu_throttled_seconds_total",
        "Time the cgroup's processes spent throttled.",
        "cpu_throttled_seconds",
    ),
    _family(
        "gauge",
        "example_service_cgroup_memory_limit_bytes",
        "Memory limit of the cgroup (absent when unlimited).",
        "memory_limit_bytes",
    ),
    _family(
        "gauge",
        "example_service_cgroup_memory_usage_bytes",
        "Memory charged to the cgroup, page cache included.",
        "memory_usage_bytes",
    ),
    _family(
        "gauge",
        "example_service_cgroup_memory_working_set_bytes",
        "Memory usage minus inactive file cache, as the kubelet counts it for eviction.",
        "memory_working_set_bytes",
    ),
    _family(
        "counter",
        "example_service_cgroup_oom_kills_total",
        "Processes in the cgroup killed by the OOM killer.",
        "oom_kills",
    ),
)
