"""CPU temperature, every temperature sensor and the disk error counts as families: what
system/temperature.py and system/disks.py read, at scrape time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from example_service.metrics.readings import (
    DEMO_READINGS,
    DEMO_READINGS_HELP,
    Source,
    source_up_family,
)
from example_service.system.disks import DeviceCounts, disk_errors, ext4_errors
from example_service.system.temperature import TemperatureReader, Temperatures

# The lab's families: names and help exactly as docs/contract.md, Metrics, has them.
CPU_TEMPERATURE = "cpu_temperature_celsius"
CPU_TEMPERATURE_HELP = "Current temperature of the CPU."
HD_ERRORS = "hd_errors_total"
HD_ERRORS_HELP = "Number of hard-disk errors."

SENSOR_TEMPERATURE = "example_service_sensor_temperature_celsius"
SENSOR_TEMPERATURE_HELP = (
    "Temperature of each hwmon sensor, and of each thermal zone when zones give the CPU's."
)
EXT4_ERRORS = "example_service_ext4_errors_total"
EXT4_ERRORS_HELP = "Errors ext4 recorded in each filesystem's superblock (errors_count)."

_SENSOR_LABELS = ("chip", "sensor")


class HardwareCollector:
    """The real readings behind cpu_temperature_celsius and hd_errors_total, plus every
    temperature sensor and ext4's error counts. Registering reads nothing; each scrape reads."""

    def __init__(self, *, sysfs_root: Path) -> None:
        self._temperatures = Source(
            "cpu_temperature",
            TemperatureReader(sysfs_root=sysfs_root).read,
            Temperatures.unavailable,
        )
        self._disks = Source("disk_errors", disk_errors(sysfs_root).read, DeviceCounts.unavailable)
        self._filesystems = Source(
            "ext4_errors", ext4_errors(sysfs_root).read, DeviceCounts.unavailable
        )

    @property
    def sources(self) -> Sequence[Source[Any]]:
        return (self._temperatures, self._disks, self._filesystems)

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(CPU_TEMPERATURE, CPU_TEMPERATURE_HELP)
        yield GaugeMetricFamily(SENSOR_TEMPERATURE, SENSOR_TEMPERATURE_HELP, labels=_SENSOR_LABELS)
        yield CounterMetricFamily(HD_ERRORS, HD_ERRORS_HELP, labels=["device"])
        yield CounterMetricFamily(EXT4_ERRORS, EXT4_ERRORS_HELP, labels=["device"])
        yield source_up_family(())
        yield GaugeMetricFamily(DEMO_READINGS, DEMO_READINGS_HELP)

    def collect(self) -> Iterator[Metric]:
        temperatures = self._temperatures.current()
        if temperatures.cpu_celsius is not None:
            yield GaugeMetricFamily(
                CPU_TEMPERATURE, CPU_TEMPERATURE_HELP, value=temperatures.cpu_celsius
            )
        if temperatures.sensors:
            family = GaugeMetricFamily(
                SENSOR_TEMPERATURE, SENSOR_TEMPERATURE_HELP, labels=_SENSOR_LABELS
            )
            for sensor in temperatures.sensors:
                family.add_metric([sensor.chip, sensor.name], sensor.celsius)
            yield family

        disks = self._disks.current()
        if disks.counts:
            yield _by_device(HD_ERRORS, HD_ERRORS_HELP, disks)
        filesystems = self._filesystems.current()
        if filesystems.counts:
            yield _by_device(EXT4_ERRORS, EXT4_ERRORS_HELP, filesystems)

        yield source_up_family(
            (
                (self._temperatures.name, temperatures.up),
                (self._disks.name, disks.up),
                (self._filesystems.name, filesystems.up),
            )
        )
        yield GaugeMetricFamily(DEMO_READINGS, DEMO_READINGS_HELP, value=0.0)


def _by_device(name: str, documentation: str, readings: DeviceCounts) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["device"])
    for reading in readings.counts:
        family.add_metric([reading.device], reading.count)
    return family
