"""The live progress bar: how far the run is, its current rate, errors and latency."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from example_service.load.histogram import LatencyHistogram
from example_service.load.runner import LoadRun
from example_service.load.stats import LatencyFigures
from example_service.load.summary import format_seconds

REFRESH_SECONDS = 0.5
# Long enough to hold several refreshes' worth of answers at low rates, short enough for
# the figures to follow a change of the target's behaviour within a couple of seconds.
WINDOW_SECONDS = 2.0


@dataclass(frozen=True)
class _Mark:
    at: float
    finished: int
    failed: int
    latency: LatencyHistogram  # a copy of the run's histogram then


class ProgressDisplay:
    """Redrawn by the event loop itself (no refresh thread), so it reads the recorder
    between requests and never in the middle of one's bookkeeping.

    It costs a redraw and a histogram copy per refresh, whatever the request rate: the
    recent latency is the difference between the run's histogram now and a copy taken
    WINDOW_SECONDS ago.
    """

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            auto_refresh=False,
        )
        self._task: TaskID = self._progress.add_task("load", total=1.0, status="")
        self._marks: deque[_Mark] = deque()
        # What drawing has cost the event loop's thread, which the summary reports.
        self.cpu_seconds = 0.0

    def _fraction(self, run: LoadRun) -> float:
        limits, fractions = run.plan.limits, []
        if limits.count is not None:
            fractions.append(run.recorder.finished / limits.count)
        if limits.duration is not None:
            fractions.append(run.elapsed / limits.duration)
        return min(1.0, max(fractions))

    def _status(self, run: LoadRun) -> str:
        recorder, now = run.recorder, time.monotonic()
        mark = _Mark(now, recorder.finished, recorder.failed, recorder.latency.copy())
        self._marks.append(mark)
        while now - self._marks[0].at > WINDOW_SECONDS:
            self._marks.popleft()
        first = self._marks[0]
        span = now - first.at
        rate = (mark.finished - first.finished) / span if span > 0 else 0.0
        latency = LatencyFigures.of(mark.latency.since(first.latency), (0.5, 0.99))
        p50, p99 = latency.quantiles[0.5], latency.quantiles[0.99]
        state = ""
        if run.done:
            state = f"  stopped by {run.stopped_by}"
        elif run.draining:
            state = "  [yellow]stopping: waiting for the answers in flight[/]"
        return (
            f"{recorder.sent} sent  {rate:7.1f} req/s  "
            f"errors {recorder.failed} ({mark.failed - first.failed} recent)  "
            f"p50 {format_seconds(p50)}  p99 {format_seconds(p99)}  "
            f"in flight {recorder.in_flight}{state}"
        )

    def update(self, run: LoadRun) -> None:
        began = time.thread_time()
        self._progress.update(self._task, completed=self._fraction(run), status=self._status(run))
        self._progress.refresh()
        self.cpu_seconds += time.thread_time() - began

    async def follow(self, run: LoadRun) -> None:
        """Redraw until cancelled; the caller cancels it when the run is over."""
        with self._progress:
            try:
                while True:
                    self.update(run)
                    await asyncio.sleep(REFRESH_SECONDS)
            finally:
                self.update(run)  # the final state stays on screen
