"""Files kept open between readings: read anew from offset 0, opened again when they go or
are replaced, closed when no longer read, no more than the limit; on the real kernel too."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from example_service.system import files
from example_service.system.cgroup import CgroupReader
from example_service.system.files import OpenFiles


def read(kept: OpenFiles, path: Path) -> str:
    return kept.read(str(path), str(path), None)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def refuse_open(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise AssertionError("opened a kept file again")

    monkeypatch.setattr(os, "open", refuse)


def test_a_kept_file_is_read_anew_without_opening_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = tmp_path / "value"
    value.write_text("1\n")
    kept = OpenFiles()
    assert read(kept, value) == "1\n"
    value.write_text("22\n")
    with monkeypatch.context() as patched:
        refuse_open(patched)
        assert read(kept, value) == "22\n"


def test_a_replaced_or_removed_file_is_opened_again(tmp_path: Path) -> None:
    value = tmp_path / "value"
    value.write_text("1\n")
    kept = OpenFiles()
    read(kept, value)
    replacement = tmp_path / "replacement"
    replacement.write_text("2\n")
    replacement.replace(value)
    assert read(kept, value) == "2\n"
    value.unlink()
    with pytest.raises(FileNotFoundError):
        read(kept, value)


def test_a_failing_read_opens_the_file_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when a device goes and comes back: the kernel fails reads of the old file."""
    value = tmp_path / "value"
    value.write_text("1\n")
    kept = OpenFiles()
    read(kept, value)
    original = files.read_at
    failed: list[int] = []

    def fail_once(fd: int) -> str:
        if not failed:
            failed.append(fd)
            raise OSError(19, "No such device")
        return original(fd)

    monkeypatch.setattr(files, "read_at", fail_once)
    assert read(kept, value) == "1\n"
    assert failed


def test_files_not_read_are_closed_and_the_limit_holds(tmp_path: Path) -> None:
    paths = [tmp_path / f"file{number}" for number in range(3)]
    for path in paths:
        path.write_text("0\n")
    before = open_descriptors()
    kept = OpenFiles(limit=2)
    for path in paths:
        read(kept, path)
    kept.reading_done()
    assert open_descriptors() == before + 2
    read(kept, paths[0])
    kept.reading_done()
    assert open_descriptors() == before + 1


def test_the_kernel_writes_a_cgroup_file_anew_for_each_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cgroup = CgroupReader(cgroup_root=Path("/sys/fs/cgroup"), procfs_root=Path("/proc"))
    if cgroup.version is None:
        pytest.skip(f"no cgroup here: {cgroup.failure}")
    first = cgroup.read().cpu_usage_seconds
    assert first is not None
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # this process's CPU time is the cgroup's too
        pass
    with monkeypatch.context() as patched:
        refuse_open(patched)
        second = cgroup.read().cpu_usage_seconds
    assert second is not None
    assert second > first
