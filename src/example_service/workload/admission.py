"""The lab's Fibonacci workload, and where each computation runs.

Cheap computations run inline on the event loop: handing them to a worker costs more than
computing them. Expensive ones go to worker threads (example_service.workload.threads), so the
event loop keeps answering probes and scrapes, and, with the compiled fib, which releases the
GIL, a pod uses every core it is given. Each computation carries a deadline that fib_until
itself enforces, so a runaway request stops burning CPU.
"""

from __future__ import annotations

import math
import os
import time

from example_service.workload.fibonacci import IMPLEMENTATION, Stopped, fib
from example_service.workload.threads import NoWorkerThread, WorkerDied, WorkerThreads

# Inline while fib(n) costs less than handing it to a thread and back: bench/handoff_cost.py
# measures the hand-off, and docs/performance.md ("The workload") sets it beside fib(n).
INLINE_MAX = 21 if IMPLEMENTATION == "compiled" else 12
# Below the event loop, so a probe or a scrape gets a core soon even with every core computing,
# but not so far below that the loop pre-empts a worker at each wake-up: each level's CPU per
# request and probe latency are compared in docs/performance.md ("The workload"), measured
# with `python -m bench --mode throughput` and `--mode healthz`.
WORKER_NICENESS = 5


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


# Why a computation is refused, the label of example_service_requests_shed_total.
QUEUE_DELAY = "queue_delay"  # it would wait longer than the queueing budget
QUEUE_FULL = "queue_full"  # as many computations wait as MAX_QUEUE bounds memory to
SHED_REASONS = (QUEUE_DELAY, QUEUE_FULL)
# Until a computation has been timed, how many may wait per worker: a few clients that start
# together are served, a burst at a NUM whose time nobody knows yet is not all admitted.
UNTIMED_QUEUE = 4
# The time of one computation is the mean of the latest ones, each weighing less as it ages,
# by half every PACE_HALF_LIFE seconds: at NUM=25 that is thousands of computations, so a
# single one pre-empted for long (a shared machine's hiccup) barely moves it, and one refusal
# too many, which invites clients that retry at once, whose refusals take the core from the
# worker, is not started by one; at fib(40), a few, so a lasting change shows within seconds.
# A mean, not a median: the event loop's batches of work make a few long intervals part of
# the pace, and a median would leave them out.
PACE_HALF_LIFE = 1.0


class Overloaded(Exception):
    """The computation would wait longer than the queueing budget, or as many wait as the
    memory bound holds."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"overloaded: {reason}")
        self.reason = reason


class WorkloadUnavailable(Exception):
    """No worker can take the computation: none could be started (a pids limit), the one
    computing it died, or the workload was closed at shutdown."""

    def __init__(self) -> None:
        super().__init__("workers unavailable, retry shortly")


class ComputationFailed(Exception):
    """fib raised something other than its deadline's TimeoutError: a bug, answered 500."""

    def __init__(self, n: int) -> None:
        super().__init__(f"computation of fib({n}) failed")
        self.n = n


class Workload:
    """Computes fib(n) for one n within a deadline, inline or in worker threads, admitting a
    computation only when it can expect to start within its queueing budget."""

    def __init__(
        self, n: int, workers: int, timeout: float, queue_per_worker: int, queue_delay: float
    ) -> None:
        self._n = n
        self._workers = workers
        self._timeout = timeout
        # Nothing admitted may time out waiting (settings check it; kept here too).
        self._budget = min(queue_delay, timeout)
        # Computations in the threads at once, at most: one running on each worker, the rest
        # waiting. A bound on memory, far above what the budget admits.
        self._limit = workers * (1 + queue_per_worker)
        # Decided once: n is the same for every request.
        self.inline = n <= INLINE_MAX
        self._threads = WorkerThreads(n, workers, WORKER_NICENESS)
        self._threads.on_answer = self._timed
        # The aged sums of the computations' times and of their count, when they were last
        # aged, and their mean: None until one is done.
        self._timed_seconds = 0.0
        self._timed_count = 0.0
        self._timed_at = 0.0
        self._seconds: float | None = None
        self._closed = False

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def seconds_per_computation(self) -> float | None:
        """The mean time of the latest computations, as their pace shows it: None until one
        is done."""
        return self._seconds

    def _timed(self, seconds: float) -> None:
        now = time.monotonic()
        weight = 0.5 ** ((now - self._timed_at) / PACE_HALF_LIFE)
        self._timed_seconds = self._timed_seconds * weight + seconds
        self._timed_count = self._timed_count * weight + 1
        self._timed_at = now
        self._seconds = self._timed_seconds / self._timed_count

    def compute_inline(self) -> int:
        """fib(n) on the event loop, for a workload whose n runs inline (see INLINE_MAX)."""
        return fib(self._n)

    def refusal(self) -> str | None:
        """Why a computation asked for now would be refused (a SHED_REASONS value), or None.

        Expected wait: the computations ahead of it times the time of one, over the workers;
        nothing when a worker is idle. Until one computation has been timed, UNTIMED_QUEUE
        may wait per worker. Cheap, and without an await, so that a refusal costs no more
        than a probe's answer.
        """
        ahead = self._threads.outstanding
        if ahead < self._workers:
            return None
        if ahead >= self._limit:
            return QUEUE_FULL
        seconds = self._seconds
        if seconds is None:
            return QUEUE_DELAY if ahead >= self._workers * (1 + UNTIMED_QUEUE) else None
        wait = ahead * seconds / self._workers
        if wait > self._budget or wait + seconds > self._timeout:
            return QUEUE_DELAY
        return None

    async def compute(self) -> int:
        """fib(n) in a worker thread, for a workload whose n does not run inline.

        Raises Overloaded at once, without waiting, when refusal() gives a reason: a
        computation admitted past its budget would only wait behind the others, and its
        client longest exactly when the service is overloaded.
        """
        if self._closed:
            raise WorkloadUnavailable
        reason = self.refusal()
        if reason is not None:
            raise Overloaded(reason)
        try:
            return await self._threads.compute(time.monotonic() + self._timeout)
        except TimeoutError:
            raise DeadlineExceeded(self._n, self._timeout) from None
        except (Stopped, NoWorkerThread, WorkerDied):
            raise WorkloadUnavailable from None
        except Exception as error:
            raise ComputationFailed(self._n) from error

    @property
    def worker_threads_died(self) -> int:
        return self._threads.died

    def close(self) -> None:
        """Stop the workers now: in-flight computations have had their shutdown timeout."""
        self._closed = True
        self._threads.close()
