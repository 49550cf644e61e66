"""build_registry: the one place that registers collectors, and the observers it hands out."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from support.fake_rsgi import FakeScope
from support.readings import FIXTURES
from support.workload import SMALL, MakeWorkload, first_thread_dies

from example_service.logs.writer import LogOutput
from example_service.metrics.exposition import Page
from example_service.metrics.registry import Metrics, build_registry
from example_service.server.lifecycle import Lifecycle
from example_service.settings import Settings
from example_service.system.cgroup import CgroupReader
from example_service.workload.admission import Workload
from example_service.workload.fibonacci import fib

CGROUP = FIXTURES / "cgroup-v2-limits"


def idle_workload() -> Workload:
    settings = Settings()
    return Workload(
        settings.fib_n, 1, settings.request_timeout, settings.max_queue, settings.queue_delay
    )


def build(
    *,
    demo_readings: bool = False,
    request_metrics: bool = True,
    lifecycle: Lifecycle | None = None,
    log_output: LogOutput | None = None,
    workload: Workload | None = None,
) -> Metrics:
    return build_registry(
        lifecycle=lifecycle or Lifecycle(),
        log_output=log_output or LogOutput(),
        workload=workload or idle_workload(),
        cgroup=CgroupReader(cgroup_root=CGROUP / "sys/fs/cgroup", procfs_root=CGROUP / "proc"),
        sysfs_root=FIXTURES / "server/sys",
        demo_readings=demo_readings,
        request_metrics=request_metrics,
    )


def page(metrics: Metrics) -> Collector:
    """What a scrape encodes: the registry, with the readings taken now."""
    return Page(metrics.registry, metrics.readings.read())


def page_text(metrics: Metrics) -> list[str]:
    return generate_latest(page(metrics)).decode().splitlines()


def families(metrics: Metrics) -> list[str]:
    return [family.name for family in page(metrics).collect()]


def test_every_family_in_page_order() -> None:
    names = families(build())
    assert names[:10] == [
        "process_virtual_memory_bytes",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "process_cpu_seconds",
        "process_open_fds",
        "process_max_fds",
        "python_info",
        "python_gc_objects_collected",
        "python_gc_objects_uncollectable",
        "python_gc_collections",
    ]
    assert names[10:] == [
        "example_service_build",
        "example_service_http_requests_in_flight",
        "example_service_log_lines_dropped",
        "example_service_worker_threads_died",
        "example_service_requests_shed",
        "request",
        "request_latency_seconds",
        "http_requests",
        "http_request_duration_seconds",
        "cpu_temperature_celsius",
        "example_service_sensor_temperature_celsius",
        "hd_errors",
        "example_service_ext4_errors",
        "example_service_demo_readings",
        "example_service_cgroup",
        *(name for name in names if name.startswith("example_service_cgroup_")),
        "example_service_source_up",
    ]
    assert len(set(names)) == len(names)


def test_the_counts_the_service_keeps_are_read_at_each_scrape(
    make_workload: MakeWorkload, monkeypatch: pytest.MonkeyPatch
) -> None:
    lifecycle, log_output, workload = Lifecycle(), LogOutput(), make_workload(SMALL)
    metrics = build(lifecycle=lifecycle, log_output=log_output, workload=workload)

    def values() -> list[str]:
        wanted = (
            "example_service_http_requests_in_flight ",
            "example_service_log_lines_dropped_total ",
            "example_service_worker_threads_died_total ",
        )
        return [line for line in page_text(metrics) if line.startswith(wanted)]

    assert values() == [
        "example_service_http_requests_in_flight 0.0",
        "example_service_log_lines_dropped_total 0.0",
        "example_service_worker_threads_died_total 0.0",
    ]
    lifecycle.request_started()
    lifecycle.request_started()
    log_output.dropped = 3
    # The first worker thread dies before it takes its computation; its replacement computes.
    first_thread_dies(monkeypatch)
    assert asyncio.run(workload.compute()) == fib(SMALL)
    assert values() == [
        "example_service_http_requests_in_flight 2.0",
        "example_service_log_lines_dropped_total 3.0",
        "example_service_worker_threads_died_total 1.0",
    ]


def test_observers_count_abc_for_the_lab_and_every_route() -> None:
    metrics = build()
    for observer in metrics.observers:
        observer.record(FakeScope("GET"), "/abc", 200, 0.015)
        observer.record(FakeScope("GET"), "/healthz", 200, 0.001)
    page = generate_latest(metrics.registry).decode().splitlines()
    assert "request_total 1.0" in page
    assert 'request_latency_seconds_bucket{le="0.02"} 1.0' in page
    assert 'http_requests_total{method="GET",route="/healthz",status="200"} 1.0' in page


def test_request_metrics_off_observes_nothing_and_drops_the_request_families() -> None:
    metrics = build(request_metrics=False)
    assert metrics.observers == ()
    names = families(metrics)
    for family in ("request", "request_latency_seconds", "http_requests"):
        assert family not in names


def test_demo_readings_replace_the_hardware_families() -> None:
    text = generate_latest(page(build(demo_readings=True))).decode().splitlines()
    assert "cpu_temperature_celsius 65.3" in text
    assert "example_service_demo_readings 1.0" in text
    assert not [line for line in text if line.startswith("example_service_sensor_")]


@pytest.mark.parametrize(
    "accept",
    [
        "",
        "text/plain; version=1.0.0; escaping=allow-utf-8",
        "application/openmetrics-text; version=1.0.0",
        "application/openmetrics-text; version=1.0.7",
    ],
)
def test_every_format_writes_every_family(accept: str) -> None:
    metrics = build()
    for observer in metrics.observers:
        observer.record(FakeScope("GET"), "/abc", 200, 0.015)
    encoder, _ = choose_encoder(accept)
    text = encoder(page(metrics)).decode()
    for name in families(metrics):
        assert f"# HELP {name}" in text, name
