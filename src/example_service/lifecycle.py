"""Readiness and the drain: what the probes report and when the service may stop."""

from __future__ import annotations

import asyncio
import enum

from example_service.asgi import ASGIApp, Receive, Scope, Send


class Phase(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"


class Lifecycle:
    """Tracks the phase and the requests in flight, so shutdown can wait for the last one."""

    def __init__(self) -> None:
        self.phase = Phase.STARTING
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
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


class TrackInFlight:
    """Pure ASGI middleware counting the requests in flight for the graceful shutdown."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self._app = app
        self._lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._lifecycle.request_started()
        try:
            await self._app(scope, receive, send)
        finally:
            self._lifecycle.request_finished()
