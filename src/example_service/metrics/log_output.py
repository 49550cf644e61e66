"""The log lines dropped because stdout did not take them, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from example_service.log_output import LogOutput

NAME = "example_service_log_lines_dropped"
HELP = "Log lines (access lines included) dropped because stdout did not take them in time."


class LogOutputCollector(Collector):
    def __init__(self, output: LogOutput) -> None:
        self._output = output

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(NAME, HELP)

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(NAME, HELP, value=self._output.dropped)
