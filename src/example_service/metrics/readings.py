"""What the families of every system reading share: where a scrape's readings come from, and
how a failing source is reported.

In a scrape served by the service, the /metrics handler first takes every source's reading off
the event loop, each within its budget (take(), system/offloop.py), then encodes the page on the
loop from those readings, handed to the collectors as an argument; nothing is kept for a later
scrape. A source that cannot be read, or not within its budget, yields no sample (never a
made-up number), one warning on the ``example_service.readings`` logger until it recovers
(then one info line), and ``example_service_source_up{source}`` 0. See docs/readings.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from example_service.metrics.family import Family, Samples
from example_service.system.offloop import BUDGET_SECONDS, Missed, OffLoop

logger = logging.getLogger("example_service.readings")

SOURCE_UP = Family(
    "gauge",
    "example_service_source_up",
    "Whether a source of system readings could be read (1) or not (0).",
    ("source",),
)
DEMO_READINGS = Family(
    "gauge",
    "example_service_demo_readings",
    "1 when the demo source replaces real readings with the lab's hand-set figures, 0 otherwise.",
)

_SHOWN_PROBLEMS = 3


class SourceHealth:
    """Logs a source's failures once: a warning when it starts failing, an info line when
    it reads in full again.

    Reported as each scrape's readings are taken, on the event loop's thread in the service:
    no lock is needed."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._failing = False

    def report(self, *, up: bool, problems: Sequence[str]) -> None:
        failing = not up or bool(problems)
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


def source_up(source: str, up: bool) -> tuple[tuple[str], float]:
    """A sample of example_service_source_up."""
    return (source,), 1.0 if up else 0.0


class Reading(Protocol):
    """What every system reading tells besides its values (system/'s dataclasses)."""

    @property
    def up(self) -> bool: ...

    @property
    def problems(self) -> tuple[str, ...]: ...


R = TypeVar("R", bound=Reading)


class Source(Generic[R]):
    """A source of readings, as example_service_source_up{source} names it.

    read returns a reading; unavailable(why) the reading of a source that gave none in time."""

    def __init__(self, name: str, read: Callable[[], R], unavailable: Callable[[str], R]) -> None:
        self.name = name
        self.read = read
        self.unavailable = unavailable
        self.health = SourceHealth(name)


class ReadingCollector(Protocol):
    """A collector of system readings: the sources it reads, its families, and their samples
    (example_service_source_up's among them) from one scrape's readings."""

    @property
    def sources(self) -> Sequence[Source[Any]]: ...

    def describe(self) -> Iterable[Metric]: ...

    def samples(self, readings: Readings) -> Iterator[tuple[Family, Samples]]: ...


class Readings(Collector):
    """The readings taken for one scrape, by source, and the families the reading collectors
    make of them. Each source's health is reported as it is taken."""

    def __init__(
        self, collectors: Sequence[ReadingCollector], readings: dict[Source[Any], Reading]
    ) -> None:
        self._collectors = collectors
        self._readings = readings
        for source, reading in readings.items():
            source.health.report(up=reading.up, problems=reading.problems)

    def of(self, source: Source[R]) -> R:
        return cast(R, self._readings[source])

    def collect(self) -> Iterator[Metric]:
        up: list[tuple[tuple[str, ...], float]] = []
        for collector in self._collectors:
            for family, samples in collector.samples(self):
                if family is SOURCE_UP:
                    up += samples
                else:
                    yield family.metric(samples)
        yield SOURCE_UP.metric(up)


class ReadingsCollector:
    """Several reading collectors as one, so that they share the family
    example_service_source_up: a page must not show a family twice. Any other family they
    both describe (hardware and demo readings together) is a mistake, refused here."""

    def __init__(self, *collectors: ReadingCollector) -> None:
        described: set[str] = set()
        for collector in collectors:
            for family in collector.describe():
                if family.name in described and family.name != SOURCE_UP.name:
                    raise ValueError(f"two reading collectors describe {family.name}")
                described.add(family.name)
        self.collectors = collectors
        self._sources = [source for collector in collectors for source in collector.sources]
        self._reads = OffLoop("readings", [source.read for source in self._sources])

    def read(self) -> Readings:
        """Every source's reading, read now in the caller's thread (a test, the bench)."""
        return Readings(self.collectors, {source: source.read() for source in self._sources})

    async def take(self, budget: float = BUDGET_SECONDS) -> Readings:
        """Every source's reading, read off the event loop; a source that gives none within
        budget is unavailable for this scrape."""
        readings: dict[Source[Any], Reading] = {}
        for source, result in zip(self._sources, await self._reads.run(budget), strict=True):
            if isinstance(result, Exception):
                raise result
            if isinstance(result, Missed):
                readings[source] = source.unavailable(result.why)
            else:
                readings[source] = cast(Reading, result)
        return Readings(self.collectors, readings)

    def describe(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from (family for family in collector.describe() if family.name != SOURCE_UP.name)
        yield SOURCE_UP.metric()
