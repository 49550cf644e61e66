"""A sensor or cgroup file that blocks (here a FIFO nobody writes, as a hung sysfs or NFS read
would) never stalls the event loop: /healthz answers at once while /metrics waits out the
source's budget, the source is down for that scrape, later scrapes add no thread, it is
logged once, and SIGTERM still ends the process."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from support.readings import copy
from support.service import ServiceProcess, StartService

from example_service.system.offloop import BUDGET_SECONDS

SENSOR = "devices/platform/coretemp.0/hwmon/hwmon0/temp1_input"
PROBE_P99_SECONDS = 0.1


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """Scratch copies of a server's sysfs and of a cgroup v2 container's tree."""
    return copy("server", tmp_path) / "sys", copy("cgroup-v2-limits", tmp_path)


def block(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def start(start_service: StartService, sysfs: Path, container: Path) -> ServiceProcess:
    return start_service(
        "--sysfs-root", str(sysfs),
        "--cgroup-root", str(container / "sys/fs/cgroup"),
        "--procfs-root", str(container / "proc"),
        "--access-log", "off",
        "--drain-delay", "0",
    )  # fmt: skip


def scrape_while_probing(service: ServiceProcess) -> list[str]:
    """One scrape, and /healthz called over and over until it is answered: the probes are
    answered promptly, the scrape within the budget. The scrape's lines."""
    scraped: dict[str, object] = {}

    def scrape() -> None:
        started = time.perf_counter()
        response = service.get("/metrics")
        scraped["seconds"] = time.perf_counter() - started
        scraped["lines"] = response.text.splitlines()

    scraper = threading.Thread(target=scrape)
    latencies: list[float] = []
    with httpx.Client(base_url=service.url, timeout=10) as client:
        client.get("/healthz")  # the connection is open before the scrape starts
        scraper.start()
        while scraper.is_alive():
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - started)
    scraper.join()
    seconds, lines = scraped["seconds"], scraped["lines"]
    assert isinstance(seconds, float)
    assert isinstance(lines, list)
    assert len(latencies) >= 20, latencies
    assert p99(latencies) < PROBE_P99_SECONDS, sorted(latencies)[-5:]
    assert BUDGET_SECONDS * 0.9 < seconds < BUDGET_SECONDS + 1.5
    return lines


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def up(lines: list[str], source: str) -> float | None:
    prefix = f'example_service_source_up{{source="{source}"}} '
    return next(
        (float(line.removeprefix(prefix)) for line in lines if line.startswith(prefix)), None
    )


def threads(service: ServiceProcess) -> int:
    return len(os.listdir(f"/proc/{service.process.pid}/task"))


def warnings_about(service: ServiceProcess, source: str) -> list[str]:
    return [
        entry["message"]
        for entry in service.logs()
        if entry["level"] == "warning" and entry["message"].startswith(f"{source} readings")
    ]


def assert_stops_on_sigterm(service: ServiceProcess) -> None:
    service.signal(signal.SIGTERM)
    assert service.process.wait(10) == 0


def test_a_blocked_sensor_stalls_neither_probes_nor_scrapes(
    start_service: StartService, roots: tuple[Path, Path]
) -> None:
    sysfs, container = roots
    block(sysfs / SENSOR)
    service = start(start_service, sysfs, container)

    lines = scrape_while_probing(service)
    assert up(lines, "cpu_temperature") == 0
    assert not [line for line in lines if line.startswith("cpu_temperature_celsius")]
    assert (up(lines, "disk_errors"), up(lines, "ext4_errors"), up(lines, "cgroup")) == (1, 1, 1)
    assert 'hd_errors_total{device="/dev/sdb"} 31.0' in lines

    # Still blocked: each later scrape answers without waiting for it (which would take the
    # whole budget), and no thread is added.
    before = threads(service)
    for _ in range(5):
        started = time.perf_counter()
        assert up(service.get("/metrics").text.splitlines(), "cpu_temperature") == 0
        assert time.perf_counter() - started < BUDGET_SECONDS * 0.9
    assert threads(service) == before
    assert warnings_about(service, "cpu_temperature") == [
        f"cpu_temperature readings unavailable: no reading within {BUDGET_SECONDS:g} s"
    ]
    assert_stops_on_sigterm(service)


def test_a_blocked_cgroup_file_stalls_neither_probes_nor_scrapes_nor_info(
    start_service: StartService, roots: tuple[Path, Path]
) -> None:
    sysfs, container = roots
    block(container / "sys/fs/cgroup/memory.max")  # read by each scrape and by /info
    service = start(start_service, sysfs, container)

    lines = scrape_while_probing(service)
    assert up(lines, "cgroup") == 0
    assert up(lines, "cpu_temperature") == 1
    assert not [line for line in lines if line.startswith("example_service_cgroup_cpu")]

    started = time.perf_counter()
    info = service.get("/info")
    assert time.perf_counter() - started < BUDGET_SECONDS + 1.5
    assert info.status_code == 503
    assert info.text.startswith("system readings unavailable: ")
    assert service.get("/healthz").status_code == 200
    assert warnings_about(service, "cgroup") == [
        f"cgroup readings unavailable: no reading within {BUDGET_SECONDS:g} s"
    ]
    assert_stops_on_sigterm(service)
