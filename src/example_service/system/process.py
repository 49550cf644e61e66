"""This process as procfs shows it: its PID and namespaces, as seen from inside a container."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from example_service.system.files import read_file


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """pid is the PID in the innermost PID namespace: 1 for a container's first process.
    namespaces maps each namespace type to its inode ({"pid": 4026531836, ...}): processes
    sharing a namespace show the same inode."""

    pid: int
    namespaces: Mapping[str, int]


def read_process_identity(procfs_root: Path) -> ProcessIdentity:
    return ProcessIdentity(_namespace_pid(procfs_root), _namespaces(procfs_root))


def _namespace_pid(procfs_root: Path) -> int:
    """NSpid lists the PID in each nested namespace, from the one the procfs was mounted in
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
