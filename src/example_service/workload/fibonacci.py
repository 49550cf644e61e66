"""fib(n), the lab's CPU load: compiled when the build could, else the same recursion in Python.

Both are the naive recursion on purpose: it exists to cost CPU, about 1.618 times more for
each step of n (docs/contract.md, "The endpoint"). The compiled one is many times faster
than CPython's (docs/performance.md, "The workload").

fib(n) is for the event loop's inline computations; fib_until(n, deadline, stop) for the
worker threads (example_service.workload.threads): it raises TimeoutError past its deadline and
Stopped once its Stop is set. Compiled, it releases the GIL, so threads compute in parallel;
in Python it holds it, and the threads take turns with the event loop.
"""

from __future__ import annotations

import threading
import time
from typing import Literal

__all__ = ["IMPLEMENTATION", "Stop", "Stopped", "fib", "fib_until", "interpreted_fib"]

# The Python fib_until reads the clock and its Stop every CHECK_MASK + 1 calls: often enough
# to stop soon after its deadline, rarely enough that the check costs next to nothing beside
# the recursion.
CHECK_MASK = 0xFFF


def interpreted_fib(n: int) -> int:
    if n <= 2:
        return 1
    return interpreted_fib(n - 1) + interpreted_fib(n - 2)


class InterpretedStopped(Exception):
    """interpreted_fib_until ended because its Stop was set."""


class _Interrupted(Exception):
    pass


def interpreted_fib_until(n: int, deadline: float, stop: threading.Event) -> int:
    """The compiled fib_until's contract in Python (the Stop is a threading.Event)."""
    calls = 0

    def check() -> None:
        if stop.is_set() or time.monotonic() >= deadline:
            raise _Interrupted

    def recurse(n: int) -> int:
        nonlocal calls
        calls += 1
        if calls & CHECK_MASK == 0:
            check()
        if n <= 2:
            return 1
        return recurse(n - 1) + recurse(n - 2)

    try:
        check()
        return recurse(n)
    except _Interrupted:
        if stop.is_set():
            raise InterpretedStopped from None
        raise TimeoutError from None


IMPLEMENTATION: Literal["compiled", "python"]
try:
    # Built by setup.py; a build without a C compiler skips it and leaves this fallback.
    from example_service.workload._fibonacci import Stop, Stopped, fib, fib_until
except ImportError:
    # The same interface in Python; mypy checks every caller against the compiled stubs.
    Stop = threading.Event  # type: ignore[assignment,misc]
    Stopped = InterpretedStopped  # type: ignore[assignment,misc]
    fib = interpreted_fib
    fib_until = interpreted_fib_until  # type: ignore[assignment]
    IMPLEMENTATION = "python"
else:
    IMPLEMENTATION = "compiled"
