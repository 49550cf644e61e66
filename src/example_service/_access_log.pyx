# cython: language_level=3, cdivision=True
"""The access line built in C: the same line as access_log.py builds in Python.

Built in Python (bytecode, a format string parsed per line, a few objects), an access line
adds 24% to a request's user-space instructions; here it is a handful of copies into one
buffer, and the line adds 12%, about 7% of the request's CPU (README, "Logs"). The text
itself comes from access_line.py, shared with the Python builder.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.math cimport rint
from libc.string cimport memcpy
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

from example_service import access_line

cdef bytes CLIENT = access_line.CLIENT
cdef bytes END = access_line.END
cdef frozenset KEPT_METHODS = access_line.KEPT_METHODS

cdef enum:
    # A longer line (a method or client of hundreds of bytes) is left to the Python builder.
    BUFFER_SIZE = 1024


cdef inline char* append(char* at, bytes part) noexcept:
    memcpy(at, PyBytes_AS_STRING(part), PyBytes_GET_SIZE(part))
    return at + PyBytes_GET_SIZE(part)


cdef inline char* digits(char* at, long long number, int width) noexcept:
    """number in decimal, zero-padded to width (number >= 0; snprintf costs five times this)."""
    cdef char reversed_digits[20]
    cdef int count = 0
    while True:
        reversed_digits[count] = c'0' + number % 10
        count += 1
        number //= 10
        if number == 0 and count >= width:
            break
    while count:
        count -= 1
        at[0] = reversed_digits[count]
        at += 1
    return at


cdef inline bint plain(const char* text, Py_ssize_t size) noexcept:
    """No character that JSON would escape: the usual client, "address:port"."""
    cdef Py_ssize_t i
    cdef unsigned char c
    for i in range(size):
        c = <unsigned char>text[i]
        if c < 0x20 or c == b'"' or c == b'\\' or c >= 0x7F:
            return False
    return True


cdef class AccessLog:
    cdef object _write
    cdef object _interpreted
    cdef long _second
    cdef bytes _start
    cdef dict _middles

    def __init__(self, output):
        # access_log.py imports this module last, once its own builder is defined.
        from example_service.access_log import InterpretedAccessLog

        self._write = output.write
        self._interpreted = InterpretedAccessLog(output)  # for the rare line too long here
        self._second = -1
        self._start = b""
        self._middles = {}

    def record(self, scope, str route, int status, double seconds):
        cdef timespec now
        cdef char buffer[BUFFER_SIZE]
        cdef char* at
        cdef const char* client
        cdef Py_ssize_t client_size
        cdef long long microseconds
        cdef int fraction, millisecond
        clock_gettime(CLOCK_REALTIME, &now)
        if now.tv_sec != self._second:
            self._start = access_line.start(now.tv_sec)
            self._second = now.tv_sec
        millisecond = now.tv_nsec // 1000000
        method = scope.method
        key = (method, route, status)
        middle = self._middles.get(key)
        if middle is None:
            middle = access_line.middle(method, route, status)
            if method in KEPT_METHODS:
                self._middles[key] = middle
        client_text = scope.client
        client = PyUnicode_AsUTF8AndSize(client_text, &client_size)
        quoted_client = None
        if not plain(client, client_size):
            quoted_client = access_line.quoted(client_text)
            client_size = PyBytes_GET_SIZE(quoted_client) - 2
        if (
            PyBytes_GET_SIZE(self._start) + PyBytes_GET_SIZE(middle) + client_size + 64
            > BUFFER_SIZE
        ):
            self._interpreted.record(scope, route, status, seconds)
            return
        at = append(buffer, self._start)
        at = digits(at, millisecond, 3)
        at = append(at, middle)
        # round() in Python rounds half to even; so does rint() in the default rounding mode.
        microseconds = <long long>rint(seconds * 1e6)
        at = digits(at, microseconds // 1000, 1)
        at[0] = b'.'
        at += 1
        # As repr() writes the fraction: its digits without trailing zeros, at least one.
        fraction = microseconds % 1000
        if fraction == 0:
            at = digits(at, 0, 1)
        elif fraction % 10:
            at = digits(at, fraction, 3)
        elif fraction % 100:
            at = digits(at, fraction // 10, 2)
        else:
            at = digits(at, fraction // 100, 1)
        at = append(at, CLIENT)
        if quoted_client is None:
            at[0] = b'"'
            memcpy(at + 1, client, client_size)
            at[client_size + 1] = b'"'
            at += client_size + 2
        else:
            at = append(at, quoted_client)
        at = append(at, END)
        self._write(PyBytes_FromStringAndSize(buffer, at - buffer))
