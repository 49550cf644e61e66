from __future__ import annotations

import asyncio
import time

import pytest

from example_service.server.lifecycle import Lifecycle, Phase


@pytest.mark.parametrize(("phase", "ready"), [(Phase.SERVING, True), (Phase.DRAINING, False)])
def test_ready_only_while_serving(phase: Phase, ready: bool) -> None:
    lifecycle = Lifecycle()
    lifecycle.phase = phase
    assert lifecycle.ready is ready


def test_serving_from_the_start() -> None:
    """Granian runs the start-up hook before any request: no request meets a starting phase."""
    lifecycle = Lifecycle()
    assert lifecycle.phase is Phase.SERVING
    assert lifecycle.ready


def test_in_flight_counts_started_minus_finished() -> None:
    lifecycle = Lifecycle()
    assert lifecycle.in_flight == 0
    for _ in range(3):
        lifecycle.request_started()
    lifecycle.request_finished()
    assert lifecycle.in_flight == 2
    lifecycle.request_finished()
    lifecycle.request_finished()
    assert lifecycle.in_flight == 0


def test_wait_idle_is_true_at_once_with_nothing_in_flight() -> None:
    assert asyncio.run(Lifecycle().wait_idle(0)) is True


def test_wait_idle_gives_up_at_its_deadline() -> None:
    lifecycle = Lifecycle()
    lifecycle.request_started()

    async def wait() -> tuple[bool, float]:
        start = time.monotonic()
        # The outer bound only keeps a broken deadline from hanging the suite.
        idle = await asyncio.wait_for(lifecycle.wait_idle(0.05), 10)
        return idle, time.monotonic() - start

    idle, waited = asyncio.run(wait())
    assert idle is False
    assert 0.05 <= waited < 5
    assert lifecycle.in_flight == 1


def test_wait_idle_returns_when_the_last_request_finishes() -> None:
    lifecycle = Lifecycle()
    lifecycle.request_started()
    lifecycle.request_started()

    async def drain() -> tuple[bool, float]:
        waiter = asyncio.create_task(lifecycle.wait_idle(30))
        await asyncio.sleep(0)
        lifecycle.request_finished()
        await asyncio.sleep(0)
        # One of two finished: still waiting.
        assert not waiter.done()
        start = time.monotonic()
        lifecycle.request_finished()
        idle = await asyncio.wait_for(waiter, 10)
        return idle, time.monotonic() - start

    idle, waited = asyncio.run(drain())
    assert idle is True
    # Woken by the last request, not by the 30 s deadline.
    assert waited < 5


def test_a_new_request_after_idle_is_waited_for_again() -> None:
    lifecycle = Lifecycle()
    lifecycle.request_started()
    lifecycle.request_finished()
    lifecycle.request_started()
    assert asyncio.run(lifecycle.wait_idle(0.01)) is False
