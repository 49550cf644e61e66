"""Readiness and the drain: what the probes report and when the service may stop."""

from __future__ import annotations

import asyncio
import enum


class Phase(enum.Enum):
    SERVING = "serving"
    DRAINING = "draining"


class Lifecycle:
    """Tracks the phase and the requests in flight, so shutdown can wait for the last one.

    There is no "starting" phase: granian runs the service's start-up hook before it takes
    a connection, so every request the service ever sees meets it serving, and /readyz
    is ready from its first answer until the drain.
    """

    def __init__(self) -> None:
        self.phase = Phase.SERVING
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def ready(self) -> bool:
        return self.phase is Phase.SERVING

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def request_started(self) -> None:
        self._in_flight += 1
        self._idle.clear()

    def request_finished(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """True when no request is in flight before the timeout."""
        # Checked first: wait_for with a timeout of 0 gives up before the event is looked at.
        if self._idle.is_set():
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True
