"""What a run counts: every request's outcome, status code, latency and target, and how
well the load generator itself kept up."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from example_service.load.histogram import LatencyHistogram


class Outcome(StrEnum):
    """How a request ended; every request sent ends in exactly one of these."""

    SUCCESS = "success"  # an HTTP answer with a 2xx status
    HTTP_ERROR = "http_error"  # an HTTP answer with any other status
    TIMEOUT = "timeout"  # no complete answer within --timeout
    CONNECTION_ERROR = "connection_error"  # refused, reset or closed by the network
    PROTOCOL_ERROR = "protocol_error"  # the peer broke HTTP
    OTHER_ERROR = "other_error"
    CANCELLED = "cancelled"  # abandoned in flight by a second Ctrl-C


FAILURES = tuple(outcome for outcome in Outcome if outcome is not Outcome.SUCCESS)
QUANTILES = (0.5, 0.9, 0.99)
NS = 1e9


def quantile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted values: always a value that was really observed.

    The exact definition the histogram's quantiles approximate (the bench and the tests
    hold them to it).
    """
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class TargetCounts:
    sent: int = 0
    succeeded: int = 0


@dataclass(frozen=True)
class LatencyFigures:
    """Count, sum, quantiles, mean and maximum of a latency histogram, in seconds; NaN
    where nothing was recorded."""

    count: int
    sum: float
    quantiles: dict[float, float]
    mean: float
    max: float

    @classmethod
    def of(cls, histogram: LatencyHistogram, qs: tuple[float, ...] = QUANTILES) -> LatencyFigures:
        count = histogram.count
        return cls(
            count=count,
            sum=histogram.sum_ns / NS,
            quantiles={q: ns / NS for q, ns in histogram.quantiles(qs).items()},
            mean=histogram.sum_ns / count / NS if count else math.nan,
            max=histogram.max_ns / NS if count else math.nan,
        )


@dataclass
class Recorder:
    """Counts as the run goes; the progress display reads it, the summary freezes it.

    Only the event loop's thread touches it, so plain counters need no lock. Targets are
    numbered in the order of the plan's URLs.
    """

    targets: list[TargetCounts]
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    codes: Counter[int] = field(default_factory=Counter)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    # Open loop only: how late the tool woke up for requests a free slot was waiting for
    # (its own lag), and how many requests found no free slot when they were due.
    lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    waited_for_slot: int = 0
    sent: int = 0

    @classmethod
    def for_targets(cls, count: int) -> Recorder:
        return cls([TargetCounts() for _ in range(count)])

    @property
    def finished(self) -> int:
        return self.outcomes.total()

    @property
    def in_flight(self) -> int:
        return self.sent - self.finished

    @property
    def failed(self) -> int:
        return self.finished - self.outcomes[Outcome.SUCCESS]

    def started(self, target: int) -> None:
        self.sent += 1
        self.targets[target].sent += 1

    def answered(self, target: int, status: int, ns: int) -> None:
        self.codes[status] += 1
        self.latency.record(ns)
        if 200 <= status < 300:
            self.outcomes[Outcome.SUCCESS] += 1
            self.targets[target].succeeded += 1
        else:
            self.outcomes[Outcome.HTTP_ERROR] += 1

    def failed_with(self, outcome: Outcome) -> None:
        self.outcomes[outcome] += 1
