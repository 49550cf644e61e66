"""The families of CPU temperature, sensors, disk and ext4 errors: the golden pages of fixture
sysfs trees, and what broken ones leave on the page and in the log.

The trees under tests/fixtures/readings are modelled on real machines (see its README); the
broken cases are made from copies at test time. Tests run as root, for whom chmod 000 hides
nothing: an unreadable file is a directory where the file should be (reading it fails with
EISDIR), and failing reads (EIO, EAGAIN) come from patching files.read_at, the one
function every read goes through."""

from __future__ import annotations

import errno
import importlib.util
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
from support.readings import FIXTURES, LOGGER, assert_golden, copy, scrape, warnings

from example_service.metrics.hardware import HardwareCollector
from example_service.system import files

MACHINES = ["intel-desktop", "amd-desktop", "raspberry-pi", "server", "nvme-only", "vm"]


def failing_reads(
    monkeypatch: pytest.MonkeyPatch, suffix: str, action: Callable[[Path], None]
) -> None:
    """Runs action on the file whose real path ends with suffix each time it is read."""
    original = files.read_at

    def read_at(fd: int) -> str:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if str(path).endswith(suffix):
            action(path)
        return original(fd)

    monkeypatch.setattr(files, "read_at", read_at)


def raise_error(code: int) -> Callable[[Path], None]:
    def fail(path: Path) -> None:
        raise OSError(code, os.strerror(code), str(path))

    return fail


@pytest.mark.parametrize("machine", MACHINES)
def test_machine_readings_match_golden(machine: str, caplog: pytest.LogCaptureFixture) -> None:
    collector = HardwareCollector(sysfs_root=FIXTURES / machine / "sys")
    first, second = scrape(collector), scrape(collector)
    assert first == second  # the second scrape uses the cached chip layouts
    assert_golden(first, f"hardware-{machine}")
    # Only the VM has a source that cannot be read: it has no sensor at all.
    expected = [] if machine != "vm" else ["cpu_temperature readings unavailable"]
    assert [message.split(":")[0] for message in warnings(caplog)] == expected


def test_vm_without_sensor_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    collector = HardwareCollector(sysfs_root=FIXTURES / "vm" / "sys")
    for _ in range(3):
        text = scrape(collector)
    assert "cpu_temperature_celsius" not in text
    # No sensor is no fault: no source_up sample, so no alert; 0 is kept for failures.
    assert 'example_service_source_up{source="cpu_temperature"}' not in text
    root = FIXTURES / "vm" / "sys"
    assert warnings(caplog) == [
        f"cpu_temperature readings unavailable: no CPU temperature in {root}/class/hwmon "
        f"or {root}/class/thermal"
    ]


# Broken cases: (name, machine, what breaks it), each with its golden page. -----------------


def unreadable(sysfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package sensor is a directory: the CPU falls back to the x86_pkg_temp zone."""
    package = sysfs / "devices/platform/coretemp.0/hwmon/hwmon3/temp1_input"
    package.unlink()
    package.mkdir()


def empty(sysfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (sysfs / "block/sdb/device/ioerr_cnt").write_text("")


def garbage(sysfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (sysfs / "class/thermal/thermal_zone0/temp").write_text("garbage\n")


def negative(sysfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (sysfs / "block/sdc/device/ioerr_cnt").write_text("-0x1\n")
    (sysfs / "fs/ext4/dm-0/errors_count").write_text("-3\n")


def vanished(sysfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sdc goes between listing and reading, as when a disk is pulled: the kernel fails the
    read of its counter with ENODEV."""
    failing_reads(monkeypatch, "0:0:2:0/ioerr_cnt", raise_error(errno.ENODEV))


def chip_vanished(sysfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The NVMe drive's hwmon directory is gone but still listed: a dangling link."""
    shutil.rmtree(sysfs / "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/hwmon1")


def io_error(sysfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failing_reads(monkeypatch, "0000:00:18.3/hwmon/hwmon2/temp1_input", raise_error(errno.EIO))


def busy(sysfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failing_reads(monkeypatch, "nvme/nvme0/hwmon1/temp3_input", raise_error(errno.EAGAIN))


def below_absolute_zero(sysfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (sysfs / "devices/pci0000:00/0000:00:18.3/hwmon/hwmon2/temp3_input").write_text("-300000\n")


class Broken(NamedTuple):
    name: str
    machine: str
    breaks: Callable[[Path, pytest.MonkeyPatch], None]
    warnings: list[str]  # the one warning per broken source, up to its first ":"


BROKEN = [
    Broken("unreadable", "intel-desktop", unreadable, ["cpu_temperature readings incomplete"]),
    Broken("empty", "server", empty, ["disk_errors readings unavailable"]),
    Broken("garbage", "raspberry-pi", garbage, ["cpu_temperature readings unavailable"]),
    Broken(
        "negative",
        "server",
        negative,
        ["disk_errors readings unavailable", "ext4_errors readings unavailable"],
    ),
    Broken("vanished", "server", vanished, []),
    Broken("chip-vanished", "intel-desktop", chip_vanished, []),
    Broken("eio", "amd-desktop", io_error, ["cpu_temperature readings unavailable"]),
    Broken("eagain", "intel-desktop", busy, ["cpu_temperature readings incomplete"]),
    Broken(
        "below-absolute-zero",
        "amd-desktop",
        below_absolute_zero,
        ["cpu_temperature readings incomplete"],
    ),
]


@pytest.mark.parametrize("case", BROKEN, ids=[case.name for case in BROKEN])
def test_broken_source_yields_no_sample_and_one_warning(
    case: Broken, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sysfs = copy(case.machine, tmp_path) / "sys"
    case.breaks(sysfs, monkeypatch)
    collector = HardwareCollector(sysfs_root=sysfs)
    pages = [scrape(collector) for _ in range(3)]
    assert pages[0] == pages[1] == pages[2]
    assert_golden(pages[0], f"broken-{case.name}")
    assert [message.split(":")[0] for message in warnings(caplog)] == case.warnings


def test_warning_names_the_file_and_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sysfs = copy("server", tmp_path) / "sys"
    (sysfs / "block/sdb/device/ioerr_cnt").write_text("0xzz\n")
    scrape(HardwareCollector(sysfs_root=sysfs))
    assert warnings(caplog) == [
        f"disk_errors readings unavailable: {sysfs}/block/sdb/device/ioerr_cnt: "
        "not a number: '0xzz\\n'"
    ]


def test_a_source_that_recovers_says_so_and_warns_again_when_it_breaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    sysfs = copy("server", tmp_path) / "sys"
    counter = sysfs / "block/sdb/device/ioerr_cnt"
    collector = HardwareCollector(sysfs_root=sysfs)
    for text in ["", "", "0x1f\n", "0x1f\n", "junk\n", "0x20\n"]:
        counter.write_text(text)
        scrape(collector)
    logged = [(r.levelname, r.getMessage().split(":")[0]) for r in caplog.records]
    assert logged == [
        ("WARNING", "disk_errors readings unavailable"),
        ("INFO", "disk_errors readings recovered"),
        ("WARNING", "disk_errors readings unavailable"),
        ("INFO", "disk_errors readings recovered"),
    ]
    assert all(getattr(r, "source", None) == "disk_errors" for r in caplog.records)


# The largest machine: every sensor and disk, nothing dropped. ----------------------------


def build_largest(root: Path) -> tuple[Path, int, int]:
    spec = importlib.util.spec_from_file_location("largest", FIXTURES / "largest.py")
    assert spec is not None
    assert spec.loader is not None
    largest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(largest)
    sysfs: Path = largest.build(root)
    return sysfs, largest.SENSORS, largest.SCSI_DISKS


def test_largest_machine(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sysfs, sensors, disks = build_largest(tmp_path)
    assert sensors >= 64
    assert disks >= 32
    lines = scrape(HardwareCollector(sysfs_root=sysfs)).splitlines()
    assert sum(
        line.startswith("example_service_sensor_temperature_celsius{") for line in lines
    ) == (sensors)
    assert sum(line.startswith("hd_errors_total{") for line in lines) == disks
    assert sum(line.startswith("example_service_ext4_errors_total{") for line in lines) == disks
    assert "cpu_temperature_celsius 40.25" in lines
    assert 'hd_errors_total{device="/dev/sdaf"} 31.0' in lines
    assert (
        'example_service_sensor_temperature_celsius{chip="nvme-nvme3",sensor="Sensor 2"} 40.75'
        in (lines)
    )
    assert warnings(caplog) == []
