"""What the reading sources share: one example_service_source_up family for all of them,
registration that reads nothing, the demo source, a page that survives every source failing,
and readings taken off the event loop, a source that blocks being down for the scrape."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from support.readings import FIXTURES, LOGGER, assert_golden, copy, scrape

from example_service.metrics.container import ContainerCollector
from example_service.metrics.demo import DemoCollector
from example_service.metrics.exposition import Page
from example_service.metrics.hardware import HardwareCollector
from example_service.metrics.readings import ReadingCollector, ReadingsCollector, SourceHealth
from example_service.system import files
from example_service.system.cgroup import CgroupReader


def records(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]


def container(case: str) -> ContainerCollector:
    root = FIXTURES / case
    reader = CgroupReader(cgroup_root=root / "sys/fs/cgroup", procfs_root=root / "proc")
    return ContainerCollector(cgroup=reader)


def test_source_health_logs_transitions_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    health = SourceHealth("disk_errors")
    health.report(up=True, problems=[])
    health.report(up=False, problems=["a: broken"])
    health.report(up=False, problems=["a: broken", "b: broken"])
    health.report(up=True, problems=["b: broken"])  # still failing: nothing new to say
    health.report(up=True, problems=[])
    health.report(up=True, problems=["1", "2", "3", "4", "5"])
    assert records(caplog) == [
        ("WARNING", "disk_errors readings unavailable: a: broken"),
        ("INFO", "disk_errors readings recovered"),
        ("WARNING", "disk_errors readings incomplete: 1; 2; 3 (and 2 more)"),
    ]


def test_hardware_and_cgroup_share_one_source_up_family() -> None:
    combined = ReadingsCollector(
        HardwareCollector(sysfs_root=FIXTURES / "server/sys"), container("cgroup-v2-limits")
    )
    assert_golden(scrape(combined), "readings-server-cgroup-v2")


def test_demo_replaces_the_hardware_readings(caplog: pytest.LogCaptureFixture) -> None:
    demo = DemoCollector()
    assert records(caplog) == [
        (
            "WARNING",
            "demo readings on: cpu_temperature_celsius 65.3 and hd_errors_total{device='/dev/sda'} "
            "1 are the lab's hand-set figures, not readings of this machine",
        )
    ]
    assert_golden(scrape(ReadingsCollector(demo, container("cgroup-v2-limits"))), "demo")


def test_demo_and_hardware_cannot_be_combined() -> None:
    with pytest.raises(ValueError, match="two reading collectors describe cpu_temperature_celsius"):
        ReadingsCollector(DemoCollector(), HardwareCollector(sysfs_root=FIXTURES / "vm/sys"))


def test_openmetrics_page_has_no_created_series() -> None:
    readings = ReadingsCollector(
        HardwareCollector(sysfs_root=FIXTURES / "server/sys"), container("cgroup-v1-limits")
    )
    text = generate_openmetrics(readings.read()).decode()  # type: ignore[no-untyped-call]
    assert "_created" not in text
    assert 'hd_errors_total{device="/dev/sdb"} 31.0' in text
    assert "# TYPE example_service_cgroup info" in text
    assert text.endswith("# EOF\n")


def test_every_source_broken_leaves_the_rest_of_the_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "missing"
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    requests = Counter("request", "Number of request processed by this service.", registry=registry)
    requests.inc()
    readings = ReadingsCollector(
        HardwareCollector(sysfs_root=missing),
        ContainerCollector(cgroup=CgroupReader(cgroup_root=missing, procfs_root=missing)),
    )
    for _ in range(3):
        text = generate_latest(Page(registry, readings.read())).decode()
    lines = text.splitlines()
    assert "request_total 1.0" in lines
    assert any(line.startswith("process_resident_memory_bytes ") for line in lines)
    assert any(line.startswith("python_info{") for line in lines)
    assert any(line.startswith("python_gc_objects_collected_total{") for line in lines)
    # Nothing made up: the only readings left say that nothing could be read. Without
    # sensors or ext4 the machine may just not have them (no sample); sysfs without block/
    # and no cgroup are failures.
    assert [line for line in lines if line.startswith(("example_service_", "cpu_", "hd_"))] == [
        "example_service_demo_readings 0.0",
        'example_service_source_up{source="disk_errors"} 0.0',
        'example_service_source_up{source="cgroup"} 0.0',
    ]
    # One warning per source, not one per scrape; a kernel without ext4 is nothing to warn of.
    assert [message.split(" readings")[0] for _, message in records(caplog)] == [
        "cpu_temperature",
        "disk_errors",
        "cgroup",
    ]


def test_describing_reads_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Building the cgroup reader finds the cgroup, and the demo warns when built: both happen
    # before the families are described (as a registry does), which must touch no file.
    missing = tmp_path / "missing"
    cgroup = CgroupReader(cgroup_root=missing, procfs_root=missing)
    hardware = HardwareCollector(sysfs_root=missing)
    collectors: list[ReadingCollector | ReadingsCollector] = [
        hardware,
        ContainerCollector(cgroup=cgroup),
        ReadingsCollector(hardware, ContainerCollector(cgroup=cgroup)),
        ReadingsCollector(DemoCollector(), ContainerCollector(cgroup=cgroup)),
    ]
    caplog.clear()
    caplog.set_level(logging.DEBUG)

    def refuse(name: object, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"touched {name} while describing")

    monkeypatch.setattr(files, "read_at", refuse)
    for name in ("open", "listdir", "readlink", "stat", "scandir"):
        monkeypatch.setattr(os, name, refuse)
    for collector in collectors:
        assert [family.samples for family in collector.describe()]
        assert not any(family.samples for family in collector.describe())
    monkeypatch.undo()
    assert caplog.records == []


def test_a_source_that_blocks_is_down_for_each_scrape_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The package sensor is a FIFO nobody writes: opening it blocks, as a hung sensor would."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    budget = 0.2
    sysfs = copy("server", tmp_path) / "sys"
    sensor = sysfs / "devices/platform/coretemp.0/hwmon/hwmon0/temp1_input"
    sensor.unlink()
    os.mkfifo(sensor)
    readings = ReadingsCollector(HardwareCollector(sysfs_root=sysfs), container("cgroup-v2-limits"))

    async def served() -> tuple[float, list[str]]:
        start = time.monotonic()
        page = generate_latest(await readings.take(budget)).decode()
        return time.monotonic() - start, page.splitlines()

    def unblock() -> None:
        replacement = tmp_path / "temp1_input"
        replacement.write_text("61000\n")
        writer = os.open(sensor, os.O_WRONLY)  # lets the blocked open through
        replacement.replace(sensor)
        os.close(writer)

    async def main() -> None:
        seconds, page = await served()
        assert budget <= seconds < budget + 0.5
        assert 'example_service_source_up{source="cpu_temperature"} 0.0' in page
        assert not [line for line in page if line.startswith("cpu_temperature_celsius")]
        for source in ("disk_errors", "ext4_errors", "cgroup"):
            assert f'example_service_source_up{{source="{source}"}} 1.0' in page
        assert 'hd_errors_total{device="/dev/sdb"} 31.0' in page
        for _ in range(3):  # still blocked: answered at once, without a new read
            seconds, page = await served()
            assert seconds < budget / 2
            assert 'example_service_source_up{source="cpu_temperature"} 0.0' in page
        unblock()
        deadline = time.monotonic() + 5
        while "cpu_temperature_celsius 67.0" not in page:
            assert time.monotonic() < deadline, "the source did not recover"
            await asyncio.sleep(0.01)
            _, page = await served()
        assert 'example_service_source_up{source="cpu_temperature"} 1.0' in page

    asyncio.run(main())
    assert records(caplog) == [
        ("WARNING", f"cpu_temperature readings unavailable: no reading within {budget:g} s"),
        ("INFO", "cpu_temperature readings recovered"),
    ]


def reader_threads() -> int:
    return sum(thread.name.startswith("read-readings-") for thread in threading.enumerate())


@pytest.mark.parametrize("trees", ["this machine's", "fixture"])
def test_readings_are_taken_in_the_reader_thread_never_on_the_loop(trees: str) -> None:
    """Every source, this machine's own sysfs and cgroup tree as much as a copied tree (which
    may be on a filesystem that hangs), is read by the reader thread: one thread for all the
    sources and all the scrapes, started on the first."""
    if trees == "fixture":
        hardware = HardwareCollector(sysfs_root=FIXTURES / "server/sys")
        cgroup = container("cgroup-v2-limits")
    else:
        hardware = HardwareCollector(sysfs_root=Path("/sys"))
        cgroup = ContainerCollector(
            cgroup=CgroupReader(cgroup_root=Path("/sys/fs/cgroup"), procfs_root=Path("/proc"))
        )
    readers: set[str] = set()
    for source in (*hardware.sources, *cgroup.sources):
        read = source.read

        def recorded(read: Callable[[], Any] = read) -> Any:
            readers.add(threading.current_thread().name)
            return read()

        source.read = recorded
    readings = ReadingsCollector(hardware, cgroup)
    before = reader_threads()

    async def main() -> None:
        for _ in range(3):
            page = generate_latest(await readings.take()).decode().splitlines()
            assert 'example_service_source_up{source="cgroup"} 1.0' in page

    asyncio.run(main())
    assert len(readers) == 1
    assert readers.pop().startswith("read-readings-")
    assert reader_threads() == before + 1


def test_each_scrape_s_readings_give_its_own_families(tmp_path: Path) -> None:
    """Readings are handed to the collectors, not looked up: two scrapes' readings, taken
    one after the other and encoded in either order, each give their own values."""
    sysfs = copy("server", tmp_path) / "sys"
    sensor = sysfs / "devices/platform/coretemp.0/hwmon/hwmon0/temp1_input"
    readings = ReadingsCollector(HardwareCollector(sysfs_root=sysfs), container("cgroup-v2-limits"))
    first = readings.read()
    replacement = tmp_path / "temp1_input"
    replacement.write_text("71500\n")
    replacement.replace(sensor)  # a new file, as sysfs's would be after a driver reload
    second = readings.read()
    assert "cpu_temperature_celsius 71.5" in generate_latest(second).decode().splitlines()
    assert "cpu_temperature_celsius 67.0" in generate_latest(first).decode().splitlines()
