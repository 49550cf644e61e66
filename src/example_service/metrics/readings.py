"""What every system reading shares: how a file is read, and how a failing source is reported.

A source that cannot be read yields no sample (never a made-up number), one warning on the
``example_service.readings`` logger until it recovers (then one info line), and
``example_service_source_up{source}`` 0. See docs/readings.md.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple, Protocol

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

logger = logging.getLogger("example_service.readings")

SOURCE_UP = "example_service_source_up"
SOURCE_UP_HELP = "Whether a source of system readings could be read (1) or not (0)."
DEMO_READINGS = "example_service_demo_readings"
DEMO_READINGS_HELP = (
    "1 when the demo source replaces real readings with the lab's hand-set figures, 0 otherwise."
)

# These mean "nothing to read here (any more)", not "broken": a disk unplugged between listing
# and reading (ENOENT, ENODEV), a driver with no value right now (iwlwifi answers ENODATA while
# its radio is off), a file this kernel or this cgroup does not offer.
_ABSENT = frozenset({errno.ENOENT, errno.ENODEV, errno.ENODATA, errno.ENOTDIR})

_CHUNK = 65536
_SHOWN_PROBLEMS = 3
_SHOWN_TEXT = 40


def read_file(name: str, dir_fd: int | None = None) -> str:
    """Return a file's text. Every reading goes through here: one place to keep cheap and to
    break in tests. os.open/os.read skip the buffered-file machinery, which costs more than
    the read itself for these tiny files; opening relative to a directory's descriptor saves
    walking the long sysfs path (and its links) again for each file."""
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    try:
        chunks = [os.read(fd, _CHUNK)]
        # sysfs and cgroupfs answer a whole file in one read; loop only for a larger one.
        while len(chunks[-1]) == _CHUNK:
            chunks.append(os.read(fd, _CHUNK))
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


class Directory(NamedTuple):
    """An open directory: its path, for messages, and its descriptor, to read within it."""

    path: str
    fd: int


def _path(within: Directory | None, name: str) -> str:
    return name if within is None else f"{within.path}/{name}"


def _fd(within: Directory | None) -> int | None:
    return None if within is None else within.fd


class Reads:
    """The reads of one source during one scrape, and the problems they met.

    A name is read within an open Directory, or is a whole path when within is None. Each
    method returns None when there is no value, and notes why unless the file is simply
    absent (see _ABSENT)."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def note(self, problem: str) -> None:
        self.problems.append(problem)

    def _failed(self, path: str, error: OSError) -> None:
        if error.errno not in _ABSENT:
            self.problems.append(f"{path}: {error.strerror or error}")

    @contextmanager
    def directory(
        self, name: str, within: Directory | None = None, *, required: bool = False
    ) -> Iterator[Directory | None]:
        """The open directory, or None; a missing directory is a problem only when required."""
        path = _path(within, name)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=_fd(within))
        except OSError as error:
            if required and error.errno in _ABSENT:
                self.problems.append(f"{path}: {error.strerror}")
            else:
                self._failed(path, error)
            yield None
            return
        try:
            yield Directory(path, fd)
        finally:
            os.close(fd)

    def listing(self, directory: Directory) -> list[str]:
        try:
            return os.listdir(directory.fd)
        except OSError as error:
            self._failed(directory.path, error)
            return []

    def text(self, name: str, within: Directory | None = None) -> str | None:
        try:
            return read_file(name, _fd(within))
        except OSError as error:
            self._failed(_path(within, name), error)
            return None

    def link(self, name: str, within: Directory) -> str | None:
        try:
            return os.readlink(name, dir_fd=within.fd)
        except OSError as error:
            self._failed(_path(within, name), error)
            return None

    def integer(
        self, name: str, within: Directory | None = None, *, base: int = 10, minimum: int = 0
    ) -> int | None:
        text = self.text(name, within)
        if text is None:
            return None
        return self.parse_integer(_path(within, name), text, base=base, minimum=minimum)

    def parse_integer(
        self, path: str, text: str, *, base: int = 10, minimum: int = 0
    ) -> int | None:
        try:
            value = int(text, base)
        except ValueError:
            self.problems.append(f"{path}: not a number: {text[:_SHOWN_TEXT]!r}")
            return None
        if value < minimum:
            self.problems.append(f"{path}: {value} is below {minimum}")
            return None
        return value

    def keyed(self, path: str) -> dict[str, int] | None:
        """A "key value" per line file (cpu.stat, memory.stat, memory.events, ...)."""
        text = self.text(path)
        if text is None:
            return None
        values: dict[str, int] = {}
        try:
            for line in text.splitlines():
                key, value = line.split()
                values[key] = int(value)
        except ValueError:
            self.problems.append(f"{path}: not 'key value' lines: {text[:_SHOWN_TEXT]!r}")
            return None
        return values


class SourceHealth:
    """Logs a source's failures once: a warning when it starts failing, an info line when
    it reads in full again. Scrapes may run concurrently, hence the lock."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._failing = False
        self._lock = threading.Lock()

    def report(self, *, up: bool, problems: list[str]) -> None:
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
