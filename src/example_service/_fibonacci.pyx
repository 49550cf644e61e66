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
  calls (about 0.1 ms) it lets Python run its signal handlers, as the Python version does
  between bytecodes;
- a Pool, whose threads wait for computations, compute them and post their results without
  ever taking the GIL (see Pool).
"""

from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from posix.unistd cimport close, read, write
from cpython.exc cimport PyErr_SetFromErrno

cdef extern from "Python.h":
    # Declared without Cython's exception check: the recursion returns 0 to unwind, and the
    # exception a signal handler raised stays pending until fib() raises it.
    int _run_signal_handlers "PyErr_CheckSignals" ()

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *mutex, const void *attributes)
    int pthread_mutex_destroy(pthread_mutex_t *mutex)
    int pthread_mutex_lock(pthread_mutex_t *mutex)
    int pthread_mutex_unlock(pthread_mutex_t *mutex)
    int pthread_cond_init(pthread_cond_t *condition, const void *attributes)
    int pthread_cond_destroy(pthread_cond_t *condition)
    int pthread_cond_wait(pthread_cond_t *condition, pthread_mutex_t *mutex)
    int pthread_cond_signal(pthread_cond_t *condition)
    int pthread_cond_broadcast(pthread_cond_t *condition)

cdef extern from "<sys/eventfd.h>" nogil:
    int eventfd(unsigned int initial, int flags)
    enum:
        EFD_NONBLOCK
        EFD_CLOEXEC

cdef extern from *:
    """
    /* Pool.stop() writes from one thread while computations read in others: atomics make
       that well defined (a plain int could be read once and kept in a register). */
    static inline int example_service_load_flag(const int *flag) {
        return __atomic_load_n(flag, __ATOMIC_RELAXED);
    }
    static inline void example_service_raise_flag(int *flag) {
        __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
    }
    /* The recursion's rare branches, told to gcc: laid out of the way, they leave a call
       2.2 instructions shorter (15.1 against 17.3 under callgrind), as fast as the global
       counter's was. */
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
# would cost twice as much (4.4 against 2.1 ns, measured).
ctypedef bint (*Check)(Computation *c) noexcept nogil

cdef struct Computation:
    unsigned long long calls
    Check must_stop
    # A pool's computations: seconds of CLOCK_MONOTONIC, and the pool's stop flag.
    double deadline
    const int *stop
    Outcome outcome

cdef struct Job:
    unsigned long long id
    double deadline

cdef struct Result:
    unsigned long long id
    unsigned long long value
    unsigned long long calls
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


cdef class Pool:
    """Computations of fib(n), each within its deadline, handed to threads that never take
    the GIL.

    Each thread, started by the caller, calls serve(), which waits for jobs, computes and
    posts results with the GIL released until the pool is stopped. submit() queues a job; a
    thread posting a result writes to the eventfd that fileno() gives, and drain() collects
    the results. A thread that took the GIL, to return from a Python queue and to wake the
    event loop, would wait for the loop to let go of it twice per computation, and the GIL
    would pass between them each time; this way the loop and the threads only wake each
    other (docs/design.md, "Under load").

    Jobs and results are kept in two rings of `capacity` entries, guarded by a mutex: at
    most `capacity` jobs are outstanding (submitted and not yet drained), and submit()
    refuses more. A computation reads CLOCK_MONOTONIC (time.monotonic's clock)
    against its deadline and the pool's stop flag every 65,536 calls (about 0.1 ms).
    """

    cdef long _n
    cdef Py_ssize_t _capacity
    cdef pthread_mutex_t _lock
    # Signalled for each job submitted, broadcast when stopped: the idle threads wait on it.
    cdef pthread_cond_t _work
    cdef bint _synchronised
    # Raised once by stop(); read by every computation as well as under the lock.
    cdef int _stop
    cdef int _eventfd
    cdef Job *_jobs
    cdef Py_ssize_t _first_job, _queued
    cdef Result *_results
    cdef Py_ssize_t _first_result, _posted
    # drain() copies the results out before it makes Python objects of them: making objects
    # can run a finalizer, which must not find the lock held.
    cdef Result *_drained
    cdef Py_ssize_t _outstanding, _serving

    def __cinit__(self, long n, Py_ssize_t capacity) -> None:
        self._eventfd = -1
        _check_exact(n)
        if capacity < 1:
            raise ValueError(f"a pool holds at least one job, not {capacity}")
        self._n = n
        self._capacity = capacity
        self._jobs = <Job *>malloc(capacity * sizeof(Job))
        self._results = <Result *>malloc(capacity * sizeof(Result))
        self._drained = <Result *>malloc(capacity * sizeof(Result))
        if self._jobs == NULL or self._results == NULL or self._drained == NULL:
            raise MemoryError
        pthread_mutex_init(&self._lock, NULL)
        pthread_cond_init(&self._work, NULL)
        self._synchronised = True
        self._eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self._eventfd < 0:
            PyErr_SetFromErrno(OSError)

    def __dealloc__(self) -> None:
        # No thread can be serving: each holds a reference to the pool while it does.
        self._release()

    cdef void _release(self) noexcept:
        free(self._jobs)
        free(self._results)
        free(self._drained)
        self._jobs = self._results = self._drained = NULL
        if self._synchronised:
            pthread_cond_destroy(&self._work)
            pthread_mutex_destroy(&self._lock)
            self._synchronised = False
        if self._eventfd >= 0:
            close(self._eventfd)
            self._eventfd = -1

    def fileno(self) -> int:
        """The eventfd, readable once a result is posted, until drain()."""
        if self._eventfd < 0:
            raise ValueError("the pool is closed")
        return self._eventfd

    def submit(self, unsigned long long job, double deadline) -> bool:
        """Queue fib(n) within deadline, a time.monotonic() time, as job: False, queueing
        nothing, when `capacity` jobs are outstanding."""
        if self._jobs == NULL:
            raise ValueError("the pool is closed")
        pthread_mutex_lock(&self._lock)
        if load_flag(&self._stop):
            pthread_mutex_unlock(&self._lock)
            raise ValueError("the pool is stopped")
        if self._outstanding == self._capacity:
            pthread_mutex_unlock(&self._lock)
            return False
        self._jobs[(self._first_job + self._queued) % self._capacity] = Job(job, deadline)
        self._queued += 1
        self._outstanding += 1
        pthread_mutex_unlock(&self._lock)
        # Once unlocked: a thread woken on another core would otherwise run only to wait
        # for the lock.
        pthread_cond_signal(&self._work)
        return True

    def serve(self) -> None:
        """Compute jobs, with the GIL released, until the pool is stopped; then answer the
        jobs still queued STOPPED. Called by each of the pool's threads."""
        if self._jobs == NULL:
            raise ValueError("the pool is closed")
        with nogil:
            self._serve()

    cdef void _serve(self) noexcept nogil:
        cdef Job job
        cdef Computation c
        cdef unsigned long long value
        cdef Py_ssize_t abandoned
        pthread_mutex_lock(&self._lock)
        self._serving += 1
        while True:
            while self._queued == 0 and not load_flag(&self._stop):
                pthread_cond_wait(&self._work, &self._lock)
            if load_flag(&self._stop):
                break
            job = self._jobs[self._first_job]
            self._first_job = (self._first_job + 1) % self._capacity
            self._queued -= 1
            pthread_mutex_unlock(&self._lock)
            c = Computation(0, _expired_or_stopped, job.deadline, &self._stop, RUNNING)
            value = 0
            # Checked once before starting too: a job that waited past its deadline never
            # starts.
            if not _expired_or_stopped(&c):
                value = _fib(self._n, &c)
            pthread_mutex_lock(&self._lock)
            self._post(Result(job.id, value, c.calls, c.outcome))
            pthread_mutex_unlock(&self._lock)
            self._signal()
            pthread_mutex_lock(&self._lock)
        abandoned = self._queued
        while self._queued > 0:
            self._post(Result(self._jobs[self._first_job].id, 0, 0, STOPPED))
            self._first_job = (self._first_job + 1) % self._capacity
            self._queued -= 1
        self._serving -= 1
        pthread_mutex_unlock(&self._lock)
        if abandoned:
            self._signal()

    cdef void _post(self, Result result) noexcept nogil:
        # Under the lock. Outstanding jobs number at most capacity, so there is room.
        self._results[(self._first_result + self._posted) % self._capacity] = result
        self._posted += 1

    cdef void _signal(self) noexcept nogil:
        # Once unlocked: the event loop, woken at a higher priority, would otherwise preempt
        # this thread on its core and wait for the lock it holds. Cannot fail: the counter
        # would have to reach 2**64 - 1 first.
        cdef unsigned long long one = 1
        write(self._eventfd, &one, sizeof(one))

    def drain(self) -> list:
        """The results posted since the last drain, as (job, answer): fib(n), TimeoutError
        for a job past its deadline, None for one the stop ended or never started. Adds
        their calls to the module's total."""
        global _calls
        cdef unsigned long long count
        cdef Py_ssize_t taken, index
        cdef Result result
        if self._results == NULL:
            return []
        # Emptied first: a result posted from here on writes to it again.
        read(self._eventfd, &count, sizeof(count))
        pthread_mutex_lock(&self._lock)
        taken = self._posted
        for index in range(taken):
            self._drained[index] = self._results[(self._first_result + index) % self._capacity]
        self._first_result = (self._first_result + taken) % self._capacity
        self._posted = 0
        self._outstanding -= taken
        pthread_mutex_unlock(&self._lock)
        answers = []
        for index in range(taken):
            result = self._drained[index]
            _calls += result.calls
            if result.outcome == EXPIRED:
                answers.append((result.id, TimeoutError()))
            elif result.outcome == STOPPED:
                answers.append((result.id, None))
            else:
                answers.append((result.id, result.value))
        return answers

    def stop(self) -> None:
        """End every computation within about 0.1 ms and every serve() after it: the jobs
        still queued are answered None."""
        if not self._synchronised:
            return
        pthread_mutex_lock(&self._lock)
        raise_flag(&self._stop)
        pthread_cond_broadcast(&self._work)
        pthread_mutex_unlock(&self._lock)

    def close(self) -> None:
        """Free the rings and close the eventfd, once every serve() has returned. Results
        not drained by then are lost."""
        if self._synchronised:
            pthread_mutex_lock(&self._lock)
            serving = self._serving
            pthread_mutex_unlock(&self._lock)
            if serving:
                raise RuntimeError(f"{serving} threads still serve the pool")
        self._release()


def calls() -> int:
    """Calls the recursion has made in this process so far, every thread's."""
    return _calls
