"""The lab's hand-set figures, for teaching and for the monitoring tests: off by default, and
marked (example_service_demo_readings 1, and a warning at start) so nobody takes them for real.
It replaces HardwareCollector: the two export the same lab families."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.metrics_core import Metric

from example_service.metrics.family import Family, Samples
from example_service.metrics.hardware import CPU_TEMPERATURE, HD_ERRORS
from example_service.metrics.readings import DEMO_READINGS, Readings, Source, logger

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
            CPU_TEMPERATURE.name,
            DEMO_CPU_TEMPERATURE,
            f"{HD_ERRORS.name}_total",
            DEMO_DISK,
            DEMO_DISK_ERRORS,
        )

    def describe(self) -> Iterator[Metric]:
        for family in (CPU_TEMPERATURE, HD_ERRORS, DEMO_READINGS):
            yield family.metric()

    def samples(self, readings: Readings) -> Iterator[tuple[Family, Samples]]:
        yield CPU_TEMPERATURE, (((), DEMO_CPU_TEMPERATURE),)
        yield HD_ERRORS, (((DEMO_DISK,), DEMO_DISK_ERRORS),)
        yield DEMO_READINGS, (((), 1.0),)
