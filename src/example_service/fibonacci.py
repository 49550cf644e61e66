"""fib(n), the lab's CPU load: compiled when the build could, else the same recursion in Python.

Both are the naive recursion on purpose: it exists to cost CPU, about 1.618 times more for
each step of n (docs/contract.md, "The endpoint"). The compiled one costs about 2 ns a call
here, CPython 50-80 ns (docs/performance.md, "The workload"). The
compiled module also has Pool, whose threads compute with the GIL released
(example_service.worker_threads); the Python fib holds it, and runs in worker processes.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["IMPLEMENTATION", "fib", "interpreted_fib"]


def interpreted_fib(n: int) -> int:
    if n <= 2:
        return 1
    return interpreted_fib(n - 1) + interpreted_fib(n - 2)


IMPLEMENTATION: Literal["compiled", "python"]
try:
    # Built by setup.py; a build without a C compiler skips it and leaves this fallback.
    from example_service._fibonacci import fib
except ImportError:
    fib = interpreted_fib
    IMPLEMENTATION = "python"
else:
    IMPLEMENTATION = "compiled"
