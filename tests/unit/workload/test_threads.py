"""The workload's worker threads, real ones: one or two of them, fast computations, short
deadlines.

What the real process adds (a sandbox refusing niceness, a pids limit refusing threads) is in
tests/integration/test_worker_faults.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Iterator

import pytest
from support.workers import num_lasting
from support.workload import (
    RUNAWAY,
    SMALL,
    Fatal,
    MakeWorkload,
    computing_thread,
    cpu_seconds,
    first_thread_dies,
    until,
    until_idle,
    worker_threads,
)

from example_service.workload import threads as threads_module
from example_service.workload.admission import (
    WORKER_NICENESS,
    DeadlineExceeded,
    WorkloadUnavailable,
)
from example_service.workload.fibonacci import (
    IMPLEMENTATION,
    Stop,
    fib,
    fib_until,
    interpreted_fib_until,
)
from example_service.workload.threads import MARGIN, NoWorkerThread, WorkerThreads

DIED = "worker thread died; a new one replaces it"

compiled_only = pytest.mark.skipif(
    IMPLEMENTATION != "compiled", reason="computing without the GIL needs the compiled fib"
)


@pytest.fixture
def made_threads() -> Iterator[list[WorkerThreads]]:
    made: list[WorkerThreads] = []
    yield made
    for made_one in made:
        made_one.close()


def test_larger_computations_run_in_lower_priority_threads(make_workload: MakeWorkload) -> None:
    workload = make_workload(SMALL, workers=2)
    assert asyncio.run(workload.compute()) == fib(SMALL)
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS)
    niceness = [os.getpriority(os.PRIO_PROCESS, t.native_id or 0) for t in worker_threads()]
    assert niceness == [expected, expected]


@compiled_only
def test_a_thread_computes_without_holding_the_gil(make_workload: MakeWorkload) -> None:
    workload = make_workload(num_lasting(1.0), workers=1, timeout=60)

    async def scenario() -> tuple[float, float]:
        """The longest the event loop went without running, and the CPU time the worker
        gained meanwhile."""
        computing = asyncio.create_task(workload.compute())
        worker = await computing_thread()
        computed, longest = cpu_seconds(worker), 0.0
        while not computing.done():
            before = time.monotonic()
            await asyncio.sleep(0.001)
            longest = max(longest, time.monotonic() - before)
        return longest, cpu_seconds(worker) - computed

    longest, computed = asyncio.run(scenario())
    # Were the GIL held, the loop would stall for the rest of the computation, at least as
    # long as the CPU time the thread gained meanwhile; released, for a few milliseconds.
    assert computed > 0.1
    assert longest < computed / 2, f"the loop stalled {longest:.3f} s of {computed:.3f} s"


@compiled_only
def test_threads_count_every_call_of_their_computations(
    made_threads: list[WorkerThreads],
) -> None:
    """Several threads at once, each computation's calls added to the module's total."""
    from example_service.workload._fibonacci import calls

    threads = WorkerThreads(SMALL, 2, 0)
    made_threads.append(threads)

    async def computations() -> list[int]:
        deadline = time.monotonic() + 10
        return list(await asyncio.gather(*(threads.compute(deadline) for _ in range(10))))

    value = fib(SMALL)  # counted too: before the count starts
    before = calls()
    assert asyncio.run(computations()) == [value] * 10
    assert calls() - before == 10 * (2 * value - 1)


def test_the_thread_stops_a_computation_at_its_deadline_and_is_free_after(
    make_workload: MakeWorkload,
) -> None:
    timeout = 0.2
    workload = make_workload(RUNAWAY, workers=1, timeout=timeout)

    async def deadline_exceeded() -> float:
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            await workload.compute()
        return time.monotonic() - start

    async def scenario() -> list[float]:
        took = [await deadline_exceeded()]
        [worker] = worker_threads()
        assert worker.native_id is not None
        await until_idle(worker.native_id)
        # The thread is free: the next computation starts at once, not behind fib(50).
        took.append(await deadline_exceeded())
        return took

    for took in asyncio.run(scenario()):
        assert timeout <= took < timeout + 0.5


def test_close_stops_the_threads_in_the_middle_of_a_computation(
    make_workload: MakeWorkload,
) -> None:
    workload = make_workload(RUNAWAY, workers=1)

    async def scenario() -> float:
        computing = asyncio.create_task(workload.compute())
        await computing_thread()
        start = time.monotonic()
        workload.close()
        closed = time.monotonic() - start
        with pytest.raises(WorkloadUnavailable):
            await asyncio.wait_for(computing, 5)
        return closed

    # At once, not when fib(50) or its 10 s deadline would have ended.
    assert asyncio.run(scenario()) < 0.5
    assert worker_threads() == []


def test_time_spent_waiting_for_a_worker_counts_against_the_deadline(
    made_threads: list[WorkerThreads],
) -> None:
    timeout = 1.0
    threads = WorkerThreads(RUNAWAY, 1, 0)
    made_threads.append(threads)

    async def scenario() -> tuple[list[BaseException | int], float]:
        start = time.monotonic()
        deadline = start + timeout
        results = await asyncio.gather(
            threads.compute(deadline), threads.compute(deadline), return_exceptions=True
        )
        return list(results), time.monotonic() - start

    results, took = asyncio.run(scenario())
    assert [type(result) for result in results] == [TimeoutError, TimeoutError]
    # The second was queued behind the first for its whole deadline: it is not run at all.
    assert took < 2 * timeout


def test_a_refused_niceness_is_warned_once_and_the_threads_compute(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a sandbox refusing setpriority does (tested for real under seccomp in
    tests/integration/test_worker_faults.py)."""

    def refused(which: int, who: int, priority: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "setpriority", refused)
    threads = WorkerThreads(SMALL, 2, WORKER_NICENESS)

    async def computations() -> list[int]:
        deadline = time.monotonic() + 10
        try:
            return list(await asyncio.gather(*(threads.compute(deadline) for _ in range(6))))
        finally:
            threads.close()

    assert asyncio.run(computations()) == [fib(SMALL)] * 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "cannot lower the worker threads' priority: they compute at the event loop's, "
        "and probes may wait behind them"
    ]


def test_a_thread_that_dies_answers_its_computation_and_is_replaced_once(
    made_threads: list[WorkerThreads], caplog: pytest.LogCaptureFixture
) -> None:
    """Twenty computations at once on one thread, which dies on the first: that one is
    answered, the nineteen others are computed by its replacement."""
    dying = threading.Event()

    def compute(n: int, deadline: float, stop: Stop) -> int:
        if not dying.is_set():
            dying.set()
            raise Fatal
        return fib(n)

    threads = WorkerThreads(SMALL, 1, 0, compute)
    made_threads.append(threads)

    async def computations() -> list[BaseException | int]:
        deadline = time.monotonic() + 10
        tasks = [threads.compute(deadline) for _ in range(20)]
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    results = asyncio.run(computations())
    assert type(results[0]).__name__ == "WorkerDied"
    assert results[1:] == [fib(SMALL)] * 19
    assert threads.died == 1
    assert threads.outstanding == 0
    assert [t.name for t in worker_threads()] == ["fib-worker-1"]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [(r.getMessage(), r.__dict__["worker"]) for r in errors] == [(DIED, "fib-worker-0")]


def test_a_thread_that_dies_is_a_503_and_counted(make_workload: MakeWorkload) -> None:
    workload = make_workload(SMALL, workers=1)

    async def twice() -> tuple[BaseException | int, int]:
        first = await asyncio.gather(workload.compute(), return_exceptions=True)
        return first[0], await workload.compute()

    with pytest.MonkeyPatch.context() as patch:
        first_thread_dies(patch)
        first, second = asyncio.run(twice())
    # The thread died before it took the computation: its replacement computed it.
    assert (first, second) == (fib(SMALL), fib(SMALL))
    assert workload.worker_threads_died == 1


def test_an_exception_in_the_computation_fails_only_that_one(
    made_threads: list[WorkerThreads],
) -> None:
    def compute(n: int, deadline: float, stop: Stop) -> int:
        if n == 0:
            raise MemoryError
        return fib(n)

    async def scenario() -> list[BaseException | int]:
        failing = WorkerThreads(0, 1, 0, compute)
        made_threads.append(failing)
        deadline = time.monotonic() + 10
        return list(await asyncio.gather(failing.compute(deadline), return_exceptions=True))

    [result] = asyncio.run(scenario())
    assert isinstance(result, MemoryError)


def test_a_thread_that_never_answers_is_waited_for_its_deadline_plus_the_margin(
    made_threads: list[WorkerThreads],
) -> None:
    """fib_until always answers; a computation that does not (a bug) still ends the wait."""
    released = threading.Event()

    def stuck(n: int, deadline: float, stop: Stop) -> int:
        released.wait(30)
        return 0

    threads = WorkerThreads(SMALL, 1, 0, stuck)
    made_threads.append(threads)
    timeout = 0.2

    async def scenario() -> float:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await threads.compute(start + timeout)
        return time.monotonic() - start

    try:
        took = asyncio.run(scenario())
    finally:
        released.set()
    assert timeout + MARGIN <= took < timeout + MARGIN + 0.5


def test_threads_refused_by_the_system_are_tried_again_at_most_every_interval(
    make_workload: MakeWorkload, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What a pids limit does (tested for real in tests/integration/test_worker_faults.py)."""
    attempts = []
    real_start = threading.Thread.start

    def refused(self: threading.Thread) -> None:
        if self.name.startswith("fib-worker-"):
            attempts.append(self.name)
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threads_module, "RETRY_INTERVAL", 0.3)
    monkeypatch.setattr(threading.Thread, "start", refused)
    workload = make_workload(SMALL, workers=2)

    async def refusals() -> list[BaseException | int]:
        return list(
            await asyncio.gather(*(workload.compute() for _ in range(20)), return_exceptions=True)
        )

    assert [type(r) for r in asyncio.run(refusals())] == [WorkloadUnavailable] * 20
    assert len(attempts) == 1
    assert worker_threads() == []
    monkeypatch.setattr(threading.Thread, "start", real_start)

    async def once_allowed() -> int:
        await until(lambda: _retry_due(workload), "the retry interval to pass")
        return await workload.compute()

    assert asyncio.run(once_allowed()) == fib(SMALL)
    assert len(worker_threads()) == 2
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert messages.count("cannot start a worker thread; trying again at most every second") == 1


def _retry_due(workload: object) -> bool:
    threads: WorkerThreads = workload._threads  # type: ignore[attr-defined]
    return time.monotonic() >= threads._retry_at


def test_the_python_fib_runs_on_the_same_threads_with_its_deadline(
    made_threads: list[WorkerThreads],
) -> None:
    """The fallback without a C compiler: the same threads, the Python fib_until."""
    python = WorkerThreads(RUNAWAY, 1, 0, interpreted_fib_until)  # type: ignore[arg-type]
    small = WorkerThreads(SMALL, 1, 0, interpreted_fib_until)  # type: ignore[arg-type]
    made_threads += [python, small]
    timeout = 0.2

    async def scenario() -> tuple[int, float]:
        value = await small.compute(time.monotonic() + 10)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await python.compute(start + timeout)
        return value, time.monotonic() - start

    value, took = asyncio.run(scenario())
    assert value == fib(SMALL)
    assert timeout <= took < timeout + 0.2


def test_no_thread_no_computation_before_the_first(made_threads: list[WorkerThreads]) -> None:
    threads = WorkerThreads(SMALL, 2, 0, fib_until)
    made_threads.append(threads)
    assert (threads.running, worker_threads()) == (0, [])
    threads.close()
    with pytest.raises(NoWorkerThread):
        asyncio.run(threads.compute(time.monotonic() + 10))
