"""What a run counts: every request's outcome, status code, latency and target."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


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


def quantile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted values: always a latency that was really observed."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@dataclass
class TargetCounts:
    sent: int = 0
    succeeded: int = 0


@dataclass(frozen=True)
class Latency:
    """Latency of the requests that got an HTTP answer; NaN when none did."""

    count: int
    sum: float
    quantiles: dict[float, float]
    mean: float
    max: float


@dataclass
class Recorder:
    """Counts as the run goes; the progress display reads it, the summary freezes it.

    Only the event loop's thread touches it, so plain counters need no lock.
    """

    outcomes: Counter[Outcome] = field(default_factory=Counter)
    codes: Counter[int] = field(default_factory=Counter)
    # Every latency is kept to compute exact quantiles at the end: 8 bytes a request.
    latencies: array[float] = field(default_factory=lambda: array("d"))
    targets: dict[str, TargetCounts] = field(default_factory=dict)
    sent: int = 0

    @property
    def finished(self) -> int:
        return self.outcomes.total()

    @property
    def in_flight(self) -> int:
        return self.sent - self.finished

    @property
    def failed(self) -> int:
        return self.finished - self.outcomes[Outcome.SUCCESS]

    def started(self, url: str) -> None:
        self.sent += 1
        self.targets.setdefault(url, TargetCounts()).sent += 1

    def answered(self, url: str, status: int, seconds: float) -> None:
        self.codes[status] += 1
        self.latencies.append(seconds)
        if 200 <= status < 300:
            self.outcomes[Outcome.SUCCESS] += 1
            self.targets[url].succeeded += 1
        else:
            self.outcomes[Outcome.HTTP_ERROR] += 1

    def failed_with(self, outcome: Outcome) -> None:
        self.outcomes[outcome] += 1

    def latency(self, start: int = 0) -> Latency:
        """Latency over the answers recorded from index start on (0: the whole run)."""
        recent = sorted(self.latencies[start:])
        if not recent:
            return Latency(0, 0.0, {q: math.nan for q in QUANTILES}, math.nan, math.nan)
        total = math.fsum(recent)
        return Latency(
            count=len(recent),
            sum=total,
            quantiles={q: quantile(recent, q) for q in QUANTILES},
            mean=total / len(recent),
            max=recent[-1],
        )
