"""The request loop: paced (open loop) or with a fixed number of workers (closed loop)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass
from enum import StrEnum

import httpx

from example_service import __version__
from example_service.load.limits import Limits, Pacing
from example_service.load.stats import Outcome, Recorder


class StopReason(StrEnum):
    COUNT = "count"
    DURATION = "duration"
    INTERRUPT = "interrupt"


@dataclass(frozen=True)
class Plan:
    """A checked run: its targets have passed the loopback rule, its limits are finite."""

    urls: tuple[str, ...]
    limits: Limits
    pacing: Pacing
    timeout: float


@dataclass(frozen=True)
class Times:
    started_at: float  # Unix time, for the pushed timestamp
    finished_at: float
    elapsed: float  # monotonic seconds from the first request to the last answer
    stopped_by: StopReason


def _client(plan: Plan) -> httpx.AsyncClient:
    connections = plan.pacing.connections
    return httpx.AsyncClient(
        timeout=httpx.Timeout(plan.timeout),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        # Proxy variables from the environment would send loopback traffic elsewhere, and a
        # redirect could leave loopback: both would defeat the check the targets passed.
        trust_env=False,
        follow_redirects=False,
        headers={"User-Agent": f"example-service-load/{__version__}"},
    )


class LoadRun:
    """One run of a plan, recording into a Recorder; interrupt() stops it from a signal."""

    def __init__(self, plan: Plan, recorder: Recorder) -> None:
        self.plan = plan
        self.recorder = recorder
        self.stopped_by: StopReason | None = None
        self.done = False
        self._interrupts = 0
        self._start = 0.0
        self._end = 0.0
        self._urls = itertools.cycle(plan.urls)
        self._tasks: set[asyncio.Task[None]] = set()
        # Wakes the pacer when the run stops or a request finishes (a slot frees up).
        self._wake = asyncio.Event()

    @property
    def elapsed(self) -> float:
        """Seconds since the first request; frozen once the last answer is in."""
        if not self._start:
            return 0.0
        return (self._end or time.monotonic()) - self._start

    @property
    def draining(self) -> bool:
        """No new requests start; those in flight are being waited for."""
        return self.stopped_by is not None

    def interrupt(self) -> None:
        """First call: send nothing more and let the requests in flight answer (each is
        bounded by the timeout). Second call: abandon them too, counted as cancelled."""
        self._interrupts += 1
        if self.stopped_by is None:
            self.stopped_by = StopReason.INTERRUPT
        self._wake.set()
        if self._interrupts > 1:
            for task in self._tasks:
                task.cancel()

    def _stop(self, reason: StopReason) -> None:
        if self.stopped_by is None:
            self.stopped_by = reason
        self._wake.set()

    def _limit_reached(self) -> bool:
        """Whether the run must stop starting requests; records why the first time."""
        if self.stopped_by is not None:
            return True
        limits = self.plan.limits
        if limits.count is not None and self.recorder.sent >= limits.count:
            self._stop(StopReason.COUNT)
        elif limits.duration is not None and self.elapsed >= limits.duration:
            self._stop(StopReason.DURATION)
        return self.stopped_by is not None

    def _permit(self) -> str | None:
        """The URL for the next request, or None once a limit is reached or the run stops."""
        return None if self._limit_reached() else next(self._urls)

    async def _request(self, client: httpx.AsyncClient, url: str) -> None:
        self.recorder.started(url)
        began = time.perf_counter()
        try:
            # httpx's timeouts bound each phase (connect, each read); this bounds the whole.
            async with asyncio.timeout(self.plan.timeout):
                response = await client.get(url)
        except (httpx.TimeoutException, TimeoutError):
            self.recorder.failed_with(Outcome.TIMEOUT)
        except httpx.NetworkError:
            self.recorder.failed_with(Outcome.CONNECTION_ERROR)
        except httpx.ProtocolError:
            self.recorder.failed_with(Outcome.PROTOCOL_ERROR)
        except (httpx.HTTPError, OSError):
            self.recorder.failed_with(Outcome.OTHER_ERROR)
        except asyncio.CancelledError:
            self.recorder.failed_with(Outcome.CANCELLED)
            raise
        else:
            self.recorder.answered(url, response.status_code, time.perf_counter() - began)
        finally:
            self._wake.set()

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _worker(self, client: httpx.AsyncClient) -> None:
        while (url := self._permit()) is not None:
            await self._request(client, url)

    def _until_deadline(self) -> float | None:
        duration = self.plan.limits.duration
        return None if duration is None else max(0.0, duration - self.elapsed)

    async def _nap(self, seconds: float | None) -> None:
        """Until a request finishes, the run stops, or seconds pass (None: no time limit)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _pace(self, client: httpx.AsyncClient, rate: float) -> None:
        """Start request i at i/rate seconds, whether or not earlier ones have answered.

        Requests that fall behind schedule (a stalled loop) start at once to catch up, so
        the rate holds on average, as independent users' requests would not wait either.
        """
        issued = 0
        while not self._limit_reached():
            self._wake.clear()
            deadline = self._until_deadline()
            if self.recorder.in_flight >= self.plan.pacing.max_in_flight:
                # A slow target would otherwise make the backlog, and the sockets, grow
                # without bound; the achieved rate then shows the shortfall.
                await self._nap(deadline)
                continue
            wait = issued / rate - self.elapsed
            if wait > 0:
                await self._nap(wait if deadline is None else min(wait, deadline))
                continue
            url = self._permit()
            if url is not None:
                issued += 1
                self._track(asyncio.create_task(self._request(client, url)))

    async def run(self) -> Times:
        started_at = time.time()
        self._start = time.monotonic()
        async with _client(self.plan) as client:
            if self.plan.pacing.rate is not None:
                self._track(asyncio.create_task(self._pace(client, self.plan.pacing.rate)))
            else:
                for _ in range(self.plan.pacing.connections):
                    self._track(asyncio.create_task(self._worker(client)))
            # Request tasks are added while the pacer runs: wait until none is left.
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            self._end = time.monotonic()
        self.done = True
        # Every way out of the loops sets stopped_by; INTERRUPT covers a cancelled pacer.
        return Times(started_at, time.time(), self.elapsed, self.stopped_by or StopReason.INTERRUPT)
