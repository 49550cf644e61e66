"""Workload on real, small pools: one or two workers, fast computations, short deadlines.

The service computes in threads when fib is compiled and in processes otherwise; the tests
of the process pool run it with threads=False, so that both are tested in either build.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import pytest
from support.worker_pool import (
    RUNAWAY,
    SMALL,
    MakeWorkload,
    NewChildren,
    cpu_seconds,
    first_worker,
    kill_both_pools_mid_computation,
    until,
    until_computing,
    until_idle,
    worker_threads,
)
from support.workers import num_lasting

from example_service.fibonacci import IMPLEMENTATION, fib
from example_service.workload import (
    INLINE_MAX,
    WORKER_NICENESS,
    DeadlineExceeded,
    Overloaded,
    WorkloadUnavailable,
)

BROKE = "worker pool broke: a worker process died; its computations run once more on a new pool"

compiled_only = pytest.mark.skipif(
    IMPLEMENTATION != "compiled", reason="worker threads need the compiled fib"
)
POOLS = [
    pytest.param(False, id="processes"),
    pytest.param(True, id="threads", marks=compiled_only),
]


async def computing_worker(threads: bool, started: NewChildren) -> int:
    """The pid of the one worker process, or the native id of the one worker thread, once it
    computes."""
    if threads:
        await until(lambda: len(worker_threads()) == 1, "the worker thread to start")
        worker = worker_threads()[0].native_id
        assert worker is not None
    else:
        worker = await first_worker(started)
    await until_computing(worker)
    return worker


@pytest.mark.parametrize(("n", "value"), [(1, 1), (2, 1), (3, 2), (10, 55), (20, 6765)])
def test_fib(n: int, value: int) -> None:
    assert fib(n) == value


def test_runs_inline_up_to_the_bound(make_workload: MakeWorkload) -> None:
    assert make_workload(INLINE_MAX).inline
    assert not make_workload(INLINE_MAX + 1).inline


def test_inline_computations_start_no_worker(make_workload: MakeWorkload) -> None:
    started = NewChildren()
    assert make_workload(10).compute_inline() == 55
    assert make_workload(INLINE_MAX).compute_inline() == fib(INLINE_MAX)
    assert started() == []
    assert worker_threads() == []


@compiled_only
def test_compiled_larger_computations_run_in_lower_priority_threads(
    make_workload: MakeWorkload,
) -> None:
    started = NewChildren()
    workload = make_workload(SMALL, workers=2)
    assert asyncio.run(workload.compute()) == fib(SMALL)
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS)
    niceness = [os.getpriority(os.PRIO_PROCESS, t.native_id or 0) for t in worker_threads()]
    assert niceness == [expected, expected]
    assert started() == []


@compiled_only
def test_a_thread_computes_without_holding_the_gil(make_workload: MakeWorkload) -> None:
    workload = make_workload(num_lasting(1.0), workers=1, timeout=60)

    async def scenario() -> tuple[float, float]:
        """The longest the event loop went without running, and the CPU time the worker
        gained meanwhile."""
        computing = asyncio.create_task(workload.compute())
        worker = await computing_worker(True, NewChildren())
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
def test_threads_count_every_call_of_their_computations(make_workload: MakeWorkload) -> None:
    """Several threads at once, each computation's calls added to the module's total."""
    from example_service._fibonacci import calls

    workload = make_workload(SMALL, workers=2, queue=4)

    async def computations() -> list[int]:
        return list(await asyncio.gather(*(workload.compute() for _ in range(10))))

    value = fib(SMALL)  # counted too: before the count starts
    before = calls()
    assert asyncio.run(computations()) == [value] * 10
    assert calls() - before == 10 * (2 * value - 1)


@compiled_only
def test_threads_refuse_work_past_their_capacity_even_once_its_callers_gave_up(
    make_workload: MakeWorkload,
) -> None:
    """A computation whose caller was cancelled occupies its place until it ends."""
    workload = make_workload(RUNAWAY, workers=1, timeout=0.5, queue=1)

    async def scenario() -> None:
        abandoned = [asyncio.create_task(workload.compute()) for _ in range(2)]
        worker = await computing_worker(True, NewChildren())
        for task in abandoned:
            task.cancel()
        await asyncio.gather(*abandoned, return_exceptions=True)
        with pytest.raises(Overloaded):
            await workload.compute()
        # Both have ended at their deadline, and their places are free again.
        await until_idle(worker)
        with pytest.raises(DeadlineExceeded):
            await workload.compute()

    asyncio.run(scenario())


@compiled_only
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


@compiled_only
def test_close_stops_the_threads_in_the_middle_of_a_computation(
    make_workload: MakeWorkload,
) -> None:
    workload = make_workload(RUNAWAY, workers=1)

    async def scenario() -> float:
        computing = asyncio.create_task(workload.compute())
        await computing_worker(True, NewChildren())
        start = time.monotonic()
        workload.close()
        closed = time.monotonic() - start
        with pytest.raises(WorkloadUnavailable):
            await asyncio.wait_for(computing, 5)
        return closed

    # At once, not when fib(50) or its 10 s deadline would have ended.
    assert asyncio.run(scenario()) < 0.5
    assert worker_threads() == []


@pytest.mark.parametrize("threads", POOLS)
def test_computations_abandoned_at_close_are_unavailable(
    make_workload: MakeWorkload, threads: bool
) -> None:
    """Computing or still waiting for a worker, each answers the clear 503, never the
    CancelledError of a computation its pool gave up (a 500)."""
    started = NewChildren()
    workload = make_workload(RUNAWAY, workers=1, threads=threads)

    async def scenario() -> list[BaseException | int]:
        # One computing; with processes one more in the executor's call queue, the rest
        # pending in the executor, which cancels them at close.
        computing = [asyncio.create_task(workload.compute()) for _ in range(4)]
        await computing_worker(threads, started)
        workload.close()
        results = asyncio.gather(*computing, return_exceptions=True)
        return list(await asyncio.wait_for(results, 30))

    assert [type(result) for result in asyncio.run(scenario())] == [WorkloadUnavailable] * 4


@pytest.mark.parametrize("threads", POOLS)
def test_a_caller_cancelled_is_cancelled(make_workload: MakeWorkload, threads: bool) -> None:
    """Only the pool's cancellation becomes WorkloadUnavailable, not the caller's own."""
    started = NewChildren()
    workload = make_workload(RUNAWAY, workers=1, threads=threads)

    async def scenario() -> None:
        computing = asyncio.create_task(workload.compute())
        await computing_worker(threads, started)
        computing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await computing

    asyncio.run(scenario())


def test_larger_computations_run_in_a_lower_priority_worker_process(
    make_workload: MakeWorkload,
) -> None:
    started = NewChildren()
    workload = make_workload(SMALL, workers=1, threads=False)
    assert asyncio.run(workload.compute()) == fib(SMALL)
    niceness = os.getpriority(os.PRIO_PROCESS, started.one())
    assert niceness == min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS)


def test_close_stops_the_worker_processes(make_workload: MakeWorkload) -> None:
    started = NewChildren()
    workload = make_workload(SMALL, workers=2, threads=False)

    async def both() -> list[int]:
        return list(await asyncio.gather(workload.compute(), workload.compute()))

    assert asyncio.run(both()) == [fib(SMALL), fib(SMALL)]
    workers = started()
    assert workers
    workload.close()
    assert not any(worker.is_alive() for worker in workers)


def test_the_worker_process_stops_a_computation_at_its_deadline(
    make_workload: MakeWorkload,
) -> None:
    timeout = 1.0
    started = NewChildren()
    workload = make_workload(RUNAWAY, workers=1, timeout=timeout, threads=False)

    async def scenario() -> float:
        start = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            await workload.compute()
        took = time.monotonic() - start
        # The worker stopped computing: it was not abandoned to go on with fib(50).
        worker = started.one()
        await until_idle(worker)
        return took

    assert timeout <= asyncio.run(scenario()) < timeout + 1.0


@pytest.mark.parametrize("threads", POOLS)
def test_time_spent_waiting_for_a_worker_counts_against_the_deadline(
    make_workload: MakeWorkload, threads: bool
) -> None:
    timeout = 1.0
    workload = make_workload(RUNAWAY, workers=1, timeout=timeout, threads=threads)

    async def scenario() -> tuple[list[BaseException | int], float]:
        start = time.monotonic()
        results = await asyncio.gather(
            workload.compute(), workload.compute(), return_exceptions=True
        )
        return list(results), time.monotonic() - start

    results, took = asyncio.run(scenario())
    assert [type(result) for result in results] == [DeadlineExceeded, DeadlineExceeded]
    # The second was queued behind the first for its whole deadline: it is not run at all.
    assert took < 2 * timeout


@pytest.mark.parametrize("threads", POOLS)
def test_past_its_queue_a_computation_is_refused_at_once(
    make_workload: MakeWorkload, threads: bool
) -> None:
    workload = make_workload(RUNAWAY, workers=1, timeout=1.0, queue=1, threads=threads)

    async def scenario() -> list[BaseException | int]:
        running, waiting = (
            asyncio.create_task(workload.compute()),
            asyncio.create_task(workload.compute()),
        )
        await asyncio.sleep(0)  # both admitted before the third asks
        start = time.monotonic()
        with pytest.raises(Overloaded):
            await workload.compute()
        assert time.monotonic() - start < 0.05
        return list(await asyncio.gather(running, waiting, return_exceptions=True))

    assert [type(r) for r in asyncio.run(scenario())] == [DeadlineExceeded, DeadlineExceeded]


def test_a_computation_lost_with_its_worker_runs_again_on_a_new_pool(
    make_workload: MakeWorkload, caplog: pytest.LogCaptureFixture
) -> None:
    started = NewChildren()
    n = num_lasting(0.5)
    workload = make_workload(n, workers=1, timeout=60, threads=False)

    async def scenario() -> int:
        computing = asyncio.create_task(workload.compute())
        killed = await first_worker(started)
        await until_computing(killed)
        os.kill(killed, signal.SIGKILL)
        result = await asyncio.wait_for(computing, 60)
        assert started.one() != killed
        return result

    assert asyncio.run(scenario()) == fib(n)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [BROKE]


def test_a_computation_whose_second_pool_breaks_too_is_unavailable(
    make_workload: MakeWorkload, caplog: pytest.LogCaptureFixture
) -> None:
    started = NewChildren()
    workload = make_workload(RUNAWAY, workers=1, timeout=60, threads=False)

    async def scenario() -> None:
        computing = asyncio.create_task(workload.compute())
        await kill_both_pools_mid_computation(started)
        with pytest.raises(WorkloadUnavailable):
            await asyncio.wait_for(computing, 30)

    asyncio.run(scenario())
    # Once per breakage, not once per computation.
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [BROKE] * 2


def test_close_stops_a_worker_process_in_the_middle_of_a_computation(
    make_workload: MakeWorkload, caplog: pytest.LogCaptureFixture
) -> None:
    started = NewChildren()
    workload = make_workload(RUNAWAY, workers=1, threads=False)

    async def scenario() -> float:
        computing = asyncio.create_task(workload.compute())
        await until_computing(await first_worker(started))
        start = time.monotonic()
        workload.close()
        with pytest.raises(WorkloadUnavailable):
            await asyncio.wait_for(computing, 30)
        return time.monotonic() - start

    # At once, not when fib(50) or its 10 s deadline would have ended.
    assert asyncio.run(scenario()) < 5
    assert started() == []
    # Shutdown is not a breakage: nothing to report, no pool started anew.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
