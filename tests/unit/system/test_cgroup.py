"""The cgroup reader on fixture trees of cgroup v1 and v2, with and without limits (see
tests/fixtures/readings/README.md), and broken ones made from copies: the readings as values."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support.readings import FIXTURES, copy

from example_service.system.cgroup import CgroupReader, CgroupReadings


def reader(case: Path) -> CgroupReader:
    return CgroupReader(cgroup_root=case / "sys/fs/cgroup", procfs_root=case / "proc")


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (
            "cgroup-v2-limits",
            CgroupReadings(
                cpu_quota_cores=1.5,
                cpu_period_seconds=0.1,
                cpu_usage_seconds=8.123456,
                cpu_periods=4120,
                cpu_throttled_periods=37,
                cpu_throttled_seconds=1.84321,
                memory_limit_bytes=536870912,
                memory_usage_bytes=73400320,
                memory_working_set_bytes=60817408,
                oom_kills=1,
            ),
        ),
        (
            "cgroup-v2-unlimited",
            CgroupReadings(
                cpu_usage_seconds=51.234567,
                cpu_periods=0,
                cpu_throttled_periods=0,
                cpu_throttled_seconds=0.0,
                memory_usage_bytes=41943040,
                memory_working_set_bytes=33554432,
                oom_kills=0,
            ),
        ),
        (
            "cgroup-v1-limits",
            CgroupReadings(
                cpu_quota_cores=0.5,
                cpu_period_seconds=0.1,
                cpu_usage_seconds=2.845123987,
                cpu_periods=812,
                cpu_throttled_periods=95,
                cpu_throttled_seconds=4.521987,
                memory_limit_bytes=268435456,
                memory_usage_bytes=104857600,
                memory_working_set_bytes=83886080,
                oom_kills=2,
            ),
        ),
        (
            "cgroup-v1-unlimited",
            CgroupReadings(
                cpu_usage_seconds=75.549291658,
                cpu_periods=0,
                cpu_throttled_periods=0,
                cpu_throttled_seconds=0.0,
                memory_usage_bytes=5357568,
                memory_working_set_bytes=5324800,
                oom_kills=0,
            ),
        ),
    ],
)
def test_readings_of_each_fixture(case: str, expected: CgroupReadings) -> None:
    readings = reader(FIXTURES / case).read()
    assert readings == expected
    assert readings.up


@pytest.mark.parametrize(
    ("case", "version", "path", "cores", "memory"),
    [
        ("cgroup-v2-limits", 2, "/", 1.5, 536870912),
        ("cgroup-v2-unlimited", 2, "/system.slice/example-service.service", None, None),
        (
            "cgroup-v1-limits",
            1,
            "/docker/3f1c9a7be2d44c3e8f6a0b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f60718293a4b5",
            0.5,
            268435456,
        ),
        ("cgroup-v1-unlimited", 1, "/process_api/35ef3c3ab20a78c0bd4e765eb56ff741", None, None),
    ],
)
def test_version_path_and_limits_for_the_service(
    case: str, version: int, path: str, cores: float | None, memory: int | None
) -> None:
    cgroup = reader(FIXTURES / case)
    assert (cgroup.version, cgroup.path, cgroup.failure) == (version, path, None)
    assert cgroup.cpu_limit_cores() == cores
    assert cgroup.memory_limit_bytes() == memory


def test_v1_unlimited_with_64k_pages(tmp_path: Path) -> None:
    case = copy("cgroup-v1-limits", tmp_path)
    limit = case / "sys/fs/cgroup/memory/memory.limit_in_bytes"
    limit.write_text("9223372036854710272\n")  # LONG_MAX rounded down to 64 KiB pages
    assert reader(case).memory_limit_bytes() is None
    limit.write_text("9223372036854644736\n")  # a real (absurd) limit below that
    assert reader(case).memory_limit_bytes() == 9223372036854644736


def test_v2_root_cgroup_has_no_limit_files(tmp_path: Path) -> None:
    """The root cgroup offers no cpu.max, memory.max, memory.current or memory.events: those
    values are None and nothing is broken."""
    case = copy("cgroup-v2-unlimited", tmp_path)
    (case / "proc/self/cgroup").write_text("0::/\n")
    cgroup = reader(case)
    assert (cgroup.version, cgroup.path) == (2, "/")
    assert (cgroup.cpu_limit_cores(), cgroup.memory_limit_bytes()) == (None, None)
    assert cgroup.read() == CgroupReadings(cpu_usage_seconds=981234.56789)


def test_v1_without_links_for_comounted_controllers(tmp_path: Path) -> None:
    case = copy("cgroup-v1-limits", tmp_path)
    (case / "sys/fs/cgroup/cpu").unlink()
    (case / "sys/fs/cgroup/cpuacct").unlink()
    cgroup = reader(case)
    assert (cgroup.version, cgroup.cpu_limit_cores()) == (1, 0.5)
    assert cgroup.read().cpu_usage_seconds == 2.845123987


NO_CGROUP: list[tuple[Callable[[Path], object], str]] = [
    (lambda case: shutil.rmtree(case / "sys"), "no cgroup v2 and no cgroup v1 cpu controller"),
    (lambda case: (case / "proc/self/cgroup").unlink(), "No such file or directory"),
    (
        lambda case: (case / "proc/self/cgroup").write_text("garbage\n"),
        "not 'id:controllers:path'",
    ),
    (
        lambda case: (case / "proc/self/cgroup").write_text("4:memory:/\n"),
        "no cgroup v2 entry",
    ),
    (
        lambda case: (case / "proc/self/cgroup").write_text("0::/../../system.slice\n"),
        "a cgroup outside this cgroup namespace",
    ),
]


@pytest.mark.parametrize(
    ("mangle", "failure"),
    NO_CGROUP,
    ids=["no-cgroupfs", "no-procfs", "garbage", "v1-lines-on-v2", "outside-namespace"],
)
def test_no_cgroup_found(mangle: Callable[[Path], object], failure: str, tmp_path: Path) -> None:
    case = copy("cgroup-v2-limits", tmp_path)
    mangle(case)
    cgroup = reader(case)
    assert cgroup.version is None
    assert cgroup.path is None
    assert failure in str(cgroup.failure)
    assert (cgroup.cpu_limit_cores(), cgroup.memory_limit_bytes()) == (None, None)
    readings = cgroup.read()
    assert readings == CgroupReadings(problems=(f"no cgroup: {cgroup.failure}",))
    assert not readings.up


def test_v1_missing_a_controller(tmp_path: Path) -> None:
    case = copy("cgroup-v1-limits", tmp_path)
    shutil.rmtree(case / "sys/fs/cgroup/memory")
    assert reader(case).failure == (
        f"no cgroup v2 and no cgroup v1 memory controller in {case}/sys/fs/cgroup"
    )


@pytest.mark.parametrize(
    ("file", "text", "field", "problem"),
    [
        ("cpu.max", "150000\n", "cpu_quota_cores", "not 'quota period': '150000'"),
        ("cpu.max", "-1 100000\n", "cpu_quota_cores", "-1 is below 1"),
        ("cpu.max", "150000 0\n", "cpu_period_seconds", "0 is below 1"),
        ("memory.max", "\n", "memory_limit_bytes", "not a number: '\\n'"),
        ("memory.current", "-4096\n", "memory_usage_bytes", "-4096 is below 0"),
        ("cpu.stat", "usage_usec\n", "cpu_usage_seconds", "not 'key value' lines"),
        ("memory.events", "oom_kill many\n", "oom_kills", "not a 'key value' line"),
        ("memory.events", "low 0\noom_kill 1 2\n", "oom_kills", "not a 'key value' line"),
        ("memory.stat", "anon 0\ninactive_file 12 kB\n", "memory_working_set_bytes", "not a"),
    ],
)
def test_broken_file_leaves_its_value_out_and_says_why(
    file: str, text: str, field: str, problem: str, tmp_path: Path
) -> None:
    case = copy("cgroup-v2-limits", tmp_path)
    path = case / "sys/fs/cgroup" / file
    path.write_text(text)
    readings = reader(case).read()
    assert getattr(readings, field) is None
    assert readings.memory_working_set_bytes is not None or file in (
        "memory.current",
        "memory.stat",
    )
    assert len(readings.problems) == 1
    assert readings.problems[0].startswith(f"{path}: {problem}")
    assert not readings.up


def test_unreadable_file_is_a_directory(tmp_path: Path) -> None:
    case = copy("cgroup-v1-limits", tmp_path)
    control = case / "sys/fs/cgroup/memory/memory.oom_control"
    control.unlink()
    control.mkdir()
    readings = reader(case).read()
    assert readings.oom_kills is None
    assert readings.problems == (f"{control}: Is a directory",)


def test_working_set_never_below_zero(tmp_path: Path) -> None:
    case = copy("cgroup-v2-limits", tmp_path)
    (case / "sys/fs/cgroup/memory.current").write_text("4096\n")
    assert reader(case).read().memory_working_set_bytes == 0
