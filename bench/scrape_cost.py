"""What one scrape of /metrics costs inside the process: the whole handler, readings included.

Builds the registry as the service does with its default settings, reading this machine's
/sys, /proc and cgroup tree, observes the requests a `make bench` run leaves on the page
(/abc, /healthz, /metrics), then serves scrapes through the real /metrics handler on a
uvloop loop: the readings taken by their thread, then the page written by prometheus-client's
encoder for the Accept header given (none by default, as wrk and curl send: the classic text;
Prometheus asks for OpenMetrics). Prints the median time of a scrape, its lines and bytes.
Figures, not a test: nothing here asserts a time.

    .venv/bin/python bench/scrape_cost.py [--scrapes N] [--accept HEADER]

Wall-clock time is noisy on a shared machine; instruction counts are not. For those, run it
under callgrind twice and divide the difference by the scrapes:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null .venv/bin/python \\
        bench/scrape_cost.py --scrapes 0      # then --scrapes 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field

import uvloop

from example_service.logs.writer import LogOutput
from example_service.metrics.exposition import MetricsEndpoint
from example_service.metrics.registry import build_registry
from example_service.server.lifecycle import Lifecycle
from example_service.settings import Settings
from example_service.system.cgroup import CgroupReader
from example_service.workload.admission import Workload

# What a bench run leaves in the request metrics before it scrapes: /abc under load, the
# readiness probe, the first scrape.
OBSERVED = (("/abc", 0.0021, 5000), ("/healthz", 0.0002, 20), ("/metrics", 0.0009, 1))


@dataclass
class _Headers:
    values: dict[str, list[str]] = field(default_factory=dict)

    def get_all(self, key: str) -> list[str]:
        return self.values.get(key, [])


@dataclass
class _Request:
    """A GET without Accept-Encoding, as wrk sends it."""

    method: str
    path: str
    client: str = "127.0.0.1:40000"
    headers: _Headers = field(default_factory=_Headers)


def build() -> MetricsEndpoint:
    settings = Settings()
    cgroup = CgroupReader(cgroup_root=settings.cgroup_root, procfs_root=settings.procfs_root)
    workload = Workload(
        settings.fib_n, 1, settings.request_timeout, settings.max_queue, settings.queue_delay
    )
    metrics = build_registry(
        lifecycle=Lifecycle(),
        log_output=LogOutput(),
        workload=workload,
        cgroup=cgroup,
        sysfs_root=settings.sysfs_root,
        demo_readings=settings.demo_readings,
        request_metrics=settings.request_metrics,
    )
    for path, seconds, times in OBSERVED:
        for _ in range(times):
            for observer in metrics.observers:
                observer.record(_Request("GET", path), path, 200, seconds)
    return MetricsEndpoint(metrics.registry, metrics.readings)


async def measure(
    endpoint: MetricsEndpoint, scrapes: int, accept: str = ""
) -> tuple[list[float], bytes]:
    request = _Request("GET", "/metrics")
    if accept:
        request.headers.values["accept"] = [accept]
    body = (await endpoint(request)).body
    times = []
    for _ in range(scrapes):
        start = time.perf_counter()
        await endpoint(request)
        times.append(time.perf_counter() - start)
    return times, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=2000)
    parser.add_argument(
        "--accept",
        default="",
        help="the scraper's Accept header (Prometheus: application/openmetrics-text; "
        "version=1.0.0)",
    )
    arguments = parser.parse_args()
    times, body = uvloop.run(measure(build(), arguments.scrapes, arguments.accept))
    lines = body.count(b"\n")
    print(f"Python {sys.version.split()[0]}; page: {lines} lines, {len(body):,} bytes")
    if times:
        median = statistics.median(times) * 1e3
        print(f"scrape (median of {len(times)}): {median:.3f} ms")


if __name__ == "__main__":
    main()
