"""What the system readings add to a scrape of /metrics.

Scrapes two pages in alternation, so that both see the same machine noise: the page without
the readings (prometheus_client's process, platform and GC collectors, as the service has
them) and the same page with the system readings read and encoded as a scrape of the service
does (read in the caller's thread here), from the largest fixture
(tests/fixtures/readings/largest.py: 78 temperature sensors on 6 hwmon chips, 32 SCSI disks
and 4 NVMe drives, 32 ext4 filesystems) and a cgroup v2 fixture. Prints medians, the added
milliseconds and the ratio; the target is at most 2 ms added. Figures, not a test: nothing
here asserts a time.

    .venv/bin/python bench/readings_cost.py [--scrapes N] [--host]

--host also measures this machine's own /sys, /proc and cgroup tree.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from example_service.metrics.container import ContainerCollector
from example_service.metrics.exposition import Page
from example_service.metrics.hardware import HardwareCollector
from example_service.metrics.readings import ReadingsCollector
from example_service.system.cgroup import CgroupReader

REPOSITORY = Path(__file__).resolve().parent.parent
FIXTURES = REPOSITORY / "tests/fixtures/readings"
TARGET_MS = 2.0


def _largest() -> ModuleType:
    # The fixture builder lives with the tests, which are not an importable package.
    spec = importlib.util.spec_from_file_location("largest", FIXTURES / "largest.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _runtime() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def _page(readings: ReadingsCollector | None) -> Callable[[], bytes]:
    """One scrape of the page: the runtime families, with the readings read now if given."""
    registry = _runtime()
    if readings is None:
        return lambda: generate_latest(registry)
    return lambda: generate_latest(Page(registry, readings.read()))


def _readings(sysfs: Path, cgroup_root: Path, procfs: Path) -> ReadingsCollector:
    return ReadingsCollector(
        HardwareCollector(sysfs_root=sysfs),
        ContainerCollector(cgroup=CgroupReader(cgroup_root=cgroup_root, procfs_root=procfs)),
    )


def _compare(
    title: str, base: Callable[[], bytes], full: Callable[[], bytes], scrapes: int
) -> None:
    def timed(page: Callable[[], bytes]) -> Callable[[], float]:
        def scrape() -> float:
            start = time.perf_counter()
            page()
            return time.perf_counter() - start

        return scrape

    scrape_base, scrape_full = timed(base), timed(full)
    for _ in range(50):  # warm caches (the chip layouts, the allocator) before measuring
        scrape_base()
        scrape_full()
    base_times, full_times = [], []
    for _ in range(scrapes):
        base_times.append(scrape_base())
        full_times.append(scrape_full())
    base_ms = statistics.median(base_times) * 1e3
    full_ms = statistics.median(full_times) * 1e3
    added = full_ms - base_ms
    samples = full().count(b"\n") - base().count(b"\n")
    verdict = "within" if added <= TARGET_MS else "OVER"
    print(f"{title} (median of {scrapes} scrapes each)")
    print(f"  without readings   {base_ms:7.3f} ms")
    print(f"  with readings      {full_ms:7.3f} ms   ({samples} more lines on the page)")
    print(f"  added              {added:7.3f} ms   ratio {full_ms / base_ms:.2f}x")
    print(f"  target             {TARGET_MS:7.3f} ms   {verdict} target")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=1000)
    parser.add_argument("--host", action="store_true", help="also measure this machine")
    arguments = parser.parse_args()
    print(f"Python {sys.version.split()[0]}")
    cgroup = FIXTURES / "cgroup-v2-limits"
    with tempfile.TemporaryDirectory() as directory:
        sysfs = _largest().build(Path(directory))
        full = _page(_readings(sysfs, cgroup / "sys/fs/cgroup", cgroup / "proc"))
        _compare("largest fixture", _page(None), full, arguments.scrapes)
    if arguments.host:
        host = _page(_readings(Path("/sys"), Path("/sys/fs/cgroup"), Path("/proc")))
        _compare("this machine", _page(None), host, arguments.scrapes)


if __name__ == "__main__":
    main()
