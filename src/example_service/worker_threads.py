"""Worker threads for the compiled workload: fib with the GIL released, in parallel.

The compiled fib_until releases the GIL and enforces its deadline itself, so threads compute
in parallel on every core without the round trip to another process, which cost about as
much CPU as fib(25) itself. A computation is handed over through a queue.SimpleQueue and
answered with loop.call_soon_threadsafe: measured with bench/handoff_cost.py, that costs a
third of what loop.run_in_executor on a ThreadPoolExecutor does (README, "Under load").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from queue import SimpleQueue

from example_service._fibonacci import Stop, fib_until

Job = tuple[asyncio.Future[int], float]

# How long a thread that wants the GIL waits before the holder is asked to drop it (Python's
# default is 5 ms). A worker needs the GIL for a few microseconds to hand its answer over and
# take its next computation; behind a busy event loop it waited up to 5 ms each time. Measured
# with the flood of tests/integration/test_floods.py (one worker, about 20 ms a computation,
# 64 clients): the p99 latency of the admitted requests was 5.2-19.7 computations by default,
# 7.4-8.7 at 0.5 ms (8 runs each).
SWITCH_INTERVAL = 0.0005


class WorkerThreads:
    """`count` threads computing fib(n), each computation within its deadline.

    A computation past its deadline raises TimeoutError; one the pool abandons when closed
    is cancelled (its future's CancelledError, which the caller tells from its own)."""

    def __init__(self, n: int, count: int, niceness: int) -> None:
        self._n = n
        self._niceness = niceness
        self._jobs: SimpleQueue[Job | None] = SimpleQueue()
        self._stop = Stop()
        # Daemons: should the service end without closing its workload (an unexpected
        # error), threads blocked on the queue must not hold up the interpreter's exit.
        self._threads = [
            threading.Thread(target=self._serve, name=f"fib-worker-{index}", daemon=True)
            for index in range(count)
        ]
        sys.setswitchinterval(SWITCH_INTERVAL)
        for thread in self._threads:
            thread.start()

    async def compute(self, deadline: float) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._jobs.put((future, deadline))
        return await future

    def _serve(self) -> None:
        # Linux keeps a niceness per thread: this one computes below the event loop's
        # priority, so the loop gets a core as soon as a probe or a scrape arrives.
        thread = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + self._niceness
        )
        while (job := self._jobs.get()) is not None:
            future, deadline = job
            try:
                value = fib_until(self._n, deadline, self._stop)
            # Every exception, not only the deadline's: one left here would end the thread
            # and leave its request waiting for ever.
            except Exception as error:
                _send(future, None, error)
            else:
                _send(future, value, None)

    def close(self) -> None:
        """Stop every computation within about 0.1 ms, cancel the waiting ones, and end the
        threads."""
        self._stop.set()
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()


def _send(future: asyncio.Future[int], value: int | None, error: BaseException | None) -> None:
    # RuntimeError: the loop has closed, and nothing awaits the answer any more.
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(_answer, future, value, error)


def _answer(future: asyncio.Future[int], value: int | None, error: BaseException | None) -> None:
    """On the future's loop. A future whose caller gave up waiting is already cancelled."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    elif value is None:
        # The pool's Stop ended the computation: the pool was closed.
        future.cancel()
    else:
        future.set_result(value)
