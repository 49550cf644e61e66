# cython: language_level=3
"""fib(n) by the naive recursion, compiled: the same calls as the Python version, in C.

Every call increments its computation's counter. That side effect is what keeps the C
compiler from turning the second recursive call into a loop or merging calls (gcc does both
to a pure version at -O2), so the compiled function makes exactly the 2 fib(n) - 1 calls of
the recursion, and it gives the counter to test that with. The counter lives in the
computation, not in a global: computations run in several threads at once, and a global
written by all of them would lose counts and bounce its cache line between cores. Each
computation's count is added to the module's total by a thread holding the GIL.

Two ways to compute:
- fib(n), run with the GIL held, for the event loop's inline computations; every 65,536
  calls (a fraction of a millisecond) it lets Python run its signal handlers, as the Python version does
  between bytecodes;
- fib_until(n, deadline, stop), for the worker threads: it releases the GIL while it
  computes, so threads compute in parallel, and every 65,536 calls it reads the clock
  against its deadline and its Stop flag, without the GIL.
"""

from libc.math cimport INFINITY
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cdef extern from "Python.h":
    # Declared without Cython's exception check: the recursion returns 0 to unwind, and the
    # exception a signal handler raised stays pending until fib() raises it.
    int _run_signal_handlers "PyErr_CheckSignals" ()

cdef extern from *:
    """
    /* Stop.set() writes from one thread while computations read in others: atomics make
       that well defined (a plain int could be read once and kept in a register). */
    static inline int example_service_load_flag(const int *flag) {
        return __atomic_load_n(flag, __ATOMIC_RELAXED);
    }
    static inline void example_service_raise_flag(int *flag) {
        __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
    }
    /* The recursion's rare branches, told to gcc: laid out of the way, they leave a call
       shorter by a couple of instructions (`make bench-profile` counts them). */
    #define example_service_unlikely(condition) __builtin_expect(!!(condition), 0)
    """
    int load_flag "example_service_load_flag" (const int *flag) nogil
    void raise_flag "example_service_raise_flag" (int *flag) nogil
    bint unlikely "example_service_unlikely" (bint condition) nogil

cdef enum:
    # fib(93) is the largest Fibonacci number below 2**64.
    LARGEST_EXACT_N = 93
    CHECK_MASK = 0xFFFF

cdef enum Outcome:
    RUNNING
    SIGNALLED
    EXPIRED
    STOPPED

cdef struct Computation

# Called through a pointer, which gcc cannot inline: inlined, the check's code would make the
# recursion too large for gcc to inline a few of its levels into each other, and each call
# would cost about twice as much (`make bench-profile` counts the instructions).
ctypedef bint (*Check)(Computation *c) noexcept nogil

cdef struct Computation:
    unsigned long long calls
    Check must_stop
    # fib_until's: seconds of CLOCK_MONOTONIC, and its Stop's flag.
    double deadline
    const int *stop
    Outcome outcome

cdef unsigned long long _calls = 0


cdef bint _signalled(Computation *c) noexcept nogil:
    # fib()'s check: its caller holds the GIL, so this only nests the GIL's state.
    with gil:
        if _run_signal_handlers() != 0:
            c.outcome = SIGNALLED
    return c.outcome != RUNNING


cdef bint _expired_or_stopped(Computation *c) noexcept nogil:
    cdef timespec now
    if load_flag(c.stop):
        c.outcome = STOPPED
    else:
        clock_gettime(CLOCK_MONOTONIC, &now)
        if now.tv_sec + now.tv_nsec * 1e-9 >= c.deadline:
            c.outcome = EXPIRED
    return c.outcome != RUNNING


cdef unsigned long long _fib(long n, Computation *c) noexcept nogil:
    # 0 is no Fibonacci number of this recursion: it only ever means "stop, unwind".
    cdef unsigned long long first, second
    c.calls += 1
    if unlikely(c.calls & CHECK_MASK == 0) and c.must_stop(c):
        return 0
    if n <= 2:
        return 1
    first = _fib(n - 1, c)
    if unlikely(first == 0):
        return 0
    second = _fib(n - 2, c)
    if unlikely(second == 0):
        return 0
    return first + second


cdef int _raise_pending() except -1:
    # A signal handler's exception is already set: returning -1 from a function declared
    # "except -1" is how Cython raises an exception that C code set.
    return -1


cdef int _check_exact(long n) except -1:
    if n > LARGEST_EXACT_N:
        raise OverflowError(f"fib({n}) does not fit in 64 bits")
    return 0


def fib(long n) -> int:
    """fib(n) holding the GIL, for the event loop's inline computations."""
    global _calls
    _check_exact(n)
    cdef Computation c = Computation(0, _signalled, INFINITY, NULL, RUNNING)
    cdef unsigned long long result = _fib(n, &c)
    _calls += c.calls
    if c.outcome == SIGNALLED:
        _raise_pending()
    return result


cdef class Stop:
    """A flag that ends, within one check interval, every fib_until given it, and makes any given
    it afterwards end at once. Set from any thread; never cleared."""

    cdef int _flag

    def set(self) -> None:
        raise_flag(&self._flag)

    def is_set(self) -> bool:
        return load_flag(&self._flag) != 0


class Stopped(Exception):
    """fib_until ended because its Stop was set."""


def fib_until(long n, double deadline, Stop stop not None) -> int:
    """fib(n) with the GIL released, for a worker thread: TimeoutError once deadline, a
    time.monotonic() time (CLOCK_MONOTONIC), has passed, Stopped once stop is set. Neither
    is checked more than every 65,536 calls (a fraction of a millisecond), and both before it starts: a
    computation that waited past its deadline never starts."""
    global _calls
    _check_exact(n)
    cdef Computation c = Computation(0, _expired_or_stopped, deadline, &stop._flag, RUNNING)
    cdef unsigned long long result = 0
    with nogil:
        if not _expired_or_stopped(&c):
            result = _fib(n, &c)
    # With the GIL held again: threads adding at once cannot lose counts.
    _calls += c.calls
    if c.outcome == EXPIRED:
        raise TimeoutError
    if c.outcome == STOPPED:
        raise Stopped
    return result


def calls() -> int:
    """Calls the recursion has made in this process so far, every thread's."""
    return _calls
