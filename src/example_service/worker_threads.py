"""Worker threads for the compiled workload: fib with the GIL released, in parallel.

The compiled module's Pool computes fib(n) with its deadline enforced in C, and its threads
wait for, compute and answer each computation without ever taking the GIL: they compute in
parallel on every core, without the round trip to another process (which cost about as much
CPU as fib(25) itself), and never wait for the event loop to let go of the GIL. The event
loop submits computations and learns of results through the pool's eventfd, which it
watches with loop.add_reader (docs/design.md, "Under load"; bench/handoff_cost.py measures it).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading

from example_service._fibonacci import Pool
from example_service.workload import Overloaded


class WorkerThreads:
    """`count` threads computing fib(n), each computation within its deadline, for the
    event loop running when they are made.

    A computation past its deadline raises TimeoutError; one the pool abandons when closed
    is cancelled (its future's CancelledError, which the caller tells from its own). At most
    `capacity` computations are in the pool at once, computing, queued, or answered and not
    yet collected: past it, compute() raises Overloaded.
    """

    def __init__(self, n: int, count: int, niceness: int, capacity: int) -> None:
        self._niceness = niceness
        self._loop = asyncio.get_running_loop()
        self._pool = Pool(n, capacity)
        self._jobs = itertools.count()
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._closed = False
        self._eventfd = self._pool.fileno()
        self._loop.add_reader(self._eventfd, self._answer)
        # Daemons: should the service end without closing its workload (an unexpected
        # error), threads waiting for work must not hold up the interpreter's exit.
        self._threads = [
            threading.Thread(target=self._serve, name=f"fib-worker-{index}", daemon=True)
            for index in range(count)
        ]
        for thread in self._threads:
            thread.start()

    async def compute(self, deadline: float) -> int:
        job = next(self._jobs)
        # The workload admits no more than capacity computations, but a computation whose
        # caller gave up stays in the pool until its deadline or its end.
        if not self._pool.submit(job, deadline):
            raise Overloaded
        future: asyncio.Future[int] = self._loop.create_future()
        self._waiting[job] = future
        return await future

    def _serve(self) -> None:
        # Linux keeps a niceness per thread: this one computes below the event loop's
        # priority, so the loop gets a core as soon as a probe or a scrape arrives.
        thread = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + self._niceness
        )
        self._pool.serve()

    def _answer(self) -> None:
        for job, answer in self._pool.drain():
            future = self._waiting.pop(job)
            # A future whose caller gave up waiting is already cancelled.
            if future.done():
                continue
            if answer is None:
                # The pool was closed before or while computing it.
                future.cancel()
            elif isinstance(answer, TimeoutError):
                future.set_exception(answer)
            else:
                future.set_result(answer)

    def close(self) -> None:
        """Stop every computation within about 0.1 ms, cancel the waiting ones, end the
        threads and free the pool. On the event loop's thread, or once the loop has closed."""
        if self._closed:
            return
        self._closed = True
        self._pool.stop()
        for thread in self._threads:
            thread.join()
        if not self._loop.is_closed():
            self._loop.remove_reader(self._eventfd)
        self._answer()
        self._pool.close()
