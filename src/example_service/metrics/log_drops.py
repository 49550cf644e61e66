"""The log lines dropped because stdout did not take them, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric

from example_service.logs.writer import LogOutput
from example_service.metrics.family import Family, FamilyCollector, Samples

DROPPED = Family(
    "counter",
    "example_service_log_lines_dropped",
    "Log lines (access lines included) dropped because stdout did not take them in time.",
)


class LogOutputCollector(FamilyCollector):
    def __init__(self, output: LogOutput) -> None:
        self._output = output

    def describe(self) -> Iterator[Metric]:
        yield DROPPED.metric()

    def samples(self) -> Iterator[tuple[Family, Samples]]:
        yield DROPPED, (((), self._output.dropped),)
