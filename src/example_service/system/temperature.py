"""Every temperature sensor, from hwmon chips and thermal zones, and which of them is the CPU's.

The rules (which chip is the CPU, the hottest package, ...) are in docs/readings.md."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from example_service.system.files import Directory, OpenFiles, Reads

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


@dataclass(frozen=True, slots=True)
class Sensor:
    """One sensor's reading: chip is the hwmon chip (nvme-nvme0, coretemp.0) or the thermal
    zone (thermal_zone0); name is its label, its channel (temp1), or the zone's type."""

    chip: str
    channel: int
    name: str
    celsius: float


@dataclass(frozen=True, slots=True)
class Temperatures:
    """One reading of every sensor, in chip and channel order. cpu_celsius is the hottest of
    the sensors that stand for the whole CPU, None when there is none; problems says what
    could not be read, and why."""

    cpu_celsius: float | None
    sensors: tuple[Sensor, ...]
    problems: tuple[str, ...]
    # False when the machine has no CPU sensor and nothing failed (most virtual machines):
    # no reading, and no fault either.
    present: bool = True

    @property
    def up(self) -> bool:
        """Whether the CPU's temperature was read: a sensor of another chip that fails (a wifi
        card's, a sleeping GPU's) does not hide a real CPU reading."""
        return self.cpu_celsius is not None

    @classmethod
    def unavailable(cls, problem: str) -> Temperatures:
        """No reading at all, and why."""
        return cls(None, (), (problem,))


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


class TemperatureReader:
    """The sensors under sysfs_root/class/hwmon, and the thermal zones when hwmon has no CPU.

    Not for two threads at once: it remembers chip layouts, and keeps files open, between
    readings."""

    def __init__(self, *, sysfs_root: Path) -> None:
        self._root = str(sysfs_root)
        # Chips by (hwmon entry, directory inode): listing a chip and reading its name and
        # labels would cost more than reading its temperatures.
        self._chips: dict[tuple[str, int], _Chip] = {}
        self._files = OpenFiles()

    def read(self) -> Temperatures:
        reads = Reads(self._files)
        cpu, sensors = self._temperatures(reads)
        present = cpu is not None or bool(reads.problems)
        if cpu is None:
            reads.note(
                f"no CPU temperature in {self._root}/class/hwmon or {self._root}/class/thermal"
            )
        self._files.reading_done()
        return Temperatures(
            cpu_celsius=cpu,
            sensors=tuple(sorted(sensors, key=lambda sensor: (sensor.chip, sensor.channel))),
            problems=tuple(reads.problems),
            present=present,
        )

    def _temperatures(self, reads: Reads) -> tuple[float | None, list[Sensor]]:
        sensors: list[Sensor] = []
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
                        sensors.append(Sensor(chip.label, channel.number, channel.sensor, celsius))
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
        return None, sensors

    def _zones(self, reads: Reads) -> list[Sensor]:
        zones: list[Sensor] = []
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
                    zones.append(Sensor(entry, int(number), kind.strip(), millidegrees / 1000))
        return zones


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
