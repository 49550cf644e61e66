"""The cgroup reader and collector on fixture trees of cgroup v1 and v2, with and without
limits (see tests/fixtures/readings/README.md), and broken ones made from copies."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
from support.readings import FIXTURES, assert_golden, warnings
from support.readings import scrape as scrape_collector

from example_service.metrics import readings
from example_service.metrics.container import CgroupReader, ContainerCollector

CASES = ["cgroup-v2-limits", "cgroup-v2-unlimited", "cgroup-v1-limits", "cgroup-v1-unlimited"]


def reader(case: Path) -> CgroupReader:
    return CgroupReader(cgroup_root=case / "sys/fs/cgroup", procfs_root=case / "proc")


def scrape(source: CgroupReader | ContainerCollector) -> str:
    """One scrape; pass the collector itself to keep its state across scrapes."""
    collector = (
        source if isinstance(source, ContainerCollector) else ContainerCollector(cgroup=source)
    )
    return scrape_collector(collector)


def copy(case: str, tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / case, tmp_path / case, symlinks=True)
    return tmp_path / case


@pytest.mark.parametrize("case", CASES)
def test_cgroup_readings_match_golden(case: str, caplog: pytest.LogCaptureFixture) -> None:
    assert_golden(scrape(reader(FIXTURES / case)), case)
    assert warnings(caplog) == []


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


def test_unlimited_is_never_the_kernels_magic_number() -> None:
    for case in ["cgroup-v2-unlimited", "cgroup-v1-unlimited"]:
        text = scrape(reader(FIXTURES / case))
        assert "9223372036854771712" not in text
        assert "9.223372036854772e+18" not in text
        assert "example_service_cgroup_memory_limit_bytes" not in text
        assert "example_service_cgroup_cpu_quota_cores" not in text
        assert "example_service_cgroup_cpu_period_seconds" not in text


def test_v1_unlimited_with_64k_pages(tmp_path: Path) -> None:
    case = copy("cgroup-v1-limits", tmp_path)
    limit = case / "sys/fs/cgroup/memory/memory.limit_in_bytes"
    limit.write_text("9223372036854710272\n")  # LONG_MAX rounded down to 64 KiB pages
    assert reader(case).memory_limit_bytes() is None
    limit.write_text("9223372036854644736\n")  # a real (absurd) limit below that
    assert reader(case).memory_limit_bytes() == 9223372036854644736


def test_v2_root_cgroup_has_no_limit_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The root cgroup offers no cpu.max, memory.max, memory.current or memory.events: the
    series are absent and nothing is broken."""
    case = copy("cgroup-v2-unlimited", tmp_path)
    (case / "proc/self/cgroup").write_text("0::/\n")
    cgroup = reader(case)
    assert (cgroup.cpu_limit_cores(), cgroup.memory_limit_bytes()) == (None, None)
    lines = [line for line in scrape(cgroup).splitlines() if not line.startswith("#")]
    assert lines == [
        'example_service_cgroup_info{path="/",version="2"} 1.0',
        "example_service_cgroup_cpu_usage_seconds_total 981234.56789",
        'example_service_source_up{source="cgroup"} 1.0',
    ]
    assert warnings(caplog) == []


def test_v1_without_links_for_comounted_controllers(tmp_path: Path) -> None:
    case = copy("cgroup-v1-limits", tmp_path)
    (case / "sys/fs/cgroup/cpu").unlink()
    (case / "sys/fs/cgroup/cpuacct").unlink()
    cgroup = reader(case)
    assert (cgroup.version, cgroup.cpu_limit_cores()) == (1, 0.5)
    assert "example_service_cgroup_cpu_usage_seconds_total 2.845123987" in scrape(cgroup)


@pytest.mark.parametrize(
    ("mangle", "failure"),
    [
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
    ],
    ids=["no-cgroupfs", "no-procfs", "garbage", "v1-lines-on-v2", "outside-namespace"],
)
def test_no_cgroup_found(
    mangle: object, failure: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = copy("cgroup-v2-limits", tmp_path)
    assert callable(mangle)
    mangle(case)
    cgroup = reader(case)
    assert cgroup.version is None
    assert cgroup.path is None
    assert failure in str(cgroup.failure)
    assert (cgroup.cpu_limit_cores(), cgroup.memory_limit_bytes()) == (None, None)
    collector = ContainerCollector(cgroup=cgroup)
    for _ in range(3):
        lines = [line for line in scrape(collector).splitlines() if not line.startswith("#")]
        assert lines == ['example_service_source_up{source="cgroup"} 0.0']
    assert warnings(caplog) == [f"cgroup readings unavailable: no cgroup: {cgroup.failure}"]


def test_v1_missing_a_controller(tmp_path: Path) -> None:
    case = copy("cgroup-v1-limits", tmp_path)
    shutil.rmtree(case / "sys/fs/cgroup/memory")
    assert reader(case).failure == (
        f"no cgroup v2 and no cgroup v1 memory controller in {case}/sys/fs/cgroup"
    )


def test_read_failing_with_eagain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cgroup = reader(FIXTURES / "cgroup-v2-limits")
    original = readings.read_file

    def read_file(name: str, dir_fd: int | None = None) -> str:
        if name.endswith("/memory.stat"):
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return original(name, dir_fd)

    monkeypatch.setattr(readings, "read_file", read_file)
    collector = ContainerCollector(cgroup=cgroup)
    for _ in range(3):
        assert_golden(scrape(collector), "broken-cgroup-eagain")
    root = FIXTURES / "cgroup-v2-limits/sys/fs/cgroup"
    assert warnings(caplog) == [
        f"cgroup readings unavailable: {root}/memory.stat: Resource temporarily unavailable"
    ]


@pytest.mark.parametrize(
    ("file", "text", "absent"),
    [
        ("cpu.max", "150000\n", "example_service_cgroup_cpu_quota_cores"),
        ("cpu.max", "-1 100000\n", "example_service_cgroup_cpu_quota_cores"),
        ("cpu.max", "150000 0\n", "example_service_cgroup_cpu_period_seconds"),
        ("memory.max", "\n", "example_service_cgroup_memory_limit_bytes"),
        ("memory.current", "-4096\n", "example_service_cgroup_memory_usage_bytes"),
        ("cpu.stat", "usage_usec\n", "example_service_cgroup_cpu_usage_seconds_total"),
        ("memory.events", "oom_kill many\n", "example_service_cgroup_oom_kills_total"),
    ],
)
def test_broken_file_drops_its_series(
    file: str, text: str, absent: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = copy("cgroup-v2-limits", tmp_path)
    (case / "sys/fs/cgroup" / file).write_text(text)
    page = scrape(reader(case))
    assert absent not in page
    assert "example_service_cgroup_memory_working_set_bytes" in page or file == "memory.current"
    assert 'example_service_source_up{source="cgroup"} 0.0' in page
    assert len(warnings(caplog)) == 1


def test_unreadable_file_is_a_directory(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    case = copy("cgroup-v1-limits", tmp_path)
    control = case / "sys/fs/cgroup/memory/memory.oom_control"
    control.unlink()
    control.mkdir()
    page = scrape(reader(case))
    assert "example_service_cgroup_oom_kills_total" not in page
    assert warnings(caplog) == [f"cgroup readings unavailable: {control}: Is a directory"]


def test_working_set_never_below_zero(tmp_path: Path) -> None:
    case = copy("cgroup-v2-limits", tmp_path)
    (case / "sys/fs/cgroup/memory.current").write_text("4096\n")
    assert "example_service_cgroup_memory_working_set_bytes 0.0" in scrape(reader(case))
