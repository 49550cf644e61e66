"""fib compiled and interpreted: the same numbers from the same naive recursion
(docs/contract.md, "The endpoint")."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType, ModuleType
from typing import Any

import pytest
from support.compiler import c_compiler_present

from example_service.workload import fibonacci


@pytest.fixture(scope="module")
def compiled() -> ModuleType:
    try:
        from example_service.workload import _fibonacci
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


def until(function: Callable[[int, float, Any], int], stop: Any) -> Callable[[int], int]:
    """fib_until with a deadline far away."""
    return lambda n: function(n, time.monotonic() + 60, stop)


def test_every_one_gives_the_same_exact_numbers(compiled: ModuleType) -> None:
    functions = [
        compiled.fib,
        until(compiled.fib_until, compiled.Stop()),
        until(fibonacci.interpreted_fib_until, threading.Event()),
    ]
    for n in range(1, 28):
        expected = fibonacci.interpreted_fib(n)
        for function in functions:
            result = function(n)
            assert type(result) is int
            assert result == expected, n


def test_past_64_bits_it_refuses_rather_than_wraps(compiled: ModuleType) -> None:
    with pytest.raises(OverflowError, match=r"fib\(94\) does not fit in 64 bits"):
        compiled.fib(94)
    with pytest.raises(OverflowError, match=r"fib\(94\) does not fit in 64 bits"):
        compiled.fib_until(94, time.monotonic() + 60, compiled.Stop())


def test_the_compiled_one_makes_every_call_of_the_recursion(compiled: ModuleType) -> None:
    """fib(n) = 1 for n <= 2 is a leaf; fib(n) leaves and fib(n) - 1 inner calls."""
    for n in (1, 2, 3, 10, 25):
        for function in (compiled.fib, until(compiled.fib_until, compiled.Stop())):
            before = compiled.calls()
            result = function(n)
            assert compiled.calls() - before == 2 * result - 1, n


def test_threads_computing_at_once_count_every_call(compiled: ModuleType) -> None:
    """Each computation counts its own calls: a counter shared by threads would lose some."""
    n, count = 32, 4
    results: list[int] = []
    compute = until(compiled.fib_until, compiled.Stop())
    threads = [threading.Thread(target=lambda: results.append(compute(n))) for _ in range(count)]
    before = compiled.calls()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
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


@pytest.fixture(params=["compiled", "python"])
def fib_until(request: pytest.FixtureRequest, compiled: ModuleType) -> tuple[Any, Any, Any]:
    """fib_until, its Stop and what it raises once stopped, compiled and in Python."""
    if request.param == "compiled":
        return compiled.fib_until, compiled.Stop, compiled.Stopped
    return fibonacci.interpreted_fib_until, threading.Event, fibonacci.InterpretedStopped


def test_fib_until_stops_at_its_deadline(fib_until: tuple[Any, Any, Any]) -> None:
    """Checked every few thousand calls: fib(50) would take a minute compiled, days in Python,
    so an end within a few deadlines is the check's doing."""
    function, stop, _ = fib_until
    deadline = 0.2
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        function(50, started + deadline, stop())
    # Never before the deadline: it reads the same clock.
    assert deadline <= time.monotonic() - started < 5 * deadline


def test_fib_until_past_its_deadline_does_not_start(compiled: ModuleType) -> None:
    before = compiled.calls()
    with pytest.raises(TimeoutError):
        compiled.fib_until(30, time.monotonic(), compiled.Stop())
    assert compiled.calls() == before


def test_fib_until_ends_once_its_stop_is_set(fib_until: tuple[Any, Any, Any]) -> None:
    function, new_stop, stopped_error = fib_until
    stop = new_stop()
    outcomes: list[BaseException] = []

    def compute() -> None:
        try:
            function(50, time.monotonic() + 60, stop)
        except BaseException as error:  # the test looks at what it was
            outcomes.append(error)

    thread = threading.Thread(target=compute)
    thread.start()
    # A moment of computation to interrupt, not a wait for a condition.
    time.sleep(0.05)
    stopped = time.monotonic()
    stop.set()
    thread.join(5)
    # Left alone, fib(50) would compute for a minute compiled.
    assert time.monotonic() - stopped < 1
    assert [type(outcome) for outcome in outcomes] == [stopped_error]
    assert stop.is_set()
    # And any computation given it afterwards ends at once.
    with pytest.raises(stopped_error):
        function(50, time.monotonic() + 60, stop)


@pytest.mark.parametrize(("n", "value"), [(1, 1), (2, 1), (3, 2), (10, 55), (20, 6765)])
def test_fib(n: int, value: int) -> None:
    assert fibonacci.fib(n) == value
