"""Log lines to stdout in batches, written by a thread of their own.

A request only appends its line to a list in memory. A writer thread takes the whole list at
least every FLUSH_INTERVAL and writes it with one system call, so no request ever waits on the log
collector. When stdout blocks (a slow or stopped collector), lines wait in memory up to a
bound; past it they are dropped, counted for the metric, and one warning per episode says
how many once stdout takes lines again.

A stdout that is non-blocking (an O_NONBLOCK pipe, as some log collectors hand over) makes
the writer wait until it takes more (poll), as a blocking one would: a write the kernel took
in part is finished, never abandoned in the middle of a line. The writer waits rather than
clearing O_NONBLOCK, a flag of the pipe's open file that the collector and other processes
given the same pipe share.
"""

from __future__ import annotations

import logging
import os
import select
import threading

log = logging.getLogger(__name__)

# How long a line may wait in memory before it is written.
FLUSH_INTERVAL = 0.1
# Several flush intervals of access lines at the request rate bench/scorecard.py measures, so
# a collector's hiccup drops nothing; a bound on memory when stdout stops.
CAPACITY_BYTES = 2 * 1024 * 1024
# At exit, how long the last lines may take to reach a collector that is not reading.
CLOSE_TIMEOUT = 3.0


class LogOutput:
    """Lines (UTF-8, each ending in a newline) from any thread, written in order to one
    descriptor."""

    def __init__(
        self,
        fd: int = 1,
        *,
        flush_interval: float = FLUSH_INTERVAL,
        capacity_bytes: int = CAPACITY_BYTES,
    ) -> None:
        self._fd = fd
        self._flush_interval = flush_interval
        self._capacity = capacity_bytes
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.dropped = 0  # every line dropped since start, for the metric
        self._dropped_since_flush = 0
        self._episode_dropped = 0  # the writer thread's own
        self._waiting = threading.Event()  # lines are waiting to be written
        self._writable = select.poll()  # poll(2): no descriptor of its own to close
        self._writable.register(fd, select.POLLOUT)
        self._closing = threading.Event()
        self._writer = threading.Thread(target=self._run, name="log-output", daemon=True)
        self._writer.start()

    def write(self, line: bytes) -> None:
        # acquire() and release() rather than `with`: half the cost, paid once per request.
        self._lock.acquire()
        first = not self._pending
        # The writer's own line (one warning per episode of drops) is kept past the bound:
        # a warning that lines were dropped must not be dropped itself.
        if (
            self._pending_bytes + len(line) > self._capacity
            and threading.get_ident() != self._writer.ident
        ):
            self.dropped += 1
            self._dropped_since_flush += 1
        else:
            self._pending.append(line)
            self._pending_bytes += len(line)
        self._lock.release()
        if first:
            self._waiting.set()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write what is pending and stop the writer; give up after the timeout."""
        if not self._closing.is_set():
            self._closing.set()
            self._waiting.set()
            self._writer.join(timeout)

    def _run(self) -> None:
        # An idle service's writer sleeps: the first line of a batch wakes it, and the rest of
        # the batch has the flush interval to arrive. Within an episode of drops it keeps
        # flushing, to find the episode's end and report it.
        while True:
            if not self._episode_dropped:
                self._waiting.wait()
            if self._closing.wait(self._flush_interval):
                break
            self._waiting.clear()
            self._flush()
        self._flush()
        self._report_episode()
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            lines, self._pending, self._pending_bytes = self._pending, [], 0
            dropped, self._dropped_since_flush = self._dropped_since_flush, 0
        if lines:
            unwritten = self._write_all(b"".join(lines))
            if unwritten:
                with self._lock:
                    self.dropped += unwritten
                dropped += unwritten
        # An episode of drops lasts until a flush finds none: it is reported once, then.
        if dropped:
            self._episode_dropped += dropped
        else:
            self._report_episode()

    def _report_episode(self) -> None:
        if self._episode_dropped:
            log.warning(
                "stdout did not take log lines in time: lines dropped",
                extra={"dropped": self._episode_dropped},
            )
            self._episode_dropped = 0

    def _write_all(self, data: bytes) -> int:
        """Write every byte, in as many writes as the kernel takes them; the lines not
        written whole when writing fails (the collector is gone: EPIPE)."""
        view = memoryview(data)
        written = 0
        while written < len(data):
            try:
                written += os.write(self._fd, view[written:])
            except BlockingIOError:  # a non-blocking stdout, full: wait until it has room
                self._writable.poll()
            except OSError:
                return data.count(b"\n", written)
        return 0
