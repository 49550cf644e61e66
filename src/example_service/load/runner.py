"""The request loop: paced (open loop) or with a fixed number of senders (closed loop).

Either way a fixed set of sender tasks sends the requests, one per connection the plan
allows: no task is created per request, only the futures that carry it. In the open loop a
pacer hands request i to an idle sender at its scheduled time, start + i/rate, and the
request's latency is counted from that time, not from when it was sent: when no sender is
free (the target is slow) or the pacer wakes late (the tool is busy), the wait is part of
the latency the target's users would see, instead of a silently lower rate (coordinated
omission). The pacer sleeps on an alarm precise to microseconds (alarm.py): on the event
loop's millisecond timers each request would start up to a millisecond or two late, which
was most of an idle machine's latency.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from example_service.load.alarm import Alarm, MakeAlarm, alarm
from example_service.load.limits import Limits, Pacing
from example_service.load.stats import Outcome, Recorder

# Sends one request to the plan's URL of that index: its HTTP status, or how it failed.
Send = Callable[[int], Awaitable[int | Outcome]]
# A sender waits for one of these: the target and scheduled start of its next request
# (nanoseconds, time.perf_counter_ns), or None when the run has stopped.
Assignment = tuple[int, int] | None


class StopReason(StrEnum):
    COUNT = "count"
    DURATION = "duration"
    INTERRUPT = "interrupt"


@dataclass(frozen=True)
class Plan:
    """A checked run: its targets have passed the loopback rule, its limits are finite."""

    urls: tuple[str, ...]
    limits: Limits
    pacing: Pacing
    timeout: float


@dataclass(frozen=True)
class Times:
    started_at: float  # Unix time, for the pushed timestamp
    finished_at: float
    elapsed: float  # monotonic seconds from the first request to the last answer
    stopped_by: StopReason
    # Open loop: requests whose scheduled start came before sending stopped (a slow
    # target or a stalled tool can leave some of them unsent); None in the closed loop.
    due: int | None
    cpu_seconds: float  # the whole process, every thread (the client's network thread too)
    loop_cpu_seconds: float  # the event loop's thread: pacing, counting, the display


class LoadRun:
    """One run of a plan, recording into a Recorder; interrupt() stops it from a signal."""

    def __init__(self, plan: Plan, recorder: Recorder, make_alarm: MakeAlarm = alarm) -> None:
        """make_alarm: what the open loop's pacer sleeps on (the bench compares them)."""
        self.plan = plan
        self.recorder = recorder
        self._make_alarm = make_alarm
        self.stopped_by: StopReason | None = None
        self.done = False
        self._interrupts = 0
        self._start_ns = 0
        self._end_ns = 0
        self._stop_ns = 0
        self._next_target = 0
        self._senders: list[asyncio.Task[None]] = []
        self._idle: deque[asyncio.Future[Assignment]] = deque()
        # What the pacer waits on (the next scheduled start, or a free sender when
        # waiting_for_slot); a signal resolves it early so the run stops at once.
        self._pacer_wait: asyncio.Future[None] | None = None
        self._waiting_for_slot = False
        self._pacing = False  # while True, idle open-loop senders wait for assignments

    @property
    def elapsed(self) -> float:
        """Seconds since the first request; frozen once the last answer is in."""
        if not self._start_ns:
            return 0.0
        return ((self._end_ns or time.perf_counter_ns()) - self._start_ns) / 1e9

    @property
    def draining(self) -> bool:
        """No new requests start; those in flight are being waited for."""
        return self.stopped_by is not None

    def interrupt(self) -> None:
        """First call: send nothing more and let the requests in flight answer (each is
        bounded by the timeout). Second call: abandon them too, counted as cancelled."""
        self._interrupts += 1
        self._stop(StopReason.INTERRUPT)
        if self._interrupts > 1:
            for sender in self._senders:
                sender.cancel()

    def _stop(self, reason: StopReason) -> None:
        if self.stopped_by is None:
            self.stopped_by = reason
            self._stop_ns = time.perf_counter_ns()
        self._wake_pacer()

    def _limit_reached(self) -> bool:
        """Whether the closed loop must stop starting requests; records why the first time.
        (The open loop's pacer stops on its schedule instead.)"""
        if self.stopped_by is not None:
            return True
        limits = self.plan.limits
        if limits.count is not None and self.recorder.sent >= limits.count:
            self._stop(StopReason.COUNT)
        elif limits.duration is not None and self.elapsed >= limits.duration:
            self._stop(StopReason.DURATION)
        return self.stopped_by is not None

    def _target(self) -> int:
        """The plan's URLs in turn."""
        target = self._next_target
        self._next_target = (target + 1) % len(self.plan.urls)
        return target

    async def _request(self, send: Send, target: int, began_ns: int) -> None:
        recorder = self.recorder
        recorder.started(target)
        try:
            result = await send(target)
        except asyncio.CancelledError:
            recorder.failed_with(Outcome.CANCELLED)
            raise
        if isinstance(result, Outcome):
            recorder.failed_with(result)
        else:
            recorder.answered(target, result, time.perf_counter_ns() - began_ns)

    async def _closed_sender(self, send: Send) -> None:
        while not self._limit_reached():
            await self._request(send, self._target(), time.perf_counter_ns())

    async def _open_sender(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        while self._pacing:
            assignment: asyncio.Future[Assignment] = loop.create_future()
            self._idle.append(assignment)
            if self._waiting_for_slot:
                self._wake_pacer()
            given = await assignment
            if given is None:
                return
            await self._request(send, *given)

    async def _wait(self, alarm: Alarm, until_ns: int | None) -> None:
        """Until until_ns (None: until woken), a sender is free, or the run stops.

        Woken early, the alarm may still ring later: the pacer's next wait sets it again,
        and a ring meanwhile only makes the pacer look at its schedule once more.
        """
        self._pacer_wait = asyncio.get_running_loop().create_future()
        alarm.set(until_ns)
        try:
            await self._pacer_wait
        finally:
            self._pacer_wait = None

    def _wake_pacer(self) -> None:
        if self._pacer_wait is not None and not self._pacer_wait.done():
            self._pacer_wait.set_result(None)

    async def _pace(self, rate: float, alarm: Alarm) -> None:
        """Hand request i to an idle sender at start + i/rate, or as soon as one is free.

        Every request due before the run's duration ends is sent, however late the tool
        wakes; only a target holding every connection until the end leaves some unsent.
        """
        interval_ns = 1e9 / rate
        count, duration = self.plan.limits.count, self.plan.limits.duration
        end_ns = None if duration is None else self._start_ns + round(duration * 1e9)
        issued, waited = 0, False
        slot_freed_ns = 0  # when the pacer last got a sender after waiting for one
        while self.stopped_by is None:
            if count is not None and issued >= count:
                self._stop(StopReason.COUNT)
                break
            due_ns = self._start_ns + round(issued * interval_ns)
            now_ns = time.perf_counter_ns()
            if end_ns is not None and (due_ns >= end_ns or (not self._idle and now_ns >= end_ns)):
                if now_ns < end_ns:  # nothing more is due: the run ends on time all the same
                    await self._wait(alarm, end_ns)
                    continue
                self._stop(StopReason.DURATION)
                break
            if due_ns > now_ns:
                await self._wait(alarm, due_ns)
            elif not self._idle:
                # Every connection is busy: the target holds them all. This request's
                # latency runs from its due time, so the wait counts against the target.
                if not waited:
                    self.recorder.waited_for_slot += 1
                    waited = True
                self._waiting_for_slot = True
                await self._wait(alarm, end_ns)
                self._waiting_for_slot = False
                slot_freed_ns = time.perf_counter_ns()
            else:
                if not waited:
                    # A sender was free: any delay past the due time, or past the end of
                    # the target's hold on every sender, is the tool's own.
                    self.recorder.lag.record(time.perf_counter_ns() - max(due_ns, slot_freed_ns))
                self._idle.popleft().set_result((self._target(), due_ns))
                issued, waited = issued + 1, False

    def _due(self) -> int | None:
        """Requests scheduled before sending stopped (open loop only)."""
        rate, limits = self.plan.pacing.rate, self.plan.limits
        if rate is None:
            return None
        if self.stopped_by is StopReason.COUNT and limits.count is not None:
            return limits.count  # all of them, each sent when due
        sending = (self._stop_ns - self._start_ns) / 1e9
        if limits.duration is not None:
            sending = min(sending, limits.duration)
        due = math.ceil(sending * rate)
        return due if limits.count is None else min(due, limits.count)

    async def run(self, send: Send) -> Times:
        started_at = time.time()
        cpu, loop_cpu = time.process_time(), time.thread_time()
        rate = self.plan.pacing.rate
        sender = self._closed_sender if rate is None else self._open_sender
        self._pacing = rate is not None
        self._senders = [
            asyncio.create_task(sender(send)) for _ in range(self.plan.pacing.connections)
        ]
        if rate is None:
            self._start_ns = time.perf_counter_ns()
        else:
            pacer_alarm = self._make_alarm(asyncio.get_running_loop(), self._wake_pacer)
            try:
                # The schedule starts once the senders wait in line, not while they start.
                await asyncio.sleep(0)
                self._start_ns = time.perf_counter_ns()
                await self._pace(rate, pacer_alarm)
            finally:
                pacer_alarm.close()
                self._pacing = False
                # However the pacer ended, no sender may stay waiting for an assignment;
                # a cancelled sender's has been cancelled with it.
                for assignment in self._idle:
                    if not assignment.done():
                        assignment.set_result(None)
                self._idle.clear()
        await asyncio.gather(*self._senders, return_exceptions=True)
        self._end_ns = time.perf_counter_ns()
        self.done = True
        # Every way out of the loops sets stopped_by; INTERRUPT covers a cancelled sender.
        return Times(
            started_at=started_at,
            finished_at=time.time(),
            elapsed=self.elapsed,
            stopped_by=self.stopped_by or StopReason.INTERRUPT,
            due=self._due(),
            cpu_seconds=time.process_time() - cpu,
            loop_cpu_seconds=time.thread_time() - loop_cpu,
        )
