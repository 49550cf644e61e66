"""This process's PID and namespaces as procfs shows them, on fixture trees and for real."""

from __future__ import annotations

import os
from pathlib import Path

from support.readings import FIXTURES

from example_service.system.process import ProcessIdentity, read_process_identity


def test_a_containers_first_process() -> None:
    identity = read_process_identity(FIXTURES / "cgroup-v2-limits/proc")
    assert identity == ProcessIdentity(
        pid=1,
        namespaces={
            "cgroup": 4026532581,
            "ipc": 4026532498,
            "mnt": 4026532579,
            "net": 4026532501,
            "pid": 4026532580,
            "pid_for_children": 4026532580,
            "time": 4026531834,
            "time_for_children": 4026531834,
            "user": 4026531837,
            "uts": 4026532497,
        },
    )


def test_a_process_in_the_hosts_namespaces() -> None:
    identity = read_process_identity(FIXTURES / "cgroup-v1-unlimited/proc")
    assert identity.pid == 6161
    assert identity.namespaces["pid"] == 4026531836


def test_without_procfs_the_pid_is_our_own(tmp_path: Path) -> None:
    # The same number NSpid's last field would give in this process's namespace.
    assert read_process_identity(tmp_path) == ProcessIdentity(os.getpid(), {})


def test_this_process_as_the_kernel_shows_it() -> None:
    identity = read_process_identity(Path("/proc"))
    assert identity.pid == os.getpid()
    assert identity.namespaces["pid"] == os.stat("/proc/self/ns/pid").st_ino
