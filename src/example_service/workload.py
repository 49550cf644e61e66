"""The lab's Fibonacci workload, and where each computation runs.

Cheap computations run inline on the event loop: handing them to a worker costs more than
computing them. Expensive ones go to workers, so the event loop keeps answering probes and
scrapes, and a pod uses every core it is given: threads when fib is compiled (it releases
the GIL, example_service.worker_threads), processes when it runs in Python (the fallback
without a C compiler), which cannot compute in parallel in threads. Each computation carries
a deadline that the worker itself enforces, so a runaway request stops burning CPU.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING

from example_service.fibonacci import IMPLEMENTATION, fib

if TYPE_CHECKING:
    from example_service.worker_threads import WorkerThreads

log = logging.getLogger(__name__)

# Inline while fib(n) costs less than handing it to a worker and back (docs/design.md).
# Compiled, to a thread: 40-90 us of CPU per request in the service under load on one core
# (27 us in bench/handoff_cost.py alone), and fib(21) takes 35-45 us, fib(22) 60-75 us. In
# Python (the fallback), to a process: about 0.35 ms, and fib(18) takes 0.25 ms, fib(19)
# 0.42 ms.
INLINE_MAX = 21 if IMPLEMENTATION == "compiled" else 18
# Below the event loop, so a probe or a scrape gets a core soon even with every core computing,
# but not so far below that the loop pre-empts a worker at each wake-up. Measured on one core
# (docs/performance.md): at 10, NUM=25 cost 582 us of CPU a request, and 64 clients retrying
# their refusals at once left the worker about 30 fib(30) a second; at 5, 501 us and 62 a
# second; at 0, 497 us and 117, but /healthz p99 then came within 4 ms of its 20 ms bound.
WORKER_NICENESS = 5
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def default_workers(cpu_quota: float | None) -> int:
    """The CPUs the container may use: the smaller of its CPU quota rounded up (None when it
    has none) and the CPUs this process may run on.

    A pod limited to 1.5 cores gets 2 workers: the quota is enforced over each period, and a
    second worker uses the half core that a single one would leave idle.
    """
    affinity = len(os.sched_getaffinity(0))
    if cpu_quota is None:
        return affinity
    return max(1, min(affinity, math.ceil(cpu_quota)))


class DeadlineExceeded(Exception):
    """The computation did not finish before the request's deadline."""

    def __init__(self, n: int, timeout: float) -> None:
        super().__init__(f"computation of fib({n}) exceeded the {timeout:g} s request deadline")
        self.n = n


class Overloaded(Exception):
    """Every worker is busy and as many computations wait as the queue may hold."""


class WorkloadUnavailable(Exception):
    """The workers are gone: worker processes killed from outside (out of memory), or the
    workload closed at shutdown."""

    def __init__(self) -> None:
        super().__init__("workers unavailable, retry shortly")


def _raise_timeout(signum: int, frame: FrameType | None) -> None:
    # A built-in exception: it crosses back from the worker as itself, where one of ours with
    # arguments would not survive pickling.
    raise TimeoutError


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to kill this worker when the service dies, even by SIGKILL."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the service died before the request above took effect
        os._exit(1)


def _init_worker(parent: int) -> None:
    _die_with_parent(parent)
    # Below the event loop's priority, so the loop gets a core as soon as a probe or a scrape
    # arrives, even with every core busy computing. Raising niceness needs no privilege.
    os.nice(WORKER_NICENESS)
    # The worker ignores the signals meant for the service: shutdown is the parent's to run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _raise_timeout)


def _fib_until(n: int, deadline: float) -> int:
    """Runs in a worker: CLOCK_MONOTONIC is shared by every process of the machine."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    signal.setitimer(signal.ITIMER_REAL, remaining)
    try:
        return fib(n)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


class Workload:
    """Computes fib(n) for one n within a deadline, inline or in a pool of workers: threads
    when fib is compiled, else processes (`threads` chooses otherwise, for the tests of the
    process pool)."""

    def __init__(
        self,
        n: int,
        workers: int,
        timeout: float,
        queue_per_worker: int,
        *,
        threads: bool = IMPLEMENTATION == "compiled",
    ) -> None:
        self._n = n
        self._workers = workers
        self._timeout = timeout
        # Computations in the pool at once: one running on each worker, the rest waiting.
        self._capacity = workers * (1 + queue_per_worker)
        self._admitted = 0
        # Decided once: n is the same for every request.
        self.inline = n <= INLINE_MAX
        self._threads = threads
        self._worker_threads: WorkerThreads | None = None
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    @property
    def workers(self) -> int:
        return self._workers

    def _executor(self) -> ProcessPoolExecutor:
        # Created on first use: a service whose NUM stays small never starts a process.
        # spawn, not fork: forking a process whose server threads hold locks can hang; and
        # not forkserver: its workers are the fork server's children, which outlive a
        # service killed with SIGKILL.
        if self._closed:
            raise WorkloadUnavailable
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(os.getpid(),),
            )
        return self._pool

    def compute_inline(self) -> int:
        """fib(n) on the event loop, for a workload whose n runs inline (see INLINE_MAX)."""
        return fib(self._n)

    async def compute(self) -> int:
        """fib(n) in a worker, for a workload whose n does not run inline.

        Raises Overloaded at once, without waiting, when the pool holds its capacity: a
        computation admitted past it would only wait behind the others, and its client
        longest exactly when the service is overloaded.
        """
        if self._admitted >= self._capacity:
            raise Overloaded
        self._admitted += 1
        deadline = time.monotonic() + self._timeout
        try:
            if self._threads:
                return await self._in_threads(deadline)
            return await self._in_processes(deadline)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            # Not this request's cancellation: the pool, closed at shutdown, gave up the
            # computation. A request abandoned then gets the same clear 503 as one whose
            # worker was stopped mid-computation, not a 500.
            raise WorkloadUnavailable from None
        finally:
            self._admitted -= 1

    async def _in_threads(self, deadline: float) -> int:
        if self._closed:
            raise WorkloadUnavailable
        if self._worker_threads is None:
            # Started on first use, as the processes are; only this build has the module.
            from example_service.worker_threads import WorkerThreads

            self._worker_threads = WorkerThreads(
                self._n, self._workers, WORKER_NICENESS, self._capacity
            )
        try:
            return await self._worker_threads.compute(deadline)
        except TimeoutError:
            raise DeadlineExceeded(self._n, self._timeout) from None

    async def _in_processes(self, deadline: float) -> int:
        """A computation lost to a worker that died (the OOM killer, kill -9) runs once more
        on a new pool, within the same deadline: fib is idempotent, and the fault is not the
        client's."""
        try:
            return await self._attempt(deadline)
        except BrokenProcessPool:
            pass
        try:
            return await self._attempt(deadline)
        except BrokenProcessPool:
            raise WorkloadUnavailable from None

    async def _attempt(self, deadline: float) -> int:
        pool = self._executor()
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(pool, _fib_until, self._n, deadline)
            # The worker's own timer fires first; this outer bound only covers a worker that
            # cannot run its signal handler.
            return await asyncio.wait_for(future, deadline - time.monotonic() + 1.0)
        except TimeoutError:
            raise DeadlineExceeded(self._n, self._timeout) from None
        except BrokenProcessPool:
            self._retire(pool)
            raise

    def _retire(self, pool: ProcessPoolExecutor) -> None:
        """Replace a broken pool, once: every computation it held fails with the same breakage,
        and by the time the later ones see it, a new pool may already be serving."""
        if self._pool is not pool:
            return
        self._pool = None
        processes = _processes(pool)
        # The sentinel says a process has ended without reaping it, which the executor's
        # thread may be doing at this moment: its exit code would race with that.
        dead = [pid for pid, process in processes.items() if wait([process.sentinel], 0)]
        log.error(
            "worker pool broke: a worker process died; its computations run once more "
            "on a new pool",
            extra={"dead_workers": dead},
        )
        _kill(processes)
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers now: in-flight computations have had their shutdown timeout."""
        self._closed = True
        if self._worker_threads is not None:
            self._worker_threads.close()
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        _kill(_processes(pool))
        pool.shutdown(wait=True, cancel_futures=True)


def _processes(pool: ProcessPoolExecutor) -> dict[int, BaseProcess]:
    # Python 3.11 has no public way to reach a pool's workers (3.14 adds terminate_workers);
    # the executor's process table is the only handle on them.
    return dict(getattr(pool, "_processes", None) or {})


def _kill(processes: dict[int, BaseProcess]) -> None:
    """SIGKILL, not the executor's own terminate(): the workers ignore SIGTERM (it is the
    service's), and a survivor of a broken pool may wait forever on a queue lock its dead
    sibling held, while the executor's thread, which the interpreter joins at exit, waits
    for it."""
    for process in processes.values():
        process.kill()
