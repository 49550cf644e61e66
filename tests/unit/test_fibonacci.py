"""fib compiled and interpreted: the same numbers from the same naive recursion
(docs/contract.md, "The endpoint")."""

from __future__ import annotations

import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType, ModuleType
from typing import Any

import pytest
from support.compiler import c_compiler_present

from example_service import fibonacci


@pytest.fixture(scope="module")
def compiled() -> ModuleType:
    try:
        from example_service import _fibonacci
    except ImportError:
        if c_compiler_present():
            pytest.fail("a C compiler is here, yet the build left no compiled workload")
        pytest.skip("no C compiler here: the build installed the Python fallback alone")
    return _fibonacci


StartPool = Callable[..., Any]


def answers(pool: Any, count: int, timeout: float = 10) -> dict[int, Any]:
    """The next count answers of pool, by job, collected as the event loop does."""
    collected: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    while len(collected) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{len(collected)} of {count} answers after {timeout} s"
        select.select([pool.fileno()], [], [], remaining)
        collected.update(pool.drain())
    return collected


@pytest.fixture
def start_pool(compiled: ModuleType) -> Iterator[StartPool]:
    """Pools served by threads of this process, stopped and freed after the test."""
    started: list[tuple[Any, list[threading.Thread]]] = []

    def start(n: int, threads: int = 1, capacity: int = 8) -> Any:
        pool = compiled.Pool(n, capacity)
        serving = [threading.Thread(target=pool.serve) for _ in range(threads)]
        for thread in serving:
            thread.start()
        started.append((pool, serving))
        return pool

    yield start
    for pool, serving in started:
        pool.stop()
        for thread in serving:
            thread.join()
        pool.close()


def cpu_seconds(function: Callable[[int], int], n: int) -> float:
    """The least process CPU time of three runs: the machine is shared, CPU time is steady."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        function(n)
        best = min(best, time.process_time() - started)
    return best


def test_the_service_runs_the_compiled_one(compiled: ModuleType) -> None:
    assert fibonacci.IMPLEMENTATION == "compiled"
    assert fibonacci.fib is compiled.fib


def test_both_give_the_same_exact_numbers(compiled: ModuleType, start_pool: StartPool) -> None:
    for n in range(1, 28):
        expected = fibonacci.interpreted_fib(n)
        pool = start_pool(n)
        assert pool.submit(0, time.monotonic() + 60)
        for result in (compiled.fib(n), answers(pool, 1)[0]):
            assert type(result) is int
            assert result == expected, n


def test_past_64_bits_it_refuses_rather_than_wraps(compiled: ModuleType) -> None:
    with pytest.raises(OverflowError, match=r"fib\(94\) does not fit in 64 bits"):
        compiled.fib(94)
    with pytest.raises(OverflowError, match=r"fib\(94\) does not fit in 64 bits"):
        compiled.Pool(94, 1)


def test_the_compiled_one_makes_every_call_of_the_recursion(
    compiled: ModuleType, start_pool: StartPool
) -> None:
    """fib(n) = 1 for n <= 2 is a leaf; fib(n) leaves and fib(n) - 1 inner calls."""
    for n in (1, 2, 3, 10, 25):
        pool = start_pool(n)

        def in_the_pool(n: int, pool: Any = pool) -> int:
            assert pool.submit(0, time.monotonic() + 60)
            result: int = answers(pool, 1)[0]
            return result

        for function in (compiled.fib, in_the_pool):
            before = compiled.calls()
            result = function(n)
            assert compiled.calls() - before == 2 * result - 1, n


def test_threads_computing_at_once_count_every_call(
    compiled: ModuleType, start_pool: StartPool
) -> None:
    """Each computation counts its own calls: a counter shared by threads would lose some."""
    n, count = 32, 4
    pool = start_pool(n, threads=count, capacity=count)
    before = compiled.calls()
    for job in range(count):
        assert pool.submit(job, time.monotonic() + 60)
    results = answers(pool, count)
    assert list(results.values()) == [fibonacci.interpreted_fib(n)] * count
    assert compiled.calls() - before == count * (2 * results[0] - 1)


def test_its_cost_grows_like_the_naive_recursion(compiled: ModuleType) -> None:
    """Five steps of n cost 1.618**5, about 11 times more; memoised or iterative, about 1."""
    ratio = cpu_seconds(compiled.fib, 35) / cpu_seconds(compiled.fib, 30)
    assert 6 <= ratio <= 20, f"fib(35) costs {ratio:.1f} times fib(30)"


class Interrupted(Exception):
    pass


@pytest.fixture
def alarm_raises() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, handler)
    yield
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.usefixtures("alarm_raises")
def test_a_python_signal_handler_stops_the_compiled_one(compiled: ModuleType) -> None:
    """How the worker's deadline timer stops a computation: fib(45) would take seconds."""
    started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    with pytest.raises(Interrupted):
        compiled.fib(45)
    assert time.monotonic() - started < 1


def test_a_pool_stops_a_computation_at_its_deadline(start_pool: StartPool) -> None:
    """CLOCK_MONOTONIC, read every 65,536 calls (about 0.1 ms): fib(50) would take a minute."""
    pool = start_pool(50)
    started = time.monotonic()
    assert pool.submit(0, started + 0.05)
    [answer] = answers(pool, 1).values()
    assert isinstance(answer, TimeoutError)
    assert 0.05 <= time.monotonic() - started < 0.15


def test_a_job_past_its_deadline_does_not_start(
    compiled: ModuleType, start_pool: StartPool
) -> None:
    pool = start_pool(30)
    before = compiled.calls()
    assert pool.submit(0, time.monotonic())
    assert isinstance(answers(pool, 1)[0], TimeoutError)
    assert compiled.calls() == before


def test_a_pool_refuses_jobs_past_its_capacity(start_pool: StartPool) -> None:
    """Outstanding until drained: computing, queued, or answered and not yet collected."""
    pool = start_pool(50, capacity=2)
    deadline = time.monotonic() + 0.2
    assert pool.submit(0, deadline)
    assert pool.submit(1, deadline)
    assert not pool.submit(2, deadline)
    assert set(answers(pool, 2)) == {0, 1}
    assert pool.submit(2, time.monotonic())


def test_stopping_a_pool_ends_its_computations_and_answers_its_queue(
    compiled: ModuleType,
) -> None:
    pool = compiled.Pool(50, 4)
    threads = [threading.Thread(target=pool.serve) for _ in range(2)]
    for thread in threads:
        thread.start()
    for job in range(4):
        assert pool.submit(job, time.monotonic() + 60)
    # A moment of computation to interrupt, not a wait for a condition.
    time.sleep(0.05)
    with pytest.raises(RuntimeError, match="2 threads still serve the pool"):
        pool.close()
    stopped = time.monotonic()
    pool.stop()
    for thread in threads:
        thread.join(5)
    assert time.monotonic() - stopped < 0.1
    # Two computing, two queued: every one answered.
    assert sorted(pool.drain()) == [(job, None) for job in range(4)]
    with pytest.raises(ValueError, match="the pool is stopped"):
        pool.submit(4, time.monotonic() + 60)
    pool.close()
    pool.close()
    with pytest.raises(ValueError, match="the pool is closed"):
        pool.fileno()


@pytest.fixture
def switch_interval() -> Iterator[None]:
    previous = sys.getswitchinterval()
    # Long enough that a thread wanting the GIL would not get it while the test holds it.
    sys.setswitchinterval(60)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("switch_interval")
def test_a_pool_thread_waits_computes_and_answers_without_the_gil(
    start_pool: StartPool,
) -> None:
    count = 20
    pool = start_pool(20, capacity=count)
    assert pool.submit(0, time.monotonic() + 60)
    answers(pool, 1)
    # The thread waits for jobs again; this thread now keeps the GIL (time.monotonic
    # does not release it) while the other is woken, computes fib(20) and posts, each time.
    for job in range(count):
        assert pool.submit(job, time.monotonic() + 60)
    held = time.monotonic() + 0.5
    while time.monotonic() < held:
        pass
    assert len(pool.drain()) == count
