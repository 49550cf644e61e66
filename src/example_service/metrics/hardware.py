"""CPU temperature, every temperature sensor, and disk error counts, read from sysfs at scrape
time. The rules (which chip is the CPU, the hottest package, ...) are in docs/readings.md."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from example_service.metrics.readings import (
    DEMO_READINGS,
    DEMO_READINGS_HELP,
    Directory,
    Reads,
    SourceHealth,
    source_up_family,
)

# The lab's families: names and help exactly as SPEC.md has them.
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

# hwmon chips that measure the CPU, with the labels of their whole-CPU sensors in order of
# preference; a chip with none of those labels counts all its sensors (old coretemp kernels
# label packages "Physical id N"; k10temp's Tdie is the die, its Tctl may carry an offset).
_CPU_CHIPS: dict[str, tuple[str, ...]] = {
    "coretemp": ("Package id", "Physical id"),
    "k10temp": ("Tdie", "Tctl"),
    "zenpower": ("Tdie", "Tctl"),
    "k8temp": (),
    "via_cputemp": (),
    "cpu_thermal": (),
    "cpu0_thermal": (),
}
# Thermal zone types that measure the CPU, best first; acpitz is a board zone near the CPU,
# used only when nothing better exists.
_CPU_ZONE_TIERS = (
    frozenset({"x86_pkg_temp", "cpu-thermal", "cpu_thermal", "cpu0-thermal"}),
    frozenset({"acpitz"}),
)
_ABSOLUTE_ZERO_MILLIDEGREES = -273150
_SENSOR_LABELS = ("chip", "sensor")

SOURCES = ("cpu_temperature", "disk_errors", "ext4_errors")


class _Sensor(NamedTuple):
    chip: str
    channel: int
    name: str
    celsius: float


class _Channel(NamedTuple):
    file: str  # temp1_input
    number: int
    sensor: str  # its label, or temp1
    cpu: bool  # stands for the whole CPU


class _Chip(NamedTuple):
    """What a hwmon chip offers. Fixed from its registration to its removal; a chip
    registered again is a new sysfs directory, with a new inode."""

    label: str
    channels: tuple[_Channel, ...]


class HardwareCollector:
    """The real readings behind cpu_temperature_celsius and hd_errors_total, plus every
    temperature sensor and ext4's error counts. Registering reads nothing; each scrape reads."""

    def __init__(self, *, sysfs_root: Path) -> None:
        self._root = str(sysfs_root)
        self._health = {source: SourceHealth(source) for source in SOURCES}
        # Chips by (hwmon entry, directory inode): listing a chip and reading its name and
        # labels would cost more than reading its temperatures.
        self._chips: dict[tuple[str, int], _Chip] = {}

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(CPU_TEMPERATURE, CPU_TEMPERATURE_HELP)
        yield GaugeMetricFamily(SENSOR_TEMPERATURE, SENSOR_TEMPERATURE_HELP, labels=_SENSOR_LABELS)
        yield CounterMetricFamily(HD_ERRORS, HD_ERRORS_HELP, labels=["device"])
        yield CounterMetricFamily(EXT4_ERRORS, EXT4_ERRORS_HELP, labels=["device"])
        yield source_up_family(())
        yield GaugeMetricFamily(DEMO_READINGS, DEMO_READINGS_HELP)

    def collect(self) -> Iterator[Metric]:
        temperatures = Reads()
        cpu, sensors = self._temperatures(temperatures)
        if cpu is not None:
            yield GaugeMetricFamily(CPU_TEMPERATURE, CPU_TEMPERATURE_HELP, value=cpu)
        if sensors:
            family = GaugeMetricFamily(
                SENSOR_TEMPERATURE, SENSOR_TEMPERATURE_HELP, labels=_SENSOR_LABELS
            )
            for sensor in sorted(sensors, key=lambda sensor: (sensor.chip, sensor.channel)):
                family.add_metric([sensor.chip, sensor.name], sensor.celsius)
            yield family

        disks = Reads()
        disk_errors = self._counts(disks, "block", "device/ioerr_cnt", base=16)
        if disk_errors:
            yield _by_device(HD_ERRORS, HD_ERRORS_HELP, disk_errors)

        filesystems = Reads()
        fs_errors = self._counts(filesystems, "fs/ext4", "errors_count", base=10)
        if fs_errors:
            yield _by_device(EXT4_ERRORS, EXT4_ERRORS_HELP, fs_errors)

        # The CPU temperature is up when it was read: a sensor of another chip that fails
        # (a wifi card's, a sleeping GPU's) is logged but does not hide a real CPU reading.
        results = (
            ("cpu_temperature", cpu is not None, temperatures),
            ("disk_errors", not disks.problems, disks),
            ("ext4_errors", not filesystems.problems, filesystems),
        )
        for source, up, reads in results:
            self._health[source].report(up=up, problems=reads.problems)
        yield source_up_family((source, up) for source, up, _ in results)
        yield GaugeMetricFamily(DEMO_READINGS, DEMO_READINGS_HELP, value=0.0)

    def _temperatures(self, reads: Reads) -> tuple[float | None, list[_Sensor]]:
        sensors: list[_Sensor] = []
        cpu_values: list[float] = []
        chips: dict[tuple[str, int], _Chip] = {}
        with reads.directory(f"{self._root}/class/hwmon") as hwmon:
            for entry in reads.listing(hwmon) if hwmon is not None else ():
                with reads.directory(entry, hwmon) as directory:
                    if directory is None:
                        continue
                    key = (entry, os.fstat(directory.fd).st_ino)
                    chip = self._chips.get(key)
                    known = len(reads.problems)
                    if chip is None:
                        chip = _chip(reads, directory)
                    if chip is None:
                        continue
                    if len(reads.problems) == known:  # a layout read in part is read again
                        chips[key] = chip
                    for channel in chip.channels:
                        millidegrees = reads.integer(
                            channel.file, directory, minimum=_ABSOLUTE_ZERO_MILLIDEGREES
                        )
                        if millidegrees is None:
                            continue
                        celsius = millidegrees / 1000
                        sensors.append(_Sensor(chip.label, channel.number, channel.sensor, celsius))
                        if channel.cpu:
                            cpu_values.append(celsius)
        # Only the chips present now: the cache cannot grow as devices come and go.
        self._chips = chips
        if cpu_values:
            return max(cpu_values), sensors

        # Zones are read only when hwmon has no CPU: with thermal hwmon support (the usual
        # kernel configuration) they repeat hwmon's sensors, and some cost an ACPI call each.
        zones = self._zones(reads)
        sensors += zones
        for tier in _CPU_ZONE_TIERS:
            values = [zone.celsius for zone in zones if zone.name in tier]
            if values:
                return max(values), sensors
        reads.note(f"no CPU temperature in {self._root}/class/hwmon or {self._root}/class/thermal")
        return None, sensors

    def _zones(self, reads: Reads) -> list[_Sensor]:
        zones: list[_Sensor] = []
        with reads.directory(f"{self._root}/class/thermal") as thermal:
            for entry in reads.listing(thermal) if thermal is not None else ():
                number = entry.removeprefix("thermal_zone")
                if not (entry.startswith("thermal_zone") and number.isdigit()):
                    continue
                kind = reads.text(f"{entry}/type", thermal)
                millidegrees = reads.integer(
                    f"{entry}/temp", thermal, minimum=_ABSOLUTE_ZERO_MILLIDEGREES
                )
                if kind is not None and millidegrees is not None:
                    zones.append(_Sensor(entry, int(number), kind.strip(), millidegrees / 1000))
        return zones

    def _counts(
        self, reads: Reads, directory: str, file: str, *, base: int
    ) -> list[tuple[str, int]]:
        """The per-device counts under directory (block devices, ext4 filesystems)."""
        counts = []
        with reads.directory(f"{self._root}/{directory}", required=True) as opened:
            for entry in sorted(reads.listing(opened)) if opened is not None else ():
                count = reads.integer(f"{entry}/{file}", opened, base=base)
                if count is not None:
                    # The kernel writes "/" in device names as "!" (cciss!c0d0).
                    counts.append(("/dev/" + entry.replace("!", "/"), count))
        return counts


def _by_device(
    name: str, documentation: str, counts: Iterable[tuple[str, int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["device"])
    for device, count in counts:
        family.add_metric([device], count)
    return family


def _chip(reads: Reads, directory: Directory) -> _Chip | None:
    """Reads what a hwmon chip offers; None when it is not a chip (it has no name)."""
    files = reads.listing(directory)
    present = set(files)
    name = _strip(reads.text("name", directory)) if "name" in present else None
    if not name:
        return None
    device = reads.link("device", directory) if "device" in present else None
    if device is None:
        label = name
    else:
        device = device.rsplit("/", 1)[-1]
        # Platform devices are already named after their driver (coretemp.0).
        label = device if device.startswith(f"{name}.") else f"{name}-{device}"

    # In channel order, so that of two sensors a driver labels alike, the first keeps it.
    numbers = sorted(
        int(file[4:-6])
        for file in files
        if file.endswith("_input") and file.startswith("temp") and file[4:-6].isdigit()
    )
    channels: list[tuple[int, str]] = []
    for number in numbers:
        sensor = None
        if f"temp{number}_label" in present:
            sensor = _strip(reads.text(f"temp{number}_label", directory))
        if not sensor or any(sensor == other for _, other in channels):
            # Unlabelled, or a label the driver repeats: the channel name keeps series apart.
            sensor = f"temp{number}"
        channels.append((number, sensor))
    cpu = _cpu_sensors(name, {sensor for _, sensor in channels})
    return _Chip(
        label,
        tuple(_Channel(f"temp{n}_input", n, sensor, sensor in cpu) for n, sensor in channels),
    )


def _cpu_sensors(chip: str, sensors: set[str]) -> set[str]:
    """The sensors that stand for the whole CPU, if this is a CPU chip."""
    preferred = _CPU_CHIPS.get(chip)
    if preferred is None:
        return set()
    for prefix in preferred:
        matching = {sensor for sensor in sensors if sensor.startswith(prefix)}
        if matching:
            return matching
    return sensors


def _strip(text: str | None) -> str | None:
    return None if text is None else text.strip()
