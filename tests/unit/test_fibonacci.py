"""fib compiled and interpreted: the same numbers from the same naive recursion
(docs/contract.md, "The endpoint")."""

from __future__ import annotations

import signal
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
    for n in range(1, 28):
        expected = fibonacci.interpreted_fib(n)
        result = compiled.fib(n)
        assert type(result) is int
        assert result == expected, n


def test_past_64_bits_it_refuses_rather_than_wraps(compiled: ModuleType) -> None:
    with pytest.raises(OverflowError, match=r"fib\(94\) does not fit in 64 bits"):
        compiled.fib(94)


def test_the_compiled_one_makes_every_call_of_the_recursion(compiled: ModuleType) -> None:
    """fib(n) = 1 for n <= 2 is a leaf; fib(n) leaves and fib(n) - 1 inner calls."""
    for n in (1, 2, 3, 10, 25):
        before = compiled.calls()
        result = compiled.fib(n)
        assert compiled.calls() - before == 2 * result - 1, n


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
