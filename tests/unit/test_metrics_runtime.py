"""The process, garbage collector and platform families are the library's own: the same
lines as prometheus-client's collectors write, in every format, with values read at each
scrape."""

from __future__ import annotations

import gc
import os

import pytest
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from support.readings import FIXTURES

from example_service.metrics import runtime
from example_service.metrics.formats import Format

ACCEPT_HEADERS = ["", "application/openmetrics-text; version=1.0.0"]
# Values that may move between two reads taken a moment apart.
MOVING = ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory")


def registry(*collectors: Collector) -> CollectorRegistry:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    return registry


def steady(page: bytes) -> list[str]:
    return [
        line.rpartition(" ")[0] if line.startswith(MOVING) else line
        for line in page.decode().splitlines()
    ]


@pytest.mark.parametrize("accept", ACCEPT_HEADERS)
def test_the_same_lines_as_the_library_collectors(accept: str) -> None:
    encoder, _ = choose_encoder(accept)
    ours = (runtime.ProcessCollector(), runtime.ConstantCollector.platform(), runtime.GCCollector())
    gc.disable()  # the collection counts must not move between the two pages
    try:
        library = encoder(
            registry(
                ProcessCollector(registry=None),
                PlatformCollector(registry=None),
                GCCollector(registry=CollectorRegistry()),
            )
        )
        page_format = Format(encoder)
        for _ in range(2):  # the text taken from the library, then the kept text
            rendered = "".join(collector.render(page_format) for collector in ours)
            assert steady(rendered.encode() + page_format.trailer) == steady(library)
    finally:
        gc.enable()


def test_every_value_is_read_at_each_scrape() -> None:
    process, collector = runtime.ProcessCollector(), runtime.GCCollector()
    page_format = Format(choose_encoder("")[0])

    def value(text: str, prefix: str) -> float:
        return float(
            next(line for line in text.splitlines() if line.startswith(prefix)).split()[-1]
        )

    fds_before = value(process.render(page_format), "process_open_fds ")
    collections = value(
        collector.render(page_format), 'python_gc_collections_total{generation="0"}'
    )
    cpu_before = value(process.render(page_format), "process_cpu_seconds_total ")
    opened = [os.open(FIXTURES, os.O_RDONLY) for _ in range(3)]
    try:
        gc.collect(0)
        assert sum(i * i for i in range(3_000_000))  # spends some clock ticks of CPU
        assert value(process.render(page_format), "process_open_fds ") == fds_before + 3
    finally:
        for fd in opened:
            os.close(fd)
    assert (
        value(collector.render(page_format), 'python_gc_collections_total{generation="0"}')
        > collections
    )
    assert value(process.render(page_format), "process_cpu_seconds_total ") > cpu_before
