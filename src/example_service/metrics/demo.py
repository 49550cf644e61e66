"""The lab's hand-set figures, for teaching and for the monitoring tests: off by default, and
marked (example_service_demo_readings 1, and a warning at start) so nobody takes them for real.
It replaces HardwareCollector: the two export the same lab families."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from example_service.metrics.hardware import (
    CPU_TEMPERATURE,
    CPU_TEMPERATURE_HELP,
    HD_ERRORS,
    HD_ERRORS_HELP,
)
from example_service.metrics.readings import DEMO_READINGS, DEMO_READINGS_HELP, Source, logger

# What the lab set by hand "for convenience of testing".
DEMO_CPU_TEMPERATURE = 65.3
DEMO_DISK = "/dev/sda"
DEMO_DISK_ERRORS = 1


class DemoCollector:
    sources: Sequence[Source[Any]] = ()  # nothing is read

    def __init__(self) -> None:
        logger.warning(
            "demo readings on: %s %s and %s{device=%r} %s are the lab's hand-set figures, "
            "not readings of this machine",
            CPU_TEMPERATURE,
            DEMO_CPU_TEMPERATURE,
            HD_ERRORS,
            DEMO_DISK,
            DEMO_DISK_ERRORS,
        )

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(CPU_TEMPERATURE, CPU_TEMPERATURE_HELP)
        yield CounterMetricFamily(HD_ERRORS, HD_ERRORS_HELP, labels=["device"])
        yield GaugeMetricFamily(DEMO_READINGS, DEMO_READINGS_HELP)

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(CPU_TEMPERATURE, CPU_TEMPERATURE_HELP, value=DEMO_CPU_TEMPERATURE)
        errors = CounterMetricFamily(HD_ERRORS, HD_ERRORS_HELP, labels=["device"])
        errors.add_metric([DEMO_DISK], DEMO_DISK_ERRORS)
        yield errors
        yield GaugeMetricFamily(DEMO_READINGS, DEMO_READINGS_HELP, value=1.0)
