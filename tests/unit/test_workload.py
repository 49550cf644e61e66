"""Workload on a real, small process pool: one worker, fast computations, short deadlines."""

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
    first_worker,
    next_worker,
    until_computing,
    until_idle,
)
from support.workers import num_lasting

from example_service.fibonacci import fib
from example_service.workload import (
    INLINE_MAX,
    WORKER_NICENESS,
    DeadlineExceeded,
    Overloaded,
    WorkloadUnavailable,
)

BROKE = "worker pool broke: a worker process died; its computations run once more on a new pool"


@pytest.mark.parametrize(("n", "value"), [(1, 1), (2, 1), (3, 2), (10, 55), (20, 6765)])
def test_fib(n: int, value: int) -> None:
    assert fib(n) == value


def test_runs_inline_up_to_the_bound(make_workload: MakeWorkload) -> None:
    assert make_workload(INLINE_MAX).inline
    assert not make_workload(INLINE_MAX + 1).inline


def test_inline_computations_start_no_process(make_workload: MakeWorkload) -> None:
    started = NewChildren()
    assert make_workload(10).compute_inline() == 55
    assert make_workload(INLINE_MAX).compute_inline() == fib(INLINE_MAX)
    assert started() == []


def test_larger_computations_run_in_a_lower_priority_worker(make_workload: MakeWorkload) -> None:
    started = NewChildren()
    workload = make_workload(SMALL, workers=1)
    assert asyncio.run(workload.compute()) == fib(SMALL)
    niceness = os.getpriority(os.PRIO_PROCESS, started.one())
    assert niceness == min(19, os.getpriority(os.PRIO_PROCESS, 0) + WORKER_NICENESS)


def test_close_stops_the_workers(make_workload: MakeWorkload) -> None:
    started = NewChildren()
    workload = make_workload(SMALL, workers=2)

    async def both() -> list[int]:
        return list(await asyncio.gather(workload.compute(), workload.compute()))

    assert asyncio.run(both()) == [fib(SMALL), fib(SMALL)]
    workers = started()
    assert workers
    workload.close()
    assert not any(worker.is_alive() for worker in workers)


def test_the_worker_stops_a_computation_at_its_deadline(make_workload: MakeWorkload) -> None:
    timeout = 1.0
    started = NewChildren()
    workload = make_workload(RUNAWAY, workers=1, timeout=timeout)

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


def test_time_spent_waiting_for_a_worker_counts_against_the_deadline(
    make_workload: MakeWorkload,
) -> None:
    timeout = 1.0
    workload = make_workload(RUNAWAY, workers=1, timeout=timeout)

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


def test_past_its_queue_a_computation_is_refused_at_once(make_workload: MakeWorkload) -> None:
    workload = make_workload(RUNAWAY, workers=1, timeout=1.0, queue=1)

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
    workload = make_workload(n, workers=1, timeout=60)

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
    workload = make_workload(RUNAWAY, workers=1, timeout=60)

    async def scenario() -> None:
        computing = asyncio.create_task(workload.compute())
        first = await first_worker(started)
        await until_computing(first)
        os.kill(first, signal.SIGKILL)
        second = await next_worker(started, first)
        await until_computing(second)
        os.kill(second, signal.SIGKILL)
        with pytest.raises(WorkloadUnavailable):
            await asyncio.wait_for(computing, 30)

    asyncio.run(scenario())
    # Once per breakage, not once per computation.
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [BROKE] * 2


def test_close_stops_a_worker_in_the_middle_of_a_computation(
    make_workload: MakeWorkload, caplog: pytest.LogCaptureFixture
) -> None:
    started = NewChildren()
    workload = make_workload(RUNAWAY, workers=1)

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
