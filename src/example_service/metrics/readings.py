"""What the families of every system reading share: how a failing source is reported.

A source that cannot be read yields no sample (never a made-up number), one warning on the
``example_service.readings`` logger until it recovers (then one info line), and
``example_service_source_up{source}`` 0. See docs/readings.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

logger = logging.getLogger("example_service.readings")

SOURCE_UP = "example_service_source_up"
SOURCE_UP_HELP = "Whether a source of system readings could be read (1) or not (0)."
DEMO_READINGS = "example_service_demo_readings"
DEMO_READINGS_HELP = (
    "1 when the demo source replaces real readings with the lab's hand-set figures, 0 otherwise."
)

_SHOWN_PROBLEMS = 3


class SourceHealth:
    """Logs a source's failures once: a warning when it starts failing, an info line when
    it reads in full again. Scrapes may run concurrently, hence the lock."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._failing = False
        self._lock = threading.Lock()

    def report(self, *, up: bool, problems: Sequence[str]) -> None:
        failing = not up or bool(problems)
        with self._lock:
            if failing == self._failing:
                return
            self._failing = failing
        extra = {"source": self.source}
        if not failing:
            logger.info("%s readings recovered", self.source, extra=extra)
            return
        shown = "; ".join(problems[:_SHOWN_PROBLEMS])
        if len(problems) > _SHOWN_PROBLEMS:
            shown += f" (and {len(problems) - _SHOWN_PROBLEMS} more)"
        state = "incomplete" if up else "unavailable"
        logger.warning("%s readings %s: %s", self.source, state, shown, extra=extra)


def source_up_family(states: Iterable[tuple[str, bool]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(SOURCE_UP, SOURCE_UP_HELP, labels=["source"])
    for source, up in states:
        family.add_metric([source], 1.0 if up else 0.0)
    return family


class DescribedCollector(Protocol):
    def collect(self) -> Iterable[Metric]: ...

    def describe(self) -> Iterable[Metric]: ...


class ReadingsCollector:
    """Registers several reading collectors as one, so that they share the family
    example_service_source_up: prometheus_client refuses two collectors describing the same
    family, and a page must not show a family twice. Any other family they both describe
    (hardware and demo readings together) is a mistake, refused here."""

    def __init__(self, *collectors: DescribedCollector) -> None:
        described: set[str] = set()
        for collector in collectors:
            for family in collector.describe():
                if family.name in described and family.name != SOURCE_UP:
                    raise ValueError(f"two reading collectors describe {family.name}")
                described.add(family.name)
        self._collectors = collectors

    def describe(self) -> Iterator[Metric]:
        for collector in self._collectors:
            yield from (family for family in collector.describe() if family.name != SOURCE_UP)
        yield source_up_family(())

    def collect(self) -> Iterator[Metric]:
        up = source_up_family(())
        for collector in self._collectors:
            for family in collector.collect():
                if family.name == SOURCE_UP:
                    up.samples.extend(family.samples)
                else:
                    yield family
        yield up
