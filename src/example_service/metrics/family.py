"""A counter, gauge or info family whose page text is kept but for its values.

Collectors that read their values at scrape time (the process, the garbage collector, the
system readings, the connections) give each family's samples as (label values, value) pairs.
From those pairs a Family makes either the library's family object (collect(), for the
library's encoders and the tests) or, far cheaper, its text in a format (text()): the header
and the text before each series' value are the library's own output, taken once per format
and label set (metrics/formats.py), so a scrape only formats the values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Iterator, Sequence
from typing import Literal

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from example_service.metrics.formats import Format, value_text

Kind = Literal["counter", "gauge", "info"]
Samples = Sequence[tuple[tuple[str, ...], float]]


class _Kept:
    """A family's text in one format: its header, and the text before the value by label
    values, for the series of the last page only (a disk pulled, a sensor gone, drop out)."""

    __slots__ = ("header", "prefixes")

    def __init__(self, header: str) -> None:
        self.header = header
        self.prefixes: dict[tuple[str, ...], str] = {}


class Family:
    """A family's name, help, kind and label names. An info family's labels are the keys of
    its samples, whose value is always 1 (the value given is not used)."""

    __slots__ = ("_kept", "documentation", "kind", "labels", "name")

    def __init__(
        self, kind: Kind, name: str, documentation: str, labels: Iterable[str] = ()
    ) -> None:
        self.kind, self.name, self.documentation = kind, name, documentation
        self.labels = tuple(labels)
        self._kept: dict[Hashable, _Kept] = {}

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

    def text(self, page_format: Format, samples: Samples) -> str:
        """What page_format's encoder writes for metric(samples), byte for byte."""
        kept = self._kept.get(page_format.key)
        if kept is None:
            kept = self._kept[page_format.key] = _Kept("".join(page_format.lines(self.metric())))
        prefixes = kept.prefixes
        lines = [kept.header]
        info = self.kind == "info"
        for label_values, value in samples:
            prefix = prefixes.get(label_values)
            if prefix is None:
                prefix = self._prefix(page_format, label_values)
                if prefix is None:
                    return "".join(page_format.lines(self.metric(samples)))
                prefixes[label_values] = prefix
            number = 1 if info else value
            # value_text's own test, inline: a call per line is a tenth of a line's cost.
            if type(number) is int and 0 <= number < 1_000_000:
                lines.append(f"{prefix}{number}.0\n")
            else:
                lines.append(f"{prefix}{value_text(number)}\n")
        if len(prefixes) != len(samples):  # series gone since the last page
            kept.prefixes = {label_values: prefixes[label_values] for label_values, _ in samples}
        return "".join(lines)

    def _prefix(self, page_format: Format, label_values: tuple[str, ...]) -> str | None:
        """The text before the series' value, or None when the format writes a series of
        this family as other than one line (then the library writes the family)."""
        _, prefixes = page_format.prefixes(self.metric(), self.metric(((label_values, 0.0),)))
        return prefixes[0] if len(prefixes) == 1 else None


class FamilyCollector(Collector, ABC):
    """A collector whose families are Family objects: collect() gives the library's family
    objects and render() their text, both from one call of samples() (so from one reading)."""

    @abstractmethod
    def samples(self) -> Iterator[tuple[Family, Samples]]:
        """Each family of the page and its samples, read now."""

    def collect(self) -> Iterator[Metric]:
        return (family.metric(samples) for family, samples in self.samples())

    def render(self, page_format: Format) -> str:
        return "".join(family.text(page_format, samples) for family, samples in self.samples())
