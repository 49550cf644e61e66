"""fib compiled and interpreted: the same numbers from the same naive recursion
(docs/contract.md, "The endpoint")."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType, ModuleType

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


def test_both_give_the_same_exact_numbers(compiled: ModuleType) -> None:
    stop = compiled.Stop()
    for n in range(1, 28):
        expected = fibonacci.interpreted_fib(n)
        for result in (compiled.fib(n), compiled.fib_until(n, time.monotonic() + 60, stop)):
            assert type(result) is int
            assert result == expected, n


def test_past_64_bits_it_refuses_rather_than_wraps(compiled: ModuleType) -> None:
    with pytest.raises(OverflowError, match=r"fib\(94\) does not fit in 64 bits"):
        compiled.fib(94)


def test_the_compiled_one_makes_every_call_of_the_recursion(compiled: ModuleType) -> None:
    """fib(n) = 1 for n <= 2 is a leaf; fib(n) leaves and fib(n) - 1 inner calls."""
    stop = compiled.Stop()
    for n in (1, 2, 3, 10, 25):
        for function in (
            compiled.fib,
            lambda n: compiled.fib_until(n, time.monotonic() + 60, stop),
        ):
            before = compiled.calls()
            result = function(n)
            assert compiled.calls() - before == 2 * result - 1, n


def test_threads_computing_at_once_count_every_call(compiled: ModuleType) -> None:
    """Each computation counts its own calls: a counter shared by threads would lose some."""
    n, count = 32, 4
    stop, results = compiled.Stop(), []
    deadline = time.monotonic() + 60
    threads = [
        threading.Thread(target=lambda: results.append(compiled.fib_until(n, deadline, stop)))
        for _ in range(count)
    ]
    before = compiled.calls()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [fibonacci.interpreted_fib(n)] * count
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


def test_fib_until_stops_at_its_deadline(compiled: ModuleType) -> None:
    """CLOCK_MONOTONIC, read every 65,536 calls (about 0.1 ms): fib(50) would take a minute."""
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        compiled.fib_until(50, started + 0.05, compiled.Stop())
    assert 0.05 <= time.monotonic() - started < 0.15


def test_fib_until_past_its_deadline_does_not_start(compiled: ModuleType) -> None:
    before = compiled.calls()
    with pytest.raises(TimeoutError):
        compiled.fib_until(30, time.monotonic(), compiled.Stop())
    assert compiled.calls() == before


def test_a_stop_set_by_another_thread_ends_the_computation(compiled: ModuleType) -> None:
    stop, results = compiled.Stop(), []
    computing = threading.Thread(
        target=lambda: results.append(compiled.fib_until(50, time.monotonic() + 60, stop))
    )
    computing.start()
    # Released, the GIL lets this thread run while the other computes.
    time.sleep(0.05)  # a moment of computation to interrupt, not a wait for a condition
    stopped = time.monotonic()
    stop.set()
    computing.join(5)
    assert time.monotonic() - stopped < 0.1
    assert results == [None]
    # A stop is for good: a later computation given it ends before it starts.
    assert compiled.fib_until(30, time.monotonic() + 60, stop) is None
