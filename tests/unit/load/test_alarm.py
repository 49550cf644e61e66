"""The open loop's alarm on real event loops (asyncio's and uvloop, which the command runs):
never early, set again replaces, None disarms, and on Linux not rounded to a millisecond."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from example_service.load.alarm import LoopTimerAlarm, MakeAlarm, alarm, loop_timer_seconds

Run = Callable[[Coroutine[Any, Any, Any]], Any]

LOOPS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
ALARMS = pytest.mark.parametrize("make", [alarm, LoopTimerAlarm], ids=["precise", "loop-timer"])
DEADLINE = 5.0  # seconds for any one ring: far above any alarm set here


class Bell:
    """An alarm's rings, as perf_counter_ns times, and a way to wait for the next one."""

    def __init__(self, make: MakeAlarm) -> None:
        self.rings: list[int] = []
        self._rung = asyncio.Event()
        self.alarm = make(asyncio.get_running_loop(), self._ring)

    def _ring(self) -> None:
        self.rings.append(time.perf_counter_ns())
        self._rung.set()

    async def ring_at(self, at_ns: int, busy: float = 0.0) -> int:
        """Set the alarm, after `busy` seconds of the loop's own work, and wait for its
        ring: how late it was, in ns."""
        self._rung.clear()
        time.sleep(busy)  # blocks the loop, as callbacks before the pacer's would
        self.alarm.set(at_ns)
        async with asyncio.timeout(DEADLINE):
            await self._rung.wait()
        return self.rings[-1] - at_ns


def test_a_loop_timer_rounds_up_to_its_millisecond() -> None:
    # Rounded down, a wait shorter than the resolution would be no wait: a spin.
    assert loop_timer_seconds(0) == 0
    assert loop_timer_seconds(1) == 0.001
    assert loop_timer_seconds(1_000_000) == 0.001
    assert loop_timer_seconds(1_000_001) == 0.002


@LOOPS
@ALARMS
def test_an_alarm_never_rings_before_its_time(run: Run, make: MakeAlarm) -> None:
    async def scenario() -> list[int]:
        bell = Bell(make)
        # Offsets across two milliseconds in 0.1 ms steps, each set after up to a
        # millisecond of the loop's work: libuv counts a timer from the start of the loop's
        # iteration, truncated to the millisecond, so its rings come early unless the alarm
        # checks. 0 and a time already past must ring too (a timerfd set to 0 is disarmed).
        now = time.perf_counter_ns()
        lateness = [await bell.ring_at(now - 1_000_000)]
        for step in range(60):
            busy = step % 7 * 0.00015
            lateness.append(await bell.ring_at(time.perf_counter_ns() + step % 20 * 100_000, busy))
        bell.alarm.close()
        return lateness

    lateness = run(scenario())
    assert min(lateness) >= 0, sorted(lateness)[:5]


@LOOPS
@ALARMS
def test_setting_again_replaces_the_time_and_none_disarms(run: Run, make: MakeAlarm) -> None:
    async def scenario() -> tuple[int, list[int], list[int]]:
        replaced, disarmed, witness = Bell(make), Bell(make), Bell(make)
        now = time.perf_counter_ns()
        replaced.alarm.set(now + 1_000_000)
        replaced.alarm.set(now + 20_000_000)
        disarmed.alarm.set(now + 1_000_000)
        disarmed.alarm.set(None)
        # Both others' first settings are long past when this one rings.
        await witness.ring_at(now + 40_000_000)
        for bell in (replaced, disarmed, witness):
            bell.alarm.close()
        return now, replaced.rings, disarmed.rings

    now, replaced, disarmed = run(scenario())
    assert len(replaced) == 1
    assert replaced[0] >= now + 20_000_000
    assert disarmed == []


@pytest.mark.skipif(sys.platform != "linux", reason="timerfd is Linux's")
@LOOPS
def test_the_precise_alarm_is_not_rounded_to_the_loops_millisecond(run: Run) -> None:
    """0.1 ms ahead, a loop timer rings a whole millisecond after it is set, never sooner:
    at least 0.9 ms late, however idle the machine. Most of these rings came within 0.1 ms
    here even on a busy machine; a ring of the best few within half that millisecond can
    only come from a finer timer."""

    async def scenario() -> list[int]:
        bell = Bell(alarm)
        lateness = [await bell.ring_at(time.perf_counter_ns() + 100_000) for _ in range(40)]
        bell.alarm.close()
        return lateness

    lateness = sorted(run(scenario()))
    assert statistics.median(lateness[:10]) < 450_000, lateness
