"""Counters and histograms for values that only the event loop's thread ever updates.

prometheus-client's Counter and Histogram take a lock on every update, so that any thread
may write. Here one thread writes (the request handlers run on the event loop) and every page
is encoded on that same thread, without an await in between (the system readings alone are
taken by threads of their own, system/offloop.py, and they touch none of these values). So a
plain integer is already exact and every scrape sees one consistent state. Measured on one
core, the locked updates and label lookups cost 14% of a request's CPU against 4% for these
(docs/design.md). They reach the registry through prometheus-client's custom-collector
interface, so the exposition stays the library's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
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


Child = TypeVar("Child", Count, Histogram)
LibraryFamily = TypeVar("LibraryFamily", CounterMetricFamily, HistogramMetricFamily)


class _Family(Collector, ABC, Generic[Child, LibraryFamily]):
    """A labelled family; a caller updates the child of a label set. Children are never
    removed: their label sets are bounded by the caller."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.labels = name, documentation, tuple(labels)
        self.children: dict[tuple[str, ...], Child] = {}

    def child(self, label_values: tuple[str, ...]) -> Child:
        child = self.children.get(label_values)
        if child is None:
            child = self.children[label_values] = self._new_child()
        return child

    def collect(self) -> Iterable[Metric]:
        family = self._empty()
        for label_values, child in self.children.items():
            self._add(family, label_values, child)
        yield family

    def describe(self) -> Iterable[Metric]:
        yield self._empty()

    @abstractmethod
    def _new_child(self) -> Child: ...

    @abstractmethod
    def _empty(self) -> LibraryFamily: ...

    @abstractmethod
    def _add(self, family: LibraryFamily, label_values: tuple[str, ...], child: Child) -> None: ...


class CounterFamily(_Family[Count, CounterMetricFamily]):
    """A labelled counter family."""

    def _new_child(self) -> Count:
        return Count()

    def _empty(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labels)

    def _add(
        self, family: CounterMetricFamily, label_values: tuple[str, ...], child: Count
    ) -> None:
        family.add_metric(label_values, child.value)


class HistogramFamily(_Family[Histogram, HistogramMetricFamily]):
    """A labelled histogram family."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], bounds: Sequence[float]
    ) -> None:
        super().__init__(name, documentation, labels)
        self.bounds = tuple(bounds)

    def _new_child(self) -> Histogram:
        return Histogram(self.bounds)

    def _empty(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labels)

    def _add(
        self, family: HistogramMetricFamily, label_values: tuple[str, ...], child: Histogram
    ) -> None:
        family.add_metric(list(label_values), list(child.buckets()), child.sum)
