"""Where a computation runs and whether it is admitted: inline up to the bound, else on real
worker threads, refused past the queueing budget or the memory bound; the sizing and the
workload's own messages.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from support.workers import num_lasting
from support.workload import (
    RUNAWAY,
    SMALL,
    MakeWorkload,
    computing_thread,
    until,
    until_idle,
    worker_threads,
)

from example_service.workload.admission import (
    INLINE_MAX,
    QUEUE_DELAY,
    QUEUE_FULL,
    UNTIMED_QUEUE,
    ComputationFailed,
    DeadlineExceeded,
    Overloaded,
    WorkloadUnavailable,
    default_workers,
)
from example_service.workload.fibonacci import (
    Stop,
    fib,
)
from example_service.workload.threads import WorkerThreads


def test_runs_inline_up_to_the_bound(make_workload: MakeWorkload) -> None:
    assert make_workload(INLINE_MAX).inline
    assert not make_workload(INLINE_MAX + 1).inline


def test_inline_computations_start_no_worker(make_workload: MakeWorkload) -> None:
    assert make_workload(10).compute_inline() == 55
    assert make_workload(INLINE_MAX).compute_inline() == fib(INLINE_MAX)
    assert worker_threads() == []


def test_a_computation_keeps_its_place_until_it_ends_even_once_its_caller_gave_up(
    make_workload: MakeWorkload,
) -> None:
    workload = make_workload(RUNAWAY, workers=1, timeout=0.5, queue=0)

    async def scenario() -> None:
        abandoned = asyncio.create_task(workload.compute())
        worker = await computing_thread()
        abandoned.cancel()
        await asyncio.gather(abandoned, return_exceptions=True)
        with pytest.raises(Overloaded):
            await workload.compute()
        # It has ended at its deadline, and its place is free again.
        await until_idle(worker)
        await until(lambda: _outstanding(workload) == 0, "the abandoned one to be answered")
        with pytest.raises(DeadlineExceeded):
            await workload.compute()

    asyncio.run(scenario())


def _outstanding(workload: object) -> int:
    threads: WorkerThreads = workload._threads  # type: ignore[attr-defined]
    return threads.outstanding


def test_computations_abandoned_at_close_are_unavailable(make_workload: MakeWorkload) -> None:
    """Computing or still queued, each answers the clear 503, never a 500."""
    workload = make_workload(RUNAWAY, workers=1, timeout=60)
    # As if a computation had been timed at 1 ms: the next ones may queue.
    workload._timed(0.001)

    async def scenario() -> list[BaseException | int]:
        computing = [asyncio.create_task(workload.compute()) for _ in range(4)]
        await computing_thread()
        workload.close()
        results = asyncio.gather(*computing, return_exceptions=True)
        return list(await asyncio.wait_for(results, 30))

    assert [type(result) for result in asyncio.run(scenario())] == [WorkloadUnavailable] * 4
    with pytest.raises(WorkloadUnavailable):
        asyncio.run(workload.compute())


def test_close_while_computations_arrive_answers_every_one(make_workload: MakeWorkload) -> None:
    """close() between computations being admitted: none hangs, none is a 500."""
    workload = make_workload(SMALL + 6, workers=2, queue=100)

    async def scenario() -> set[type]:
        tasks = []
        for index in range(200):
            tasks.append(asyncio.create_task(workload.compute()))
            if index == 100:
                workload.close()
            await asyncio.sleep(0)
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        return {type(result) for result in results}

    assert asyncio.run(scenario()) <= {int, WorkloadUnavailable, Overloaded}
    assert worker_threads() == []


def test_close_after_the_loop_has_closed_with_a_computation_awaited(
    make_workload: MakeWorkload,
) -> None:
    workload = make_workload(RUNAWAY, workers=1)
    descriptors = len(os.listdir("/proc/self/fd"))

    async def abandoned() -> None:
        computing = asyncio.create_task(workload.compute())
        await computing_thread()
        # Left awaiting: asyncio.run cancels it and closes the loop.
        assert not computing.done()

    asyncio.run(abandoned())
    start = time.monotonic()
    workload.close()
    workload.close()
    assert time.monotonic() - start < 0.5
    assert worker_threads() == []
    assert len(os.listdir("/proc/self/fd")) == descriptors


def test_a_caller_cancelled_is_cancelled(make_workload: MakeWorkload) -> None:
    workload = make_workload(RUNAWAY, workers=1)

    async def scenario() -> None:
        computing = asyncio.create_task(workload.compute())
        await computing_thread()
        computing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await computing

    asyncio.run(scenario())


def test_until_a_computation_is_timed_a_few_wait_per_worker(make_workload: MakeWorkload) -> None:
    workload = make_workload(RUNAWAY, workers=2, timeout=0.5, queue=100)
    admitted = 2 * (1 + UNTIMED_QUEUE)

    async def scenario() -> list[str | None]:
        refusals = []
        computing = []
        for _ in range(admitted + 2):
            refusals.append(workload.refusal())
            if refusals[-1] is None:
                computing.append(asyncio.create_task(workload.compute()))
                await asyncio.sleep(0)
        # Refused at its first step, before it could wait for anything.
        with pytest.raises(Overloaded) as refused:
            workload.compute().send(None)
        assert refused.value.reason == QUEUE_DELAY
        await asyncio.gather(*computing, return_exceptions=True)
        return refusals

    assert asyncio.run(scenario()) == [None] * admitted + [QUEUE_DELAY] * 2
    assert workload.seconds_per_computation is None


def test_admitted_while_the_expected_wait_is_within_the_budget(
    make_workload: MakeWorkload,
) -> None:
    """Computations ahead times the time of one, over the workers, against the budget."""
    budget = 0.2
    workload = make_workload(
        num_lasting(0.02), workers=1, timeout=10, queue=100, queue_delay=budget
    )

    async def scenario() -> tuple[int, float, list[str | None]]:
        await workload.compute()
        await workload.compute()
        seconds = workload.seconds_per_computation
        assert seconds is not None
        admitted: list[asyncio.Task[int]] = []
        refusals = []
        for _ in range(round(3 * budget / seconds) + 3):
            refusals.append(workload.refusal())
            if refusals[-1] is None:
                admitted.append(asyncio.create_task(workload.compute()))
                await asyncio.sleep(0)  # queued before the next one asks
        results = await asyncio.gather(*admitted)
        assert results == [results[0]] * len(admitted)
        return len(admitted), seconds, refusals

    count, seconds, refusals = asyncio.run(scenario())
    # One on the idle worker, then while ahead * seconds <= budget; every one after refused.
    assert count == 1 + int(budget / seconds)
    assert refusals[count:] == [QUEUE_DELAY] * (len(refusals) - count)


@pytest.mark.parametrize(("seconds", "refused"), [(0.4, None), (0.6, QUEUE_DELAY)])
def test_a_computation_that_would_pass_its_deadline_is_refused(
    make_workload: MakeWorkload, seconds: float, refused: str | None
) -> None:
    """A budget as long as the deadline still admits nothing that would time out waiting:
    one computation ahead, waiting `seconds` is within the budget of 1 s, but computing
    `seconds` more passes the deadline of 1 s at 0.6 s."""
    workload = make_workload(RUNAWAY, workers=1, timeout=1.0, queue_delay=1.0)
    # What the threads report once a computation is timed (a RUNAWAY one never is).
    workload._timed(seconds)

    async def scenario() -> str | None:
        first = asyncio.create_task(workload.compute())
        await asyncio.sleep(0)
        refusal = workload.refusal()
        first.cancel()
        return refusal

    assert asyncio.run(scenario()) == refused


def test_past_its_memory_bound_a_computation_is_refused_at_once(
    make_workload: MakeWorkload,
) -> None:
    workload = make_workload(RUNAWAY, workers=1, timeout=1.0, queue=0)

    async def scenario() -> list[BaseException | int]:
        running = asyncio.create_task(workload.compute())
        await asyncio.sleep(0)  # admitted before the next asks
        # Refused at its first step, before it could wait for anything.
        with pytest.raises(Overloaded) as refused:
            workload.compute().send(None)
        assert refused.value.reason == QUEUE_FULL
        return list(await asyncio.gather(running, return_exceptions=True))

    assert [type(r) for r in asyncio.run(scenario())] == [DeadlineExceeded]


def test_a_failed_computation_is_a_computation_failed(
    make_workload: MakeWorkload, monkeypatch: pytest.MonkeyPatch
) -> None:
    workload = make_workload(SMALL, workers=1)

    def compute(n: int, deadline: float, stop: Stop) -> int:
        raise ZeroDivisionError

    monkeypatch.setattr(workload._threads, "_compute", compute)
    with pytest.raises(ComputationFailed, match=rf"computation of fib\({SMALL}\) failed"):
        asyncio.run(workload.compute())


CPUS = len(os.sched_getaffinity(0))


def test_without_a_quota_every_cpu_the_process_may_run_on() -> None:
    assert default_workers(None) == CPUS


@pytest.mark.parametrize(
    ("quota", "expected"), [(0.1, 1), (1.0, 1), (1.5, min(2, CPUS)), (CPUS + 8.0, CPUS)]
)
def test_a_quota_rounded_up_and_never_above_the_cpus(quota: float, expected: int) -> None:
    assert default_workers(quota) == expected


def test_deadline_message_names_the_computation_and_the_deadline() -> None:
    error = DeadlineExceeded(40, 0.5)
    assert str(error) == "computation of fib(40) exceeded the 0.5 s request deadline"
    assert error.n == 40
