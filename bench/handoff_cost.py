"""What handing one computation to a worker thread and back costs, by way of hand-off.

The workload's fib runs in threads (docs/design.md, "Under load"); below the hand-off's cost it runs
inline instead. Compared here, each on a uvloop loop with a computation that does next to
nothing, so only the hand-off is measured: the executor asyncio offers
(`loop.run_in_executor` on a `ThreadPoolExecutor`), a bare `queue.SimpleQueue` read by a
plain thread that answers with `loop.call_soon_threadsafe`, and what the workload does: its
WorkerThreads (the same SimpleQueue hand-off, with the deadline's outer bound and the count of
outstanding computations), here computing fib(1), one call, with the compiled fib_until.
Printed: process CPU time per round trip (both threads'; steady on a busy machine, unlike
wall time) and wall time, medians of alternating rounds, with `concurrency` hand-offs in
flight at once, and each one's ratio to the executor's.

    .venv/bin/python -m bench.handoff_cost [--rounds 7] [--count 20000] [--concurrency 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from queue import SimpleQueue

import uvloop

from example_service.workload.threads import WorkerThreads

HandOff = Callable[[], Awaitable[None]]


def nothing() -> None:
    pass


def executor_hand_off(executor: ThreadPoolExecutor) -> HandOff:
    async def hand_off() -> None:
        await asyncio.get_running_loop().run_in_executor(executor, nothing)

    return hand_off


def queue_hand_off(jobs: SimpleQueue[asyncio.Future[None] | None]) -> HandOff:
    async def hand_off() -> None:
        future = asyncio.get_running_loop().create_future()
        jobs.put(future)
        await future

    return hand_off


def answer(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def serve(jobs: SimpleQueue[asyncio.Future[None] | None]) -> None:
    while (future := jobs.get()) is not None:
        nothing()
        future.get_loop().call_soon_threadsafe(answer, future)


def worker_threads_hand_off(threads: WorkerThreads) -> HandOff:
    async def hand_off() -> None:
        await threads.compute(time.monotonic() + 60)

    return hand_off


async def measure(hand_off: HandOff, count: int, concurrency: int) -> tuple[float, float]:
    """CPU and wall seconds per hand-off."""

    async def client() -> None:
        for _ in range(count // concurrency):
            await hand_off()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    done = count // concurrency * concurrency
    return (time.process_time() - cpu) / done, (time.perf_counter() - wall) / done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, default=20_000, help="hand-offs per round")
    parser.add_argument("--concurrency", type=int, default=1, help="hand-offs in flight")
    options = parser.parse_args()

    jobs: SimpleQueue[asyncio.Future[None] | None] = SimpleQueue()
    worker = threading.Thread(target=serve, args=(jobs,))
    worker.start()
    figures: dict[str, list[tuple[float, float]]] = {}
    with ThreadPoolExecutor(1) as executor:

        async def rounds() -> None:
            # Made on the loop, which it answers on.
            threads = WorkerThreads(1, 1, 0)
            ways = {
                "run_in_executor(ThreadPoolExecutor)": executor_hand_off(executor),
                "SimpleQueue + call_soon_threadsafe": queue_hand_off(jobs),
                "WorkerThreads (SimpleQueue, bounded wait)": worker_threads_hand_off(threads),
            }
            try:
                for _ in range(options.rounds):
                    for name, hand_off in ways.items():
                        figures.setdefault(name, []).append(
                            await measure(hand_off, options.count, options.concurrency)
                        )
            finally:
                threads.close()

        uvloop.run(rounds())
    jobs.put(None)
    worker.join()
    print(f"{options.rounds} rounds of {options.count}, {options.concurrency} in flight")
    executor_cpu = statistics.median(c for c, _ in figures[next(iter(figures))])
    for name, taken in figures.items():
        cpu = statistics.median(c for c, _ in taken)
        wall = statistics.median(w for _, w in taken) * 1e6
        print(
            f"{name:42} {cpu * 1e6:6.1f} µs CPU ({cpu / executor_cpu:4.2f}x) "
            f"{wall:6.1f} µs wall per hand-off"
        )


if __name__ == "__main__":
    main()
