"""Counters and histograms for values that only the event loop's thread ever updates.

prometheus-client's Counter and Histogram take a lock on every update, so that any thread
may write. Here one thread writes (the request handlers run on the event loop) and every page
is encoded on that same thread, without an await in between (the system readings alone are
taken by threads of their own, system/worker.py, and they touch none of these values). So a
plain integer is already exact and every scrape sees one consistent state. Measured on one
core, the locked updates and label lookups cost 14% of a request's CPU against 4% for these
(README, "Performance"). They reach the registry through prometheus-client's custom-collector
interface, so the exposition stays the library's.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class Histogram:
    """Per-bucket counts (not cumulative) and a sum; the last count is for +Inf."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = tuple(bounds)
        self.counts = [0] * (len(self._bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # A bucket counts values less than or equal to its bound: bisect_left finds it.
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value

    def buckets(self) -> Iterator[tuple[str, float]]:
        """Cumulative (le, count) pairs as the exposition wants them."""
        total = 0
        for bound, count in zip((*self._bounds, float("inf")), self.counts, strict=True):
            total += count
            yield floatToGoString(bound), total  # type: ignore[no-untyped-call]


class Count:
    """One counter's value."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


class CounterFamily(Collector):
    """A labelled counter family; a caller increments the Count of a label set."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, tuple(labels)
        self.children: dict[tuple[str, ...], Count] = {}

    def child(self, label_values: tuple[str, ...]) -> Count:
        count = self.children.get(label_values)
        if count is None:
            count = self.children[label_values] = Count()
        return count

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for label_values, count in self.children.items():
            family.add_metric(label_values, count.value)
        yield family

    def describe(self) -> Iterable[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, labels=self.labels)


class HistogramFamily(Collector):
    """A labelled histogram family; a caller observes into the Histogram of a label set."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], bounds: Sequence[float]
    ) -> None:
        self.name, self.documentation, self.labels = name, documentation, tuple(labels)
        self.bounds = tuple(bounds)
        self.children: dict[tuple[str, ...], Histogram] = {}

    def child(self, label_values: tuple[str, ...]) -> Histogram:
        histogram = self.children.get(label_values)
        if histogram is None:
            histogram = self.children[label_values] = Histogram(self.bounds)
        return histogram

    def collect(self) -> Iterable[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for label_values, histogram in self.children.items():
            family.add_metric(list(label_values), list(histogram.buckets()), histogram.sum)
        yield family

    def describe(self) -> Iterable[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
