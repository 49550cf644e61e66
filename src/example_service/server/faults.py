"""Fault injection for /abc, off by default: to show the error-ratio and latency alerts fire.

Only /abc is ever affected: probes and scrapes stay truthful, so a demonstration of "the
service is failing" does not also restart pods or hide the metrics that show it.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass

_DELAY_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
MAX_LATENCY_MS = 600_000


@dataclass(frozen=True)
class DelayRange:
    """Added delay in milliseconds: fixed (low == high) or uniform within [low, high]."""

    low: int = 0
    high: int = 0

    @classmethod
    def parse(cls, text: str) -> DelayRange:
        """ "250" is a fixed 250 ms; "100-900" a uniform draw between 100 and 900 ms."""
        match = _DELAY_RANGE.fullmatch(text)
        if match is None:
            raise ValueError
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low or high > MAX_LATENCY_MS:
            raise ValueError
        return cls(low, high)

    def __str__(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class Faults:
    error_ratio: float = 0.0
    latency: DelayRange = DelayRange()

    @property
    def enabled(self) -> bool:
        return self.error_ratio > 0 or self.latency.high > 0

    async def delay(self) -> None:
        if self.latency.high > 0:
            await asyncio.sleep(random.uniform(self.latency.low, self.latency.high) / 1000)  # noqa: S311

    def should_fail(self) -> bool:
        return self.error_ratio > 0 and random.random() < self.error_ratio  # noqa: S311
