"""prometheus-client's process, garbage collector and platform families, written from kept text.

The library's ProcessCollector, GCCollector and PlatformCollector build family and sample
objects for every scrape, and the process one opens and parses two procfs files and lists
the descriptors: together a quarter of a scrape. These collectors give the same families
(names, help and types taken from the library's own collectors at start, values computed as
the library computes them) at a fraction of the cost: /proc/self/stat and the descriptor
directory are kept open and re-read (procfs writes them anew at each read from offset 0),
the open-files limit is the getrlimit the library reads in /proc/self/limits, and the text is
kept but for the values (metrics/family.py). Every value is read at each scrape.
"""

from __future__ import annotations

import gc
import os
import resource
from collections.abc import Iterable, Iterator, Sequence
from typing import cast

from prometheus_client import CollectorRegistry
from prometheus_client import GCCollector as LibraryGCCollector
from prometheus_client import PlatformCollector as LibraryPlatformCollector
from prometheus_client import ProcessCollector as LibraryProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from example_service.metrics.family import Family, FamilyCollector, Kind, Samples
from example_service.metrics.formats import Format
from example_service.system.files import read_at

_NO_LABELS = ()
# The generations' label values, in the order gc.get_stats() lists them.
_GENERATIONS = tuple((str(generation),) for generation in range(len(gc.get_stats())))


def _families(collector: Collector) -> dict[str, Family]:
    """The shapes of the families a library collector gives, by name."""
    shapes = {}
    for metric in collector.collect():
        labels = tuple(metric.samples[0].labels) if metric.samples else ()
        kind = cast(Kind, metric.type)
        shapes[metric.name] = Family(kind, metric.name, metric.documentation, labels)
    return shapes


class ProcessCollector(FamilyCollector):
    """process_virtual_memory_bytes, _resident_memory_bytes, _start_time_seconds,
    _cpu_seconds_total, _open_fds and _max_fds, as the library's ProcessCollector gives them
    for this process; none when /proc cannot be read, as the library gives none."""

    def __init__(self) -> None:
        library = LibraryProcessCollector(registry=None)
        shapes = _families(library)
        self._families = [
            shapes.get(f"process_{name}")
            for name in (
                "virtual_memory_bytes",
                "resident_memory_bytes",
                "start_time_seconds",
                "cpu_seconds",
                "open_fds",
                "max_fds",
            )
        ]
        self._ticks = float(os.sysconf("SC_CLK_TCK"))
        self._pagesize = resource.getpagesize()
        # The boot time, which the library also reads once, at construction.
        self._boot_time = _boot_time()
        self._stat: int | None = None
        self._fds: int | None = None
        try:
            self._stat = os.open("/proc/self/stat", os.O_RDONLY)
            self._fds = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            pass

    def samples(self) -> Iterator[tuple[Family, Samples]]:
        if not self._boot_time or None in self._families:
            return
        vmem, rss, start, cpu, open_fds, max_fds = cast(list[Family], self._families)
        if self._stat is not None:
            try:
                # Fields from the state on, counted as proc(5) counts them from 3.
                fields = read_at(self._stat).rpartition(")")[2].split()
            except OSError:
                fields = []
            if fields:
                ticks = self._ticks
                yield vmem, ((_NO_LABELS, float(fields[20])),)
                yield rss, ((_NO_LABELS, float(fields[21]) * self._pagesize),)
                yield start, ((_NO_LABELS, float(fields[19]) / ticks + self._boot_time),)
                # Each divided, then added, as the library does: the same float to the bit.
                cpu_seconds = float(fields[11]) / ticks + float(fields[12]) / ticks
                yield cpu, ((_NO_LABELS, cpu_seconds),)
        if self._fds is not None:
            try:
                count = len(os.listdir(self._fds))
            except OSError:
                return
            yield open_fds, ((_NO_LABELS, count),)
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            yield max_fds, ((_NO_LABELS, soft),)

    def describe(self) -> Iterable[Metric]:
        return [family.metric() for family in self._families if family is not None]


def _boot_time() -> float:
    """The btime line of /proc/stat, or 0 when it cannot be read (no process families then)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            for line in stat:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0.0


class GCCollector(FamilyCollector):
    """python_gc_objects_collected_total, _objects_uncollectable_total and _collections_total
    by generation, as the library's GCCollector gives them."""

    def __init__(self) -> None:
        shapes = _families(LibraryGCCollector(registry=CollectorRegistry(auto_describe=False)))
        self._families = [
            (shapes[f"python_gc_{name}"], key)
            for name, key in (
                ("objects_collected", "collected"),
                ("objects_uncollectable", "uncollectable"),
                ("collections", "collections"),
            )
        ]

    def samples(self) -> Iterator[tuple[Family, Samples]]:
        stats = gc.get_stats()
        for family, key in self._families:
            yield (
                family,
                [(labels, stat[key]) for labels, stat in zip(_GENERATIONS, stats, strict=True)],
            )

    def describe(self) -> Iterable[Metric]:
        return [family.metric() for family, _ in self._families]


class ConstantCollector(Collector):
    """Families fixed for the process's life (python_info, the build's info): the library's
    own objects, their text kept whole per format."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = tuple(families)
        self._texts: dict[object, str] = {}

    @classmethod
    def platform(cls) -> ConstantCollector:
        """python_info: the library's PlatformCollector computes it once, at construction."""
        return cls(list(LibraryPlatformCollector(registry=None).collect()))

    def collect(self) -> Iterable[Metric]:
        return self._families

    def render(self, page_format: Format) -> str:
        text = self._texts.get(page_format.key)
        if text is None:
            text = self._texts[page_format.key] = "".join(
                "".join(page_format.lines(family)) for family in self._families
            )
        return text
