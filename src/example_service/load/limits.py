"""What bounds a run and how it paces requests, checked before anything is sent."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Each in-flight request holds a socket; beyond this a run would exhaust the usual
# 1024-descriptor limit before it measured anything, and the lab never needs more.
MAX_IN_FLIGHT = 1000

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class LimitError(ValueError):
    """A run that would be unbounded or cannot be paced as asked."""


def parse_duration(text: str) -> float:
    """Seconds from "30", "2.5s", "500ms", "2m" or "1h"."""
    match = _DURATION.match(text)
    if match is None:
        raise LimitError(f"invalid duration {text!r}: expected e.g. 30s, 500ms, 2m or 1h")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not seconds > 0 or math.isinf(seconds):
        raise LimitError(f"invalid duration {text!r}: must be more than zero")
    return seconds


@dataclass(frozen=True)
class Limits:
    """When a run stops: after count requests, after duration seconds, whichever is first."""

    count: int | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        if self.count is None and self.duration is None:
            raise LimitError("no limit: give --count N and/or --duration TIME")
        if self.count is not None and self.count < 1:
            raise LimitError(f"--count must be at least 1, not {self.count}")
        if self.duration is not None and not (0 < self.duration < math.inf):
            raise LimitError(f"--duration must be more than zero, not {self.duration}")


@dataclass(frozen=True)
class Pacing:
    """Open loop at `rate` requests per second, or closed loop with `concurrency` senders.

    In the open loop a request starts on schedule whether or not earlier ones have answered,
    which is how independent users behave; `max_in_flight` bounds the sockets that a slow
    target can make it hold. In the closed loop each sender waits for its answer first.
    """

    rate: float | None = None
    concurrency: int | None = None
    max_in_flight: int = 100

    def __post_init__(self) -> None:
        if (self.rate is None) == (self.concurrency is None):
            raise LimitError("choose one of --rate and --concurrency")
        if self.rate is not None and not (0 < self.rate < math.inf):
            raise LimitError(f"--rate must be more than zero, not {self.rate}")
        if self.concurrency is not None and not 1 <= self.concurrency <= MAX_IN_FLIGHT:
            raise LimitError(
                f"--concurrency must be from 1 to {MAX_IN_FLIGHT}, not {self.concurrency}"
            )
        if not 1 <= self.max_in_flight <= MAX_IN_FLIGHT:
            raise LimitError(
                f"--max-in-flight must be from 1 to {MAX_IN_FLIGHT}, not {self.max_in_flight}"
            )

    @property
    def mode(self) -> str:
        return "rate" if self.rate is not None else "concurrency"

    @property
    def connections(self) -> int:
        """The most requests that can be in flight at once, hence sockets to allow."""
        return self.concurrency if self.concurrency is not None else self.max_in_flight
