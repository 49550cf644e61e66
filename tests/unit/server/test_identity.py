"""GET /info's data: the replica's identity and its container's view of itself, put together
from the system readers (their own tests: system/test_process.py, system/test_cgroup.py)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from support.readings import FIXTURES

from example_service import __version__
from example_service.server.identity import build_identity
from example_service.system.cgroup import CgroupReader
from example_service.system.process import read_process_identity


def reader(case: Path) -> CgroupReader:
    return CgroupReader(cgroup_root=case / "sys/fs/cgroup", procfs_root=case / "proc")


def test_a_containers_first_process() -> None:
    case = FIXTURES / "cgroup-v2-limits"
    identity = build_identity(procfs_root=case / "proc", cgroup=reader(case), num=30)
    assert identity == {
        "hostname": socket.gethostname(),
        "version": __version__,
        "pid": 1,
        "namespaces": dict(read_process_identity(case / "proc").namespaces),
        "cgroup": {"version": 2, "path": "/"},
        "cpu_limit_cores": 1.5,
        "memory_limit_bytes": 536870912,
        "num": 30,
        "num_set": True,
    }
    json.dumps(identity)


def test_a_process_on_a_host_without_limits_and_without_num() -> None:
    case = FIXTURES / "cgroup-v1-unlimited"
    identity = build_identity(procfs_root=case / "proc", cgroup=reader(case), num=None)
    assert identity["pid"] == 6161
    assert identity["namespaces"]["pid"] == 4026531836
    assert identity["cgroup"] == {
        "version": 1,
        "path": "/process_api/35ef3c3ab20a78c0bd4e765eb56ff741",
    }
    assert (identity["cpu_limit_cores"], identity["memory_limit_bytes"]) == (None, None)
    assert (identity["num"], identity["num_set"]) == (None, False)


def test_without_procfs_or_cgroup(tmp_path: Path) -> None:
    identity = build_identity(procfs_root=tmp_path, cgroup=reader(tmp_path), num=None)
    assert identity["pid"] == os.getpid()  # the same number NSpid's last field would give
    assert identity["namespaces"] == {}
    assert identity["cgroup"] is None
    assert (identity["cpu_limit_cores"], identity["memory_limit_bytes"]) == (None, None)


def test_only_identity_never_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    case = FIXTURES / "cgroup-v2-limits"
    marker = "hunter2"
    monkeypatch.setenv("EXAMPLE_SECRET_TOKEN", marker)
    text = json.dumps(build_identity(procfs_root=case / "proc", cgroup=reader(case), num=3))
    assert marker not in text
    assert sorted(json.loads(text)) == [
        "cgroup",
        "cpu_limit_cores",
        "hostname",
        "memory_limit_bytes",
        "namespaces",
        "num",
        "num_set",
        "pid",
        "version",
    ]
