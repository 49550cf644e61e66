# cython: language_level=3
"""fib(n) by the naive recursion, compiled: the same calls as the Python version, in C.

Every call increments a counter. That side effect is what keeps the C compiler from turning
the second recursive call into a loop or merging calls (gcc does both to a pure version at
-O2), so the compiled function makes exactly the 2 fib(n) - 1 calls of the recursion, and it
gives the counter to test that with. Every 65,536 calls (about 0.1 ms) the function lets
Python run its signal handlers, which is how the worker's deadline timer stops it.
"""

from cpython.exc cimport PyErr_CheckSignals

cdef enum:
    # fib(93) is the largest Fibonacci number below 2**64.
    LARGEST_EXACT_N = 93
    SIGNAL_CHECK_MASK = 0xFFFF

cdef unsigned long long _calls = 0


cdef unsigned long long _fib(long n) except 0:
    # 0 is no Fibonacci number of this recursion: it only ever means an exception is set.
    global _calls
    _calls += 1
    if _calls & SIGNAL_CHECK_MASK == 0:
        PyErr_CheckSignals()
    if n <= 2:
        return 1
    return _fib(n - 1) + _fib(n - 2)


def fib(long n) -> int:
    if n > LARGEST_EXACT_N:
        raise OverflowError(f"fib({n}) does not fit in 64 bits")
    return _fib(n)


def calls() -> int:
    """Calls the recursion has made in this process so far."""
    return _calls
