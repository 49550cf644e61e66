"""Watching the workload's workers (processes or threads) from a unit test, in the test's own
process."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess

from example_service.workload import INLINE_MAX, Workload

MakeWorkload = Callable[..., Workload]
# Just above the inline bound: a worker's, and done in milliseconds.
SMALL = INLINE_MAX + 1
# Well past any deadline here: fib(50) takes about 40 s compiled, hours in CPython.
RUNAWAY = 50


class NewChildren:
    """The child processes started after this was made, as they are when called."""

    def __init__(self) -> None:
        self._before = {process.pid for process in multiprocessing.active_children()}

    def __call__(self) -> list[BaseProcess]:
        return [p for p in multiprocessing.active_children() if p.pid not in self._before]

    def one(self) -> int:
        """The pid of the one worker started since."""
        [worker] = self()
        assert worker.pid is not None
        return worker.pid


def worker_threads() -> list[threading.Thread]:
    """The workload's worker threads alive in this process."""
    return [thread for thread in threading.enumerate() if thread.name.startswith("fib-worker-")]


def cpu_seconds(pid: int) -> float:
    """The CPU time a process or a thread (by its native id) has used: a worker that computes
    gains it, an idle one does not."""
    with open(f"/proc/{pid}/schedstat") as schedstat:
        return int(schedstat.read().split()[0]) / 1e9


async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """support.waiting.wait_for for a test whose event loop must go on running meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def first_worker(started: NewChildren) -> int:
    """Wait until the pool, started on its first computation, has its one worker."""
    await until(lambda: len(started()) == 1, "the pool's worker to start")
    return started.one()


async def next_worker(started: NewChildren, replaced: int) -> int:
    """Wait until a worker other than replaced has started: the new pool's."""
    await until(
        lambda: any(p.pid != replaced for p in started()), f"a worker to replace {replaced}"
    )
    [worker] = [p.pid for p in started() if p.pid != replaced]
    assert worker is not None
    return worker


async def until_idle(pid: int) -> None:
    """Wait until the worker has stopped using CPU: a tenth of a second without gaining any."""

    async def idle() -> bool:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.1)
        return cpu_seconds(pid) - before < 0.01

    deadline = time.monotonic() + 10
    while not await idle():
        if time.monotonic() > deadline:
            raise AssertionError(f"worker {pid} still computing after 10 s")


async def kill_both_pools_mid_computation(started: NewChildren) -> None:
    """Kill the first pool's worker once it computes, then the worker of the pool that
    replaced it once that one computes: the computation's retry is lost too."""
    first = await first_worker(started)
    await until_computing(first)
    os.kill(first, signal.SIGKILL)
    second = await next_worker(started, first)
    await until_computing(second)
    os.kill(second, signal.SIGKILL)


async def until_computing(pid: int) -> None:
    """Wait until the worker has taken a computation up: it has used a tenth of a second."""
    idle = cpu_seconds(pid)
    await until(lambda: cpu_seconds(pid) > idle + 0.1, f"worker {pid} to be computing")
