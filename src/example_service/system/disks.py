"""Error counts per device: the kernel's SCSI I/O errors per disk, ext4's per filesystem.

What is read, and what the counts mean, is in docs/readings.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from example_service.system.files import OpenFiles, Reads


@dataclass(frozen=True, slots=True)
class DeviceCount:
    device: str  # /dev/sda
    count: int


@dataclass(frozen=True, slots=True)
class DeviceCounts:
    """One reading of a count per device, in device name order; problems says what could
    not be read, and why. present is False when the machine has no such counts at all (a
    kernel without ext4) and nothing failed."""

    counts: tuple[DeviceCount, ...]
    problems: tuple[str, ...]
    present: bool = True

    @property
    def up(self) -> bool:
        return not self.problems

    @classmethod
    def unavailable(cls, problem: str) -> DeviceCounts:
        """No reading at all, and why."""
        return cls((), (problem,))


class DeviceCountReader:
    """A count per entry of a sysfs directory: sysfs_root/<directory>/<entry>/<file>.

    Most entries have no such file (loop, virtio, NVMe, dm devices; ext4's "features"), and
    trying to open it walks the entry's links every reading: on a host with dozens of loop
    devices, most of the reading. So an entry found without it is not tried again while it
    stays listed with the same inode: the kernel creates a device's files before it lists
    the device, and a device added again under the same name is a new entry, with an inode
    number sysfs never gave before (an ordinary filesystem, in a copied tree, may reuse one)."""

    def __init__(
        self, *, sysfs_root: Path, directory: str, file: str, base: int, required: bool = True
    ) -> None:
        self._directory = f"{sysfs_root}/{directory}"
        # Whether a missing directory is a fault (a wrong sysfs root) or a machine without
        # such devices (a kernel without ext4).
        self._required = required
        self._file = file
        self._base = base
        self._without: set[tuple[str, int]] = set()
        self._files = OpenFiles()

    def read(self) -> DeviceCounts:
        """Not for two threads at once: it keeps files open, and remembers entries without
        the file, between readings."""
        reads = Reads(self._files)
        counts = []
        without: set[tuple[str, int]] = set()
        with reads.directory(self._directory, required=self._required) as opened:
            present = opened is not None or bool(reads.problems)
            for entry in sorted(reads.entries(opened)) if opened is not None else ():
                if entry in self._without:
                    without.add(entry)
                    continue
                known = len(reads.problems)
                count = reads.integer(f"{entry[0]}/{self._file}", opened, base=self._base)
                if count is not None:
                    # The kernel writes "/" in device names as "!" (cciss!c0d0).
                    counts.append(DeviceCount("/dev/" + entry[0].replace("!", "/"), count))
                elif len(reads.problems) == known:  # absent, not broken
                    without.add(entry)
        # Only the entries listed now: the set cannot grow as devices come and go.
        self._without = without
        self._files.reading_done()
        return DeviceCounts(tuple(counts), tuple(reads.problems), present)


def disk_errors(sysfs_root: Path) -> DeviceCountReader:
    """SCSI commands that completed with an error, per disk (hexadecimal ioerr_cnt)."""
    return DeviceCountReader(
        sysfs_root=sysfs_root, directory="block", file="device/ioerr_cnt", base=16
    )


def ext4_errors(sysfs_root: Path) -> DeviceCountReader:
    """Errors ext4 recorded in each filesystem's superblock."""
    return DeviceCountReader(
        sysfs_root=sysfs_root, directory="fs/ext4", file="errors_count", base=10, required=False
    )
