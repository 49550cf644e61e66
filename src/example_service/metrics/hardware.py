"""CPU temperature, every temperature sensor and the disk error counts as families: what
system/temperature.py and system/disks.py read, at scrape time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

from example_service.metrics.family import Family, Samples
from example_service.metrics.readings import DEMO_READINGS, SOURCE_UP, Readings, Source, source_up
from example_service.system.disks import DeviceCounts, disk_errors, ext4_errors
from example_service.system.temperature import TemperatureReader, Temperatures

# The lab's families: names and help exactly as docs/contract.md, Metrics, has them.
CPU_TEMPERATURE = Family("gauge", "cpu_temperature_celsius", "Current temperature of the CPU.")
HD_ERRORS = Family("counter", "hd_errors", "Number of hard-disk errors.", ("device",))

SENSOR_TEMPERATURE = Family(
    "gauge",
    "example_service_sensor_temperature_celsius",
    "Temperature of each hwmon sensor, and of each thermal zone when zones give the CPU's.",
    ("chip", "sensor"),
)
EXT4_ERRORS = Family(
    "counter",
    "example_service_ext4_errors",
    "Errors ext4 recorded in each filesystem's superblock (errors_count).",
    ("device",),
)


class HardwareCollector:
    """The real readings behind cpu_temperature_celsius and hd_errors_total, plus every
    temperature sensor and ext4's error counts. Registering reads nothing; each scrape reads."""

    def __init__(self, *, sysfs_root: Path) -> None:
        temperatures = TemperatureReader(sysfs_root=sysfs_root)
        self._temperatures = Source("cpu_temperature", temperatures.read, Temperatures.unavailable)
        disks, filesystems = disk_errors(sysfs_root), ext4_errors(sysfs_root)
        self._disks = Source("disk_errors", disks.read, DeviceCounts.unavailable)
        self._filesystems = Source("ext4_errors", filesystems.read, DeviceCounts.unavailable)

    @property
    def sources(self) -> Sequence[Source[Any]]:
        return (self._temperatures, self._disks, self._filesystems)

    def describe(self) -> Iterator[Metric]:
        for family in (CPU_TEMPERATURE, SENSOR_TEMPERATURE, HD_ERRORS, EXT4_ERRORS, SOURCE_UP):
            yield family.metric()
        yield DEMO_READINGS.metric()

    def samples(self, readings: Readings) -> Iterator[tuple[Family, Samples]]:
        temperatures = readings.of(self._temperatures)
        if temperatures.cpu_celsius is not None:
            yield CPU_TEMPERATURE, (((), temperatures.cpu_celsius),)
        if temperatures.sensors:
            yield (
                SENSOR_TEMPERATURE,
                [((sensor.chip, sensor.name), sensor.celsius) for sensor in temperatures.sensors],
            )

        disks = readings.of(self._disks)
        if disks.counts:
            yield HD_ERRORS, _by_device(disks)
        filesystems = readings.of(self._filesystems)
        if filesystems.counts:
            yield EXT4_ERRORS, _by_device(filesystems)

        # A source this machine does not have (no CPU sensor, no ext4) has no sample: 0 is
        # for a source that exists and failed, the only case worth an alert.
        yield (
            SOURCE_UP,
            tuple(
                source_up(name, reading.up)
                for name, reading in (
                    (self._temperatures.name, temperatures),
                    (self._disks.name, disks),
                    (self._filesystems.name, filesystems),
                )
                if reading.present
            ),
        )
        yield DEMO_READINGS, (((), 0.0),)


def _by_device(readings: DeviceCounts) -> Samples:
    return [((reading.device,), reading.count) for reading in readings.counts]
