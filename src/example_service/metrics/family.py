"""A counter, gauge or info family's shape, declared once, and the collectors that give
their families as (label values, value) pairs read at scrape time.

A scrape makes the library's family objects from those pairs (metric()), and the library's
encoders write them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

Kind = Literal["counter", "gauge", "info"]
Samples = Sequence[tuple[tuple[str, ...], float]]


class Family:
    """A family's name, help, kind and label names. An info family's labels are the keys of
    its samples, whose value is always 1 (the value given is not used)."""

    __slots__ = ("documentation", "kind", "labels", "name")

    def __init__(
        self, kind: Kind, name: str, documentation: str, labels: Iterable[str] = ()
    ) -> None:
        self.kind, self.name, self.documentation = kind, name, documentation
        self.labels = tuple(labels)

    def metric(self, samples: Iterable[tuple[tuple[str, ...], float]] = ()) -> Metric:
        """The library's family object for samples."""
        if self.kind == "info":
            info = InfoMetricFamily(self.name, self.documentation)
            for label_values, _ in samples:
                info.add_metric([], dict(zip(self.labels, label_values, strict=True)))
            return info
        kind = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        family = kind(self.name, self.documentation, labels=self.labels)
        for label_values, value in samples:
            family.add_metric(label_values, value)
        return family


class FamilyCollector(Collector, ABC):
    """A collector whose families are Family objects, with samples read at each collect()."""

    @abstractmethod
    def samples(self) -> Iterator[tuple[Family, Samples]]:
        """Each family of the page and its samples, read now."""

    def collect(self) -> Iterator[Metric]:
        return (family.metric(samples) for family, samples in self.samples())


class ValueCollector(FamilyCollector):
    """A family of one unlabelled sample, read at each scrape from a count the service keeps
    for its own sake (the requests in flight, for the drain): a metric of its own would add
    an update to every request."""

    def __init__(self, family: Family, read: Callable[[], float]) -> None:
        self._family = family
        self._read = read

    def describe(self) -> Iterator[Metric]:
        yield self._family.metric()

    def samples(self) -> Iterator[tuple[Family, Samples]]:
        yield self._family, (((), self._read()),)
