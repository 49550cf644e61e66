"""The error counts per disk and per ext4 filesystem, as values, on fixture sysfs trees."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.readings import FIXTURES, copy

from example_service.system.disks import DeviceCount, DeviceCounts, disk_errors, ext4_errors


def test_scsi_disks_in_name_order_from_hexadecimal() -> None:
    readings = disk_errors(FIXTURES / "server/sys").read()
    assert readings == DeviceCounts(
        counts=(
            DeviceCount("/dev/sda", 0),
            DeviceCount("/dev/sdb", 31),
            DeviceCount("/dev/sdc", 672),
            DeviceCount("/dev/sdd", 4294967294),
        ),
        problems=(),
    )
    assert readings.up


def test_nvme_and_virtio_disks_have_no_count() -> None:
    for machine in ("nvme-only", "vm"):
        assert disk_errors(FIXTURES / machine / "sys").read() == DeviceCounts((), ())


def test_ext4_filesystems_skip_entries_that_are_not_filesystems() -> None:
    assert ext4_errors(FIXTURES / "server/sys").read() == DeviceCounts(
        counts=(
            DeviceCount("/dev/dm-0", 3),
            DeviceCount("/dev/md0", 0),
            DeviceCount("/dev/sda1", 0),
        ),
        problems=(),
    )


def test_kernel_device_names_with_slashes(tmp_path: Path) -> None:
    counter = tmp_path / "block/cciss!c0d0/device/ioerr_cnt"
    counter.parent.mkdir(parents=True)
    counter.write_text("0x2\n")
    assert disk_errors(tmp_path).read().counts == (DeviceCount("/dev/cciss/c0d0", 2),)


def test_a_broken_count_is_left_out_and_named(tmp_path: Path) -> None:
    sysfs = copy("server", tmp_path) / "sys"
    (sysfs / "block/sdb/device/ioerr_cnt").write_text("")
    (sysfs / "fs/ext4/dm-0/errors_count").write_text("-3\n")
    disks = disk_errors(sysfs).read()
    assert [count.device for count in disks.counts] == ["/dev/sda", "/dev/sdc", "/dev/sdd"]
    assert disks.problems == (f"{sysfs}/block/sdb/device/ioerr_cnt: not a number: ''",)
    assert not disks.up
    filesystems = ext4_errors(sysfs).read()
    assert filesystems.problems == (f"{sysfs}/fs/ext4/dm-0/errors_count: -3 is below 0",)


def test_no_block_directory_is_a_problem(tmp_path: Path) -> None:
    readings = disk_errors(tmp_path).read()
    assert readings.counts == ()
    assert readings.problems == (f"{tmp_path}/block: No such file or directory",)


def test_entries_without_a_counter_are_not_tried_again_until_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sysfs = copy("server", tmp_path) / "sys"
    reader = disk_errors(sysfs)
    first = reader.read()
    opened: list[str] = []
    original = os.open

    def counting(name: str, *args: Any, **kwargs: Any) -> int:
        opened.append(name)
        return original(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting)
    assert reader.read() == first
    assert opened == [f"{sysfs}/block"]  # dm-0 and md0 not tried; the counters kept open

    # dm-0 goes, and a SCSI disk comes under that name: a new entry (made before the old one
    # goes, so that this filesystem cannot give it the old inode, as sysfs never does), read.
    (sysfs / "block/new").symlink_to(os.readlink(sysfs / "block/sdb"))
    (sysfs / "block/new").replace(sysfs / "block/dm-0")
    assert DeviceCount("/dev/dm-0", 31) in reader.read().counts


def test_a_kernel_without_ext4_has_no_such_source_but_a_missing_block_directory_fails(
    tmp_path: Path,
) -> None:
    """No fs/ext4 is a machine without ext4, not a fault; no block/ means a wrong sysfs root."""
    sysfs = copy("vm", tmp_path) / "sys"
    shutil.rmtree(sysfs / "fs" / "ext4", ignore_errors=True)
    assert ext4_errors(sysfs).read() == DeviceCounts((), (), present=False)
    assert ext4_errors(sysfs).read().up
    empty = tmp_path / "empty"
    empty.mkdir()
    readings = disk_errors(empty).read()
    assert readings.present
    assert not readings.up
    assert readings.problems == (f"{empty}/block: No such file or directory",)
