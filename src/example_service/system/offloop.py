"""Reads taken off the event loop, each within a time budget.

A file in sysfs, procfs or the cgroup tree can block: a FIFO nobody writes, a sensor behind a
hung bus, a hung NFS mount under a configured root. Read on the event loop, it would stall
every request, /healthz included. So the reads run in a thread, and the loop only waits for
their results, never longer than the budget of the read in progress.

The reads run one after the other in one thread: threads taking turns at the GIL for each
small file cost more than the reads themselves. A read past its budget is given up for: its
thread is left to it, and the reads after it go on in another thread. Until it returns, it is
not started again: the caller hears at once that it has no result. So a blocked file holds
one thread, never more, however many calls follow.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Long enough for the slowest real sensors (an ACPI or I2C read takes milliseconds), short
# enough that a scrape with a blocked source still answers well inside Prometheus's default
# 10 s scrape timeout.
BUDGET_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Missed:
    """A read that gave no result in time, and why."""

    why: str


class _Job:
    """Reads done in order by one thread. progress is (the read in progress, when it began);
    the thread sets it, and the loop gives the job up, under the lock: once given up, the
    thread starts no other read of it, so no reader is ever read by two threads at once."""

    __slots__ = ("abandoned", "done", "lock", "progress", "reads", "results")

    def __init__(self, reads: list[Callable[[], object]], done: asyncio.Future[None]) -> None:
        self.reads = reads
        self.done = done
        self.results: list[object] = []
        self.lock = threading.Lock()
        self.progress = (0, time.monotonic())
        self.abandoned = False

    def give_up(self, index: int) -> bool:
        """Abandons the job if read index is still the one in progress."""
        with self.lock:
            if self.progress[0] != index:
                return False
            self.abandoned = True
            return True


class OffLoop:
    """A fixed list of reads, run off the event loop whenever run() is awaited.

    Its bookkeeping is the event loop's: run() and the end of each job run there only. The
    threads are daemons, so that a read blocked forever does not keep a stopping process
    alive; they are started as needed (none before the first run), at most one per blocked
    read plus one."""

    def __init__(self, name: str, reads: Sequence[Callable[[], object]]) -> None:
        self._name = name
        self._reads = tuple(reads)
        self._jobs: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, _Job]] = queue.SimpleQueue()
        self._threads = 0
        self._unfinished = 0
        self._blocked: dict[int, _Job] = {}
        self._running: asyncio.Future[list[object]] | None = None

    async def run(self, budget: float = BUDGET_SECONDS) -> list[object]:
        """Each read's result, in order: what it returned, the exception it raised, or Missed.

        Callers at the same moment share one run: it began no earlier than their request."""
        if self._running is None:
            self._running = asyncio.ensure_future(self._run(budget))
        return await asyncio.shield(self._running)

    async def _run(self, budget: float) -> list[object]:
        try:
            results: list[object] = [None] * len(self._reads)
            todo = []
            for index in range(len(self._reads)):
                if index in self._blocked:
                    results[index] = Missed(f"a read from before has not returned in {budget:g} s")
                else:
                    todo.append(index)
            while todo:
                job = self._submit([self._reads[index] for index in todo])
                stuck = await self._follow(job, budget)
                done = len(todo) if stuck is None else stuck
                for index, result in zip(todo[:done], job.results, strict=False):
                    results[index] = result
                if stuck is None:
                    break
                self._blocked[todo[stuck]] = job
                results[todo[stuck]] = Missed(f"no reading within {budget:g} s")
                todo = todo[stuck + 1 :]
            return results
        finally:
            self._running = None

    def _submit(self, reads: list[Callable[[], object]]) -> _Job:
        loop = asyncio.get_running_loop()
        job = _Job(reads, loop.create_future())
        self._unfinished += 1
        if self._unfinished > self._threads:
            self._threads += 1
            threading.Thread(
                target=self._work, name=f"read-{self._name}-{self._threads}", daemon=True
            ).start()
        self._jobs.put((loop, job))
        return job

    async def _follow(self, job: _Job, budget: float) -> int | None:
        """Waits until the job is done (None) or its read in progress is past budget: then
        the job is given up, and that read's index returned."""
        while True:
            index, since = job.progress
            remaining = since + budget - time.monotonic()
            if remaining <= 0 and index < len(job.reads) and job.give_up(index):
                return index
            # Every read done: the thread is about to say so.
            timeout = None if index == len(job.reads) else max(remaining, 0)
            finished, _ = await asyncio.wait({job.done}, timeout=timeout)
            if finished:
                return None

    def _work(self) -> None:
        while True:
            loop, job = self._jobs.get()
            for index, read in enumerate(job.reads):
                with job.lock:
                    if job.abandoned:
                        break
                    job.progress = (index, time.monotonic())
                try:
                    result = read()
                except Exception as error:  # a reader's bug: the caller raises it
                    result = error
                job.results.append(result)
            else:
                with job.lock:
                    if not job.abandoned:
                        job.progress = (len(job.reads), time.monotonic())
            try:
                loop.call_soon_threadsafe(self._finished, job)
            except RuntimeError:  # the loop is closed: the service has stopped
                return

    def _finished(self, job: _Job) -> None:
        self._unfinished -= 1
        for index in [index for index, blocked in self._blocked.items() if blocked is job]:
            del self._blocked[index]
        job.done.set_result(None)
