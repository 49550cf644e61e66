"""Waking the event loop at a given moment to within microseconds, not milliseconds.

Event loops time their waits in whole milliseconds (epoll_wait's timeout, libuv's clock), so
a pacer that sleeps on the loop's timers starts each request up to a millisecond or two
after it is due, more than the service's whole answer (bench/open_loop_pacer.py measures
both pacers; docs/load.md). On Linux a timerfd is a kernel timer with nanosecond resolution
that the loop watches like any socket, so the loop's own epoll_wait returns when it expires:
no thread to hand over to, no spinning, one wake-up per request. Elsewhere (or where timerfd
is refused) the loop's timer is the fallback, rounded up so that it never fires early.
"""

from __future__ import annotations

import asyncio
import ctypes
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Protocol

NS = 1_000_000_000
LOOP_TIMER_RESOLUTION = 1000  # per second: what epoll_wait and libuv count in


class Alarm(Protocol):
    """Calls its callback on the loop once perf_counter_ns() has reached the time set."""

    def set(self, at_ns: int | None) -> None:
        """Ring at at_ns (perf_counter_ns), replacing any earlier setting; None: never."""

    def close(self) -> None: ...


MakeAlarm = Callable[[asyncio.AbstractEventLoop, Callable[[], None]], Alarm]


def loop_timer_seconds(ns: int) -> float:
    """A wait of ns nanoseconds as a loop timer's seconds, rounded up to its resolution:
    rounded down (uvloop does), a short wait would wake at once and spin until due."""
    return math.ceil(ns * LOOP_TIMER_RESOLUTION / NS) / LOOP_TIMER_RESOLUTION


class LoopTimerAlarm:
    """The event loop's own timer: portable, but up to a millisecond or two late."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._timer: asyncio.TimerHandle | None = None
        self._at_ns = 0

    def set(self, at_ns: int | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if at_ns is not None:
            self._at_ns = at_ns
            wait = loop_timer_seconds(max(0, at_ns - time.perf_counter_ns()))
            self._timer = self._loop.call_later(wait, self._ring)

    def _ring(self) -> None:
        # libuv counts from the start of the loop's iteration, truncated to the
        # millisecond, so its timer can expire before the time asked for.
        if time.perf_counter_ns() < self._at_ns:
            self.set(self._at_ns)
        else:
            self._timer = None
            self._callback()

    def close(self) -> None:
        self.set(None)


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


_CLOCK_MONOTONIC = 1  # the clock of perf_counter_ns on Linux, though only delays are passed


class TimerfdAlarm:
    """A Linux timerfd watched by the loop: it rings within microseconds of its time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        # Python 3.13 has os.timerfd_create; before it, two libc calls through ctypes.
        self._libc = ctypes.CDLL(None, use_errno=True)
        # The kernel defines TFD_NONBLOCK and TFD_CLOEXEC as O_NONBLOCK and O_CLOEXEC.
        fd = self._libc.timerfd_create(_CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            error = ctypes.get_errno()
            raise OSError(error, f"timerfd_create: {os.strerror(error)}")
        self._fd: int = fd
        self._loop = loop
        self._callback = callback
        self._spec = _Itimerspec()
        loop.add_reader(fd, self._ring)

    def set(self, at_ns: int | None) -> None:
        # A relative setting keeps the alarm on perf_counter_ns whatever clock that is; the
        # kernel counts from after the reading, so the alarm can be late by the call's
        # microsecond, never early. An it_value of zero disarms, hence at least 1 ns.
        delay = 0 if at_ns is None else max(1, at_ns - time.perf_counter_ns())
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(delay, NS)
        if self._libc.timerfd_settime(self._fd, 0, ctypes.byref(self._spec), None) < 0:
            error = ctypes.get_errno()
            raise OSError(error, f"timerfd_settime: {os.strerror(error)}")

    def _ring(self) -> None:
        try:
            os.read(self._fd, 8)  # the count of expirations; reading it clears the readiness
        except BlockingIOError:
            return  # set() again after it expired, before the loop got here: not due now
        self._callback()

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)


def alarm(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> Alarm:
    """The most precise alarm this platform allows."""
    if sys.platform == "linux":
        try:
            return TimerfdAlarm(loop, callback)
        except OSError:  # a sandbox that refuses timerfd: millisecond timers still work
            pass
    return LoopTimerAlarm(loop, callback)
