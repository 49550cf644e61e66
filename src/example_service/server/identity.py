"""What GET /info answers: the replica's identity and its container's view of itself.

Only facts about the process: never the environment, never secrets. Read on each call, as
limits can change while the process runs (in-place pod resize)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TypedDict

from example_service import __version__
from example_service.system.cgroup import CgroupReader
from example_service.system.process import read_process_identity


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
    process = read_process_identity(procfs_root)
    return {
        "hostname": socket.gethostname(),
        "version": __version__,
        "pid": process.pid,
        "namespaces": dict(process.namespaces),
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
