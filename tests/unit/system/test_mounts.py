"""Which filesystem a path is on: the innermost mount, the last one mounted over a point,
escaped mount points, links followed."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.readings import FIXTURES

from example_service.system.mounts import filesystem, mounts

MOUNTINFO = FIXTURES.parent / "mounts" / "mountinfo"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/sys/class/hwmon/hwmon0/temp1_input", "sysfs"),
        ("/sys/fs/cgroup", "tmpfs"),
        ("/sys/fs/cgroup/memory/kubepods/memory.stat", "cgroup"),
        ("/sys/fs/cgroup/unified/cpu.stat", "cgroup2"),
        ("/mnt/lab data/sensor", "fuse.sshfs"),  # mounted over the nfs4 one
        ("/srv/copy/sys/class", "ext4"),
    ],
)
def test_the_innermost_mount_gives_the_type(path: str, kind: str) -> None:
    assert filesystem(path, mounts(str(MOUNTINFO))) == kind


def test_links_are_followed(tmp_path: Path) -> None:
    table = {"/": "ext4", "/sys": "sysfs"}
    (tmp_path / "sys").symlink_to("/sys")
    assert filesystem(str(tmp_path / "sys/class"), table) == "sysfs"
    assert filesystem(str(tmp_path / "elsewhere"), table) == "ext4"


def test_an_unreadable_table_knows_nothing(tmp_path: Path) -> None:
    table = mounts(str(tmp_path / "missing"))
    assert table == {}
    assert filesystem("/sys", table) is None
