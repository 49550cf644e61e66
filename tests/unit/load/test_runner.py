"""The load engine in process, with fake targets: pacing, coordinated omission, stopping.

The fakes stand for the HTTP client (LoadRun takes any `send`), so each test controls
exactly how long an answer takes, or how long the tool itself stalls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from example_service.load.limits import Limits, Pacing
from example_service.load.runner import LoadRun, Plan, StopReason, Times
from example_service.load.stats import Outcome, Recorder
from example_service.load.summary import Summary

SERVICE_SECONDS = 0.02


def plan(urls: int = 1, timeout: float = 5.0, **pacing: float) -> Callable[..., Plan]:
    def make(**limits: float) -> Plan:
        return Plan(
            tuple(f"http://127.0.0.1/{i}" for i in range(urls)),
            Limits(**limits),  # type: ignore[arg-type]
            Pacing(**pacing),  # type: ignore[arg-type]
            timeout,
        )

    return make


def execute(
    the_plan: Plan, send: Callable[[int], Awaitable[int | Outcome]]
) -> tuple[Times, Recorder, LoadRun]:
    recorder = Recorder.for_targets(len(the_plan.urls))
    run = LoadRun(the_plan, recorder)
    times = asyncio.run(run.run(send))
    return times, recorder, run


def one_at_a_time() -> Callable[[int], Awaitable[int]]:
    """A service with one worker: answers take SERVICE_SECONDS each, in turn."""
    lock = asyncio.Lock()

    async def send(target: int) -> int:
        async with lock:
            await asyncio.sleep(SERVICE_SECONDS)
        return 200

    return send


async def instant(target: int) -> int:
    await asyncio.sleep(0)
    return 200


def test_closed_loop_sends_exactly_the_count_to_the_targets_in_turn() -> None:
    times, recorder, _ = execute(plan(urls=3, concurrency=4)(count=100), instant)
    assert times.stopped_by is StopReason.COUNT
    assert (recorder.sent, recorder.finished, recorder.failed) == (100, 100, 0)
    assert [t.sent for t in recorder.targets] == [34, 33, 33]
    assert times.due is None  # no schedule in the closed loop


def test_open_loop_keeps_the_schedule_and_counts_what_was_due() -> None:
    times, recorder, _ = execute(plan(rate=200)(duration=0.5), instant)
    assert times.stopped_by is StopReason.DURATION
    assert times.due == 100
    assert recorder.sent == 100
    assert recorder.waited_for_slot == 0
    assert recorder.lag.count == 100
    # Never ahead of the schedule: 100 requests at 200/s take at least 0.495 s.
    assert times.elapsed >= 0.495

    times, recorder, _ = execute(plan(rate=1000)(count=25), instant)
    assert (times.stopped_by, times.due, recorder.sent) == (StopReason.COUNT, 25, 25)


def test_open_loop_latency_runs_from_the_schedule_not_from_the_send() -> None:
    """Coordinated omission: a service that cannot keep up shows it in the latency."""
    # Five times what one worker can answer, with room for two requests in flight.
    rate = 5 / SERVICE_SECONDS
    times, recorder, _ = execute(plan(rate=rate, max_in_flight=2)(duration=0.4), one_at_a_time())
    # Request i is due at i/rate but the service finishes one every SERVICE_SECONDS: it
    # falls further behind with every request, and the figures must say so.
    assert recorder.waited_for_slot > 0
    assert times.due == 100
    assert recorder.sent < 40  # only what the slow service let through in 0.4 s
    latency = recorder.latency.quantiles([0.5, 1.0])
    assert latency[1.0] >= 0.25e9  # the last answered waited most of the run
    assert latency[0.5] >= 5 * SERVICE_SECONDS * 1e9

    # The same service in the closed loop: each latency is one answer's queue, no more.
    _, closed, _ = execute(plan(concurrency=2)(duration=0.4), one_at_a_time())
    assert closed.latency.quantiles([0.5])[0.5] <= 3 * SERVICE_SECONDS * 1e9


def test_a_stalled_tool_shows_as_lag_and_a_warning() -> None:
    async def stalling(target: int) -> int:
        time.sleep(0.03)  # the tool itself stalled: nothing else on its loop runs meanwhile
        return 200

    the_plan = plan(rate=100)(count=20)
    times, recorder, _ = execute(the_plan, stalling)
    assert recorder.waited_for_slot == 0  # slots were free: the lateness is the tool's
    assert recorder.lag.quantiles([0.99])[0.99] >= 0.015e9
    reasons = Summary.of(the_plan, times, recorder).generator.falling_behind()
    assert any("started requests late" in reason for reason in reasons)


def test_first_interrupt_drains_and_the_second_cancels() -> None:
    started = asyncio.Event()

    async def hanging(target: int) -> int:
        started.set()
        await asyncio.sleep(60)
        return 200

    async def scenario() -> tuple[Times, Recorder, list[bool]]:
        recorder = Recorder.for_targets(1)
        run = LoadRun(plan(concurrency=3)(count=10), recorder)
        task = asyncio.create_task(run.run(hanging))
        await started.wait()
        await asyncio.sleep(0)
        run.interrupt()
        await asyncio.sleep(0.05)
        states = [task.done(), run.draining]
        run.interrupt()
        return await task, recorder, states

    times, recorder, states = asyncio.run(scenario())
    assert states == [False, True]  # the first interrupt waits for the answers in flight
    assert times.stopped_by is StopReason.INTERRUPT
    assert recorder.sent == 3
    assert recorder.outcomes[Outcome.CANCELLED] == 3


def test_an_interrupt_stops_the_open_loop_at_once() -> None:
    async def scenario() -> tuple[Times, float]:
        recorder = Recorder.for_targets(1)
        run = LoadRun(plan(rate=1)(duration=60), recorder)
        task = asyncio.create_task(run.run(instant))
        await asyncio.sleep(0.1)  # the pacer now waits 0.9 s for request 2
        began = time.monotonic()
        run.interrupt()
        return await task, time.monotonic() - began

    times, waited = asyncio.run(scenario())
    assert times.stopped_by is StopReason.INTERRUPT
    assert waited < 0.5
    assert times.due == 1


@pytest.mark.parametrize("outcome", [Outcome.TIMEOUT, Outcome.CONNECTION_ERROR])
def test_failures_are_counted_without_a_latency(outcome: Outcome) -> None:
    async def failing(target: int) -> Outcome:
        await asyncio.sleep(0)
        return outcome

    _, recorder, _ = execute(plan(concurrency=2)(count=6), failing)
    assert recorder.outcomes == {outcome: 6}
    assert recorder.latency.count == 0
