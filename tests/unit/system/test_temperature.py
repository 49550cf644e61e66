"""The temperature reader: which sensor is the CPU's, every sensor's name, on fixture machines
and on small hwmon and thermal trees built here. The readings as values; their families and
golden pages are in metrics/test_hardware.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support.readings import FIXTURES

from example_service.system import files
from example_service.system.temperature import Sensor, TemperatureReader, Temperatures


def read(sysfs: Path) -> Temperatures:
    return TemperatureReader(sysfs_root=sysfs).read()


@pytest.mark.parametrize(
    ("machine", "cpu", "sensors"),
    [
        ("intel-desktop", 52.0, 15),
        ("amd-desktop", 61.25, 2),
        ("raspberry-pi", 48.312, 1),
        ("server", 67.0, 10),
        ("nvme-only", 44.0, 9),
    ],
)
def test_each_machine_has_its_cpu_temperature(machine: str, cpu: float, sensors: int) -> None:
    temperatures = read(FIXTURES / machine / "sys")
    assert temperatures.cpu_celsius == cpu
    assert len(temperatures.sensors) == sensors
    assert temperatures.problems == ()
    assert temperatures.up


def test_a_vm_without_sensors_is_down_and_says_where_it_looked() -> None:
    """No sensor at all is a machine without one, not a failure: not present."""
    root = FIXTURES / "vm/sys"
    assert read(root) == Temperatures(
        cpu_celsius=None,
        sensors=(),
        problems=(f"no CPU temperature in {root}/class/hwmon or {root}/class/thermal",),
        present=False,
    )
    assert not read(root).up


def chip(sysfs: Path, number: int, name: str, sensors: dict[int, tuple[int, str | None]]) -> None:
    directory = sysfs / f"devices/platform/{name}.0/hwmon/hwmon{number}"
    directory.mkdir(parents=True)
    (sysfs / "class/hwmon").mkdir(parents=True, exist_ok=True)
    (sysfs / f"class/hwmon/hwmon{number}").symlink_to(directory)
    (directory / "name").write_text(f"{name}\n")
    (directory / "device").symlink_to(f"../../../{name}.0")
    for channel, (millidegrees, label) in sensors.items():
        (directory / f"temp{channel}_input").write_text(f"{millidegrees}\n")
        if label is not None:
            (directory / f"temp{channel}_label").write_text(f"{label}\n")


def zone(sysfs: Path, number: int, kind: str, millidegrees: int) -> None:
    directory = sysfs / f"class/thermal/thermal_zone{number}"
    directory.mkdir(parents=True)
    (directory / "type").write_text(f"{kind}\n")
    (directory / "temp").write_text(f"{millidegrees}\n")


def test_sensors_in_chip_and_channel_order(tmp_path: Path) -> None:
    chip(tmp_path, 0, "nvme", {1: (35000, "Composite")})
    chip(tmp_path, 1, "coretemp", {3: (45000, "Core 1"), 1: (47000, "Package id 0")})
    assert read(tmp_path).sensors == (
        Sensor("coretemp.0", 1, "Package id 0", 47.0),
        Sensor("coretemp.0", 3, "Core 1", 45.0),
        Sensor("nvme.0", 1, "Composite", 35.0),
    )


def test_k10temp_prefers_tdie_to_tctl_which_carries_an_offset(tmp_path: Path) -> None:
    # A Threadripper 2950X: Tctl reads 27 degrees above the die.
    chip(tmp_path, 0, "k10temp", {1: (76500, "Tctl"), 2: (49500, "Tdie"), 3: (47000, "Tccd1")})
    assert read(tmp_path).cpu_celsius == 49.5


def test_old_coretemp_labels_the_package_physical_id(tmp_path: Path) -> None:
    chip(tmp_path, 0, "coretemp", {1: (55000, "Physical id 0"), 2: (58000, "Core 0")})
    assert read(tmp_path).cpu_celsius == 55.0


def test_coretemp_without_package_sensor_gives_the_hottest_core(tmp_path: Path) -> None:
    chip(tmp_path, 0, "coretemp", {2: (51000, "Core 0"), 3: (56000, "Core 1")})
    assert read(tmp_path).cpu_celsius == 56.0


def test_several_cpu_chips_give_the_hottest(tmp_path: Path) -> None:
    chip(tmp_path, 0, "k10temp", {1: (61000, "Tctl")})
    chip(tmp_path, 1, "k10temp", {1: (64000, "Tctl")})
    assert read(tmp_path).cpu_celsius == 64.0


def test_zones_of_cpu_types_beat_a_hotter_acpi_zone(tmp_path: Path) -> None:
    chip(tmp_path, 0, "nvme", {1: (70000, "Composite")})  # not a CPU chip
    zone(tmp_path, 0, "acpitz", 80000)
    zone(tmp_path, 1, "x86_pkg_temp", 45000)
    zone(tmp_path, 2, "iwlwifi_1", 90000)
    temperatures = read(tmp_path)
    assert temperatures.cpu_celsius == 45.0
    assert [sensor.chip for sensor in temperatures.sensors] == [
        "nvme.0",
        "thermal_zone0",
        "thermal_zone1",
        "thermal_zone2",
    ]


def test_acpitz_is_the_last_resort(tmp_path: Path) -> None:
    zone(tmp_path, 0, "acpitz", 27800)
    zone(tmp_path, 1, "acpitz", 29800)
    assert read(tmp_path).cpu_celsius == 29.8


def test_negative_temperatures_are_real_readings(tmp_path: Path) -> None:
    chip(tmp_path, 0, "cpu_thermal", {1: (-5000, None)})
    assert read(tmp_path).cpu_celsius == -5.0


def test_below_absolute_zero_is_garbage(tmp_path: Path) -> None:
    chip(tmp_path, 0, "coretemp", {1: (50000, "Package id 0"), 2: (-300000, "Core 0")})
    temperatures = read(tmp_path)
    assert temperatures.cpu_celsius == 50.0
    assert [sensor.name for sensor in temperatures.sensors] == ["Package id 0"]
    assert temperatures.problems == (
        f"{tmp_path}/class/hwmon/hwmon0/temp2_input: -300000 is below -273150",
    )


def test_repeated_and_missing_labels_fall_back_to_the_channel(tmp_path: Path) -> None:
    chip(tmp_path, 0, "nct6798", {1: (30000, "SYSTIN"), 2: (31000, "SYSTIN"), 3: (32000, "")})
    assert read(tmp_path).sensors == (
        Sensor("nct6798.0", 1, "SYSTIN", 30.0),
        Sensor("nct6798.0", 2, "temp2", 31.0),
        Sensor("nct6798.0", 3, "temp3", 32.0),
    )


def test_labels_are_read_once_per_chip_and_again_for_a_new_chip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chip(tmp_path, 0, "coretemp", {1: (50000, "Package id 0")})
    read_names: list[str] = []
    original = files.read_at

    def counting(fd: int) -> str:
        read_names.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        return original(fd)

    monkeypatch.setattr(files, "read_at", counting)
    reader = TemperatureReader(sysfs_root=tmp_path)
    reader.read()
    reader.read()
    assert read_names.count("temp1_label") == 1
    assert read_names.count("temp1_input") == 2

    # The driver is reloaded: a new directory (a new inode) behind the same hwmon0.
    old = tmp_path / "devices/platform/coretemp.0/hwmon/hwmon0"
    new = old.with_name("hwmon0.new")
    shutil.copytree(old, new, symlinks=True)
    (new / "temp1_label").write_text("Package id 1\n")
    shutil.rmtree(old)
    new.rename(old)
    assert [sensor.name for sensor in reader.read().sensors] == ["Package id 1"]


def test_unreadable_label_keeps_the_reading_and_is_read_again(tmp_path: Path) -> None:
    chip(tmp_path, 0, "coretemp", {1: (50000, None), 2: (48000, "Core 0")})
    label = tmp_path / "devices/platform/coretemp.0/hwmon/hwmon0/temp1_label"
    label.mkdir()
    reader = TemperatureReader(sysfs_root=tmp_path)
    first = reader.read()
    assert first.sensors == (
        Sensor("coretemp.0", 1, "temp1", 50.0),
        Sensor("coretemp.0", 2, "Core 0", 48.0),
    )
    listed = tmp_path / "class/hwmon/hwmon0/temp1_label"  # the path as sysfs lists it
    assert first.problems == (f"{listed}: Is a directory",)
    label.rmdir()
    label.write_text("Package id 0\n")
    second = reader.read()
    assert second.sensors[0] == Sensor("coretemp.0", 1, "Package id 0", 50.0)
    assert second.problems == ()


def test_a_cpu_sensor_that_fails_is_present_and_down(tmp_path: Path) -> None:
    """A sensor that exists but cannot be read is a fault, unlike a machine without one."""
    sysfs = tmp_path / "sys"
    chip(sysfs, 0, "coretemp", {1: (50000, "Package id 0")})
    sensor = next((sysfs / "devices").rglob("temp1_input"))
    sensor.unlink()
    sensor.mkdir()  # EISDIR: a directory where the file should be
    reading = read(sysfs)
    assert reading.present
    assert not reading.up
    assert any("temp1_input" in problem for problem in reading.problems)
