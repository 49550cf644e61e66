"""The cgroup's families: the golden pages of the fixture trees (see
tests/fixtures/readings/README.md), and what a broken cgroup leaves on the page and in the log."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from support.readings import FIXTURES, assert_golden, copy, warnings
from support.readings import scrape as scrape_collector

from example_service.metrics.container import ContainerCollector
from example_service.system import files
from example_service.system.cgroup import CgroupReader

CASES = ["cgroup-v2-limits", "cgroup-v2-unlimited", "cgroup-v1-limits", "cgroup-v1-unlimited"]


def reader(case: Path) -> CgroupReader:
    return CgroupReader(cgroup_root=case / "sys/fs/cgroup", procfs_root=case / "proc")


def scrape(source: CgroupReader | ContainerCollector) -> str:
    """One scrape; pass the collector itself to keep its state across scrapes."""
    collector = (
        source if isinstance(source, ContainerCollector) else ContainerCollector(cgroup=source)
    )
    return scrape_collector(collector)


def samples(page: str) -> list[str]:
    return [line for line in page.splitlines() if not line.startswith("#")]


@pytest.mark.parametrize("case", CASES)
def test_cgroup_readings_match_golden(case: str, caplog: pytest.LogCaptureFixture) -> None:
    assert_golden(scrape(reader(FIXTURES / case)), case)
    assert warnings(caplog) == []


def test_unlimited_is_never_the_kernels_magic_number() -> None:
    for case in ["cgroup-v2-unlimited", "cgroup-v1-unlimited"]:
        text = scrape(reader(FIXTURES / case))
        assert "9223372036854771712" not in text
        assert "9.223372036854772e+18" not in text
        assert "example_service_cgroup_memory_limit_bytes" not in text
        assert "example_service_cgroup_cpu_quota_cores" not in text
        assert "example_service_cgroup_cpu_period_seconds" not in text


def test_v2_root_cgroup_without_limit_files_is_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = copy("cgroup-v2-unlimited", tmp_path)
    (case / "proc/self/cgroup").write_text("0::/\n")
    assert samples(scrape(reader(case))) == [
        'example_service_cgroup_info{path="/",version="2"} 1.0',
        "example_service_cgroup_cpu_usage_seconds_total 981234.56789",
        'example_service_source_up{source="cgroup"} 1.0',
    ]
    assert warnings(caplog) == []


def test_no_cgroup_is_source_down_and_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = copy("cgroup-v2-limits", tmp_path)
    (case / "proc/self/cgroup").unlink()
    cgroup = reader(case)
    collector = ContainerCollector(cgroup=cgroup)
    for _ in range(3):
        assert samples(scrape(collector)) == ['example_service_source_up{source="cgroup"} 0.0']
    assert warnings(caplog) == [f"cgroup readings unavailable: no cgroup: {cgroup.failure}"]


def test_read_failing_with_eagain(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cgroup = reader(FIXTURES / "cgroup-v2-limits")
    original = files.read_at

    def read_at(fd: int) -> str:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("/memory.stat"):
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return original(fd)

    monkeypatch.setattr(files, "read_at", read_at)
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
        ("memory.current", "-4096\n", "example_service_cgroup_memory_usage_bytes"),
        ("memory.events", "oom_kill many\n", "example_service_cgroup_oom_kills_total"),
    ],
)
def test_broken_file_drops_its_series_and_warns_once(
    file: str, text: str, absent: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    case = copy("cgroup-v2-limits", tmp_path)
    (case / "sys/fs/cgroup" / file).write_text(text)
    collector = ContainerCollector(cgroup=reader(case))
    for _ in range(3):
        page = scrape(collector)
        assert absent not in page
        assert "example_service_cgroup_cpu_usage_seconds_total 8.123456" in page
        assert 'example_service_source_up{source="cgroup"} 0.0' in page
    assert [message.split(":")[0] for message in warnings(caplog)] == [
        "cgroup readings unavailable"
    ]
