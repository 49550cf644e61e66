"""Watching the workload's worker threads from a unit test, in the test's own process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from example_service.workload.admission import INLINE_MAX, Workload
from example_service.workload.threads import WorkerThreads

MakeWorkload = Callable[..., Workload]
# Just above the inline bound: a worker's, and done in milliseconds.
SMALL = INLINE_MAX + 1
# Well past any deadline here: fib(50) takes about 40 s compiled, hours in CPython.
RUNAWAY = 50


class Fatal(BaseException):
    """What ends a thread rather than answering one computation: not an Exception."""


def first_thread_dies(patch: pytest.MonkeyPatch) -> None:
    """The first worker thread started from now on ends as it starts, before it takes a
    computation; the ones after it start as usual."""
    real = WorkerThreads._lower_priority
    started = []

    def lower_priority_or_die(threads: WorkerThreads) -> None:
        started.append(threads)
        if len(started) == 1:
            raise Fatal
        real(threads)

    patch.setattr(WorkerThreads, "_lower_priority", lower_priority_or_die)


def worker_threads() -> list[threading.Thread]:
    """The workload's worker threads alive in this process."""
    return [thread for thread in threading.enumerate() if thread.name.startswith("fib-worker-")]


def cpu_seconds(thread: int) -> float:
    """The CPU time a thread (by its native id) has used: a worker that computes gains it, an
    idle one does not."""
    with open(f"/proc/self/task/{thread}/schedstat") as schedstat:
        return int(schedstat.read().split()[0]) / 1e9


async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """support.waiting.wait_for for a test whose event loop must go on running meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def computing_thread() -> int:
    """The native id of the one worker thread, once it computes."""
    await until(lambda: len(worker_threads()) == 1, "the worker thread to start")
    worker = worker_threads()[0].native_id
    assert worker is not None
    idle = cpu_seconds(worker)
    await until(lambda: cpu_seconds(worker) > idle + 0.1, f"thread {worker} to be computing")
    return worker


async def until_idle(thread: int) -> None:
    """Wait until the thread has stopped using CPU: a tenth of a second without gaining any."""

    async def idle() -> bool:
        before = cpu_seconds(thread)
        await asyncio.sleep(0.1)
        return cpu_seconds(thread) - before < 0.01

    deadline = time.monotonic() + 10
    while not await idle():
        if time.monotonic() > deadline:
            raise AssertionError(f"thread {thread} still computing after 10 s")
