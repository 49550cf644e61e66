"""What GET /info answers: the replica's identity and its container's view of itself.

Only facts about the process: never the environment, never secrets. Read on each call, as
limits can change while the process runs (in-place pod resize)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import TypedDict

from example_service import __version__
from example_service.metrics.container import CgroupReader
from example_service.metrics.readings import read_file


class CgroupIdentity(TypedDict):
    version: int
    path: str


class Identity(TypedDict):
    hostname: str
    version: str
    pid: int
    namespaces: dict[str, int]
    cgroup: CgroupIdentity | None
    cpu_limit_cores: float | None
    memory_limit_bytes: int | None
    num: int | None
    num_set: bool


def build_identity(*, procfs_root: Path, cgroup: CgroupReader, num: int | None) -> Identity:
    """num is the workload size NUM, None when it is not set."""
    return {
        "hostname": socket.gethostname(),
        "version": __version__,
        "pid": _namespace_pid(procfs_root),
        "namespaces": _namespaces(procfs_root),
        "cgroup": (
            None
            if cgroup.version is None or cgroup.path is None
            else {"version": cgroup.version, "path": cgroup.path}
        ),
        "cpu_limit_cores": cgroup.cpu_limit_cores(),
        "memory_limit_bytes": cgroup.memory_limit_bytes(),
        "num": num,
        "num_set": num is not None,
    }


def _namespace_pid(procfs_root: Path) -> int:
    """The PID in the innermost PID namespace: 1 for a container's first process.

    NSpid lists the PID in each nested namespace, from the one the procfs was mounted in
    inwards; the last is our own. Kernels before 4.1 have no NSpid, and then os.getpid()
    is that same number."""
    try:
        status = read_file(f"{procfs_root}/self/status")
    except OSError:
        return os.getpid()
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            fields = line.split()
            if len(fields) > 1 and fields[-1].isdigit():
                return int(fields[-1])
    return os.getpid()


def _namespaces(procfs_root: Path) -> dict[str, int]:
    """{"pid": 4026531836, ...}: processes sharing a namespace show the same inode."""
    directory = f"{procfs_root}/self/ns"
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return {}
    inodes: dict[str, int] = {}
    for entry in entries:
        try:
            target = os.readlink(f"{directory}/{entry}")  # "pid:[4026531836]"
        except OSError:
            continue
        inode = target.rpartition("[")[2].rstrip("]")
        if inode.isdigit():
            inodes[entry] = int(inode)
    return inodes
