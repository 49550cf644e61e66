"""The workload's worker threads: plain Python threads fed by a standard queue.

A computation is put on a queue.SimpleQueue with its deadline and its future; a thread takes
it, runs fib_until (compiled, it releases the GIL while it computes, so the threads compute in
parallel on every core) and hands the outcome back with loop.call_soon_threadsafe. Of the
standard hand-offs this is the cheaper one: bench/handoff_cost.py measures it beside
loop.run_in_executor (docs/design.md, "Under load").

Whatever a thread meets, its computation is answered: a value, the exception fib_until
raised, or WorkerDied when the thread itself ends; and the caller waits no longer than the
deadline plus MARGIN in any case. A thread that dies is replaced, logged and counted. A thread
that cannot be started (a pids limit) leaves nothing behind and is tried again at most every
RETRY_INTERVAL; until one runs, compute() raises NoWorkerThread at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from queue import SimpleQueue

from example_service.workload.fibonacci import Stop, fib_until

log = logging.getLogger(__name__)

# How much longer than its deadline a caller waits for an answer: fib_until stops within a
# check interval of it (far less than this), so only a thread that cannot answer at all
# (none is known) ever reaches this.
MARGIN = 1.0
# How often starting a missing thread is tried again after the system refused one.
RETRY_INTERVAL = 1.0
# How long close() waits for each thread: a stopped fib_until returns within a check interval.
JOIN_TIMEOUT = 1.0

Compute = Callable[[int, float, Stop], int]


class NoWorkerThread(Exception):
    """No worker thread runs, and none could be started."""


class WorkerDied(Exception):
    """The thread computing this computation ended before it could answer."""


def _expire(future: asyncio.Future[int]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class _Job:
    __slots__ = ("deadline", "future")

    def __init__(self, future: asyncio.Future[int], deadline: float) -> None:
        self.future = future
        self.deadline = deadline


class WorkerThreads:
    """`count` threads computing fib(n), each computation within its deadline, started on the
    first compute() (a service whose NUM stays small never starts one).

    `outstanding` counts the computations queued or computing: one whose caller gave up
    counts until its thread has answered it. `on_answer`, when set, is given for each
    computation answered with its value the seconds of work it stood for, for the caller to
    estimate the wait of the next.
    """

    def __init__(self, n: int, count: int, niceness: int, compute: Compute = fib_until) -> None:
        self._n = n
        self._count = count
        self._niceness = niceness
        self._compute = compute
        self._jobs: SimpleQueue[_Job | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._names = itertools.count()
        self._stop = Stop()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retry_at = 0.0
        self._refused = False
        # Taken by threads, to warn once of a niceness they could not set.
        self._warn_lock = threading.Lock()
        self._priority_warned = False
        self._closed = False
        self.outstanding = 0
        self.died = 0
        self.on_answer: Callable[[float], None] | None = None
        self._busy = False
        self._answered_at = 0.0

    @property
    def running(self) -> int:
        return len(self._threads)

    async def compute(self, deadline: float) -> int:
        """fib(n) by deadline (a time.monotonic() time): TimeoutError past it, Stopped once
        closed, WorkerDied or NoWorkerThread when no thread could compute it, and any other
        exception fib_until raised."""
        if self._closed:
            raise NoWorkerThread
        # Before any thread starts: one that dies at once tells this loop.
        loop = self._loop = asyncio.get_running_loop()
        self._start_missing()
        if not self._threads:
            raise NoWorkerThread
        future: asyncio.Future[int] = loop.create_future()
        self.outstanding += 1
        self._jobs.put(_Job(future, deadline))
        # A timer handle rather than asyncio.timeout(), which costs several times as much.
        bound = loop.call_later(deadline - time.monotonic() + MARGIN, _expire, future)
        try:
            return await future
        finally:
            bound.cancel()

    def _start_missing(self) -> None:
        if len(self._threads) >= self._count or time.monotonic() < self._retry_at:
            return
        while len(self._threads) < self._count:
            # Daemons: should the service end without closing its workload (an unexpected
            # error), threads waiting for work must not hold up the interpreter's exit.
            thread = threading.Thread(
                target=self._serve, name=f"fib-worker-{next(self._names)}", daemon=True
            )
            try:
                thread.start()
            except RuntimeError as error:  # "can't start new thread": EAGAIN from clone
                self._retry_at = time.monotonic() + RETRY_INTERVAL
                if not self._refused:
                    self._refused = True
                    log.warning(
                        "cannot start a worker thread; trying again at most every second",
                        extra={"error": str(error), "running": len(self._threads)},
                    )
                return
            self._threads.append(thread)
        if self._refused:
            self._refused = False
            log.info("worker threads started", extra={"running": len(self._threads)})

    def _serve(self) -> None:
        job = None
        try:
            self._lower_priority()
            while (job := self._jobs.get()) is not None:
                started = time.perf_counter()
                try:
                    outcome: int | BaseException = self._compute(self._n, job.deadline, self._stop)
                except Exception as error:
                    outcome = error
                self._answer(job, outcome, time.perf_counter() - started)
                job = None
        except BaseException as error:
            self._call_loop(job, self._died, threading.current_thread(), job, error)

    def _lower_priority(self) -> None:
        # Linux keeps a niceness per thread: this one computes below the event loop's
        # priority, so the loop gets a core as soon as a probe or a scrape arrives. A sandbox
        # may refuse it (seccomp): the thread computes at the loop's priority then.
        thread = threading.get_native_id()
        try:
            niceness = os.getpriority(os.PRIO_PROCESS, thread) + self._niceness
            os.setpriority(os.PRIO_PROCESS, thread, niceness)
        except OSError as error:
            with self._warn_lock:
                warned, self._priority_warned = self._priority_warned, True
            if not warned:
                log.warning(
                    "cannot lower the worker threads' priority: they compute at the event "
                    "loop's, and probes may wait behind them",
                    extra={"error": str(error)},
                )

    def _answer(self, job: _Job, outcome: int | BaseException, seconds: float) -> None:
        self._call_loop(job, self._settle, job, outcome, seconds)

    def _call_loop(self, job: _Job | None, callback: Callable[..., None], *args: object) -> None:
        loop = job.future.get_loop() if job is not None else self._loop
        if loop is None:
            return
        # RuntimeError: the loop is closed, and nobody waits for the answer any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, *args)

    def _settle(self, job: _Job, outcome: int | BaseException, seconds: float) -> None:
        now = time.perf_counter()
        busy = self._busy
        self.outstanding -= 1
        # Work is only added between answers: every thread busy now stays busy until the next.
        self._busy = self.outstanding >= self._count
        since, self._answered_at = self._answered_at, now
        future = job.future
        # A future whose caller gave up waiting is already cancelled.
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
            return
        future.set_result(outcome)
        if self.on_answer is not None:
            # Every thread busy since the last answer: the pace at which answers come, which
            # counts what the computation alone does not (taking the GIL to take the job
            # and to answer, the loop's share of the core). Else the computation's own time.
            self.on_answer((now - since) * self._count if busy else seconds)

    def _died(self, thread: threading.Thread, job: _Job | None, error: BaseException) -> None:
        self.died += 1
        self._threads.remove(thread)
        if job is not None:
            self._settle(job, WorkerDied(f"worker thread {thread.name} died"), 0.0)
        if not self._closed:
            self._retry_at = 0.0
            self._start_missing()
        log.error(
            "worker thread died; a new one replaces it",
            exc_info=error,
            extra={"worker": thread.name},
        )

    def close(self) -> None:
        """Stop every computation within a check interval, answer the queued ones Stopped and end
        the threads. On the event loop's thread, or once the loop has closed."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join(JOIN_TIMEOUT)
        # What no thread took (every thread had died): answered here.
        while not self._jobs.empty():
            job = self._jobs.get()
            if job is not None and not job.future.get_loop().is_closed():
                self._settle(job, NoWorkerThread(), 0.0)
