"""Faults of the service's own machinery, on the real process: a worker process killed under
load (as the OOM killer or kill -9 would), the resource tracker killed, and SIGTERM after.

Worker processes exist only where fib runs in Python (a build without a C compiler; compiled,
it runs in threads): these services run with the compiled module unimportable, as it is
there."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from support.blocked_imports import blocking
from support.service import ServiceProcess, StartService
from support.waiting import wait_for
from support.workers import (
    descendants,
    ended,
    killed,
    num_lasting,
    resource_tracker,
    state,
    workers,
)

from example_service.fibonacci import interpreted_fib

BROKE = "worker pool broke: a worker process died; its computations run once more on a new pool"


@contextmanager
def clients(service: ServiceProcess, count: int) -> Iterator[list[int | str]]:
    """count clients sending /abc in a loop until the block ends; every outcome is kept."""
    outcomes: list[int | str] = []
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            while not stop.is_set():
                try:
                    response = client.get("/abc")
                    outcomes.append(response.status_code)
                except httpx.HTTPError as error:
                    outcomes.append(repr(error))

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield outcomes
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def start_both_workers(service: ServiceProcess) -> list[int]:
    """Workers start on demand: two requests at once start both."""
    calls = [threading.Thread(target=service.get, args=("/abc",)) for _ in range(2)]
    for call in calls:
        call.start()
    for call in calls:
        call.join(30)
    started = workers(service.process.pid)
    assert len(started) == 2, started
    return started


def breakages(service: ServiceProcess) -> list[dict[str, object]]:
    return [entry for entry in service.logs() if entry["message"] == BROKE]


@pytest.fixture
def start_in_python(start_service: StartService, tmp_path: Path) -> StartService:
    """The service with fib in Python, in worker processes."""
    env = blocking(["example_service._fibonacci"], tmp_path)

    def start(*args: str) -> ServiceProcess:
        service = start_service(*args, env=env)
        assert service.metric('example_service_build_info{fib="python",version="1.0.0"}') == 1
        return service

    return start


def test_a_killed_worker_costs_no_request_and_is_logged_once(
    start_in_python: StartService,
) -> None:
    # Each computation outlasts the wait below for the old pool's survivors, so a survivor
    # that left on its own after finishing its computation would not pass for a stopped one.
    num = num_lasting(0.5, function=interpreted_fib)
    # A deadline far above what the test waits: this machine may be shared and slow, and a
    # deadline missed is not the fault under test.
    service = start_in_python(
        "--num", str(num), "--num-max", "40", "--workers", "2", "--access-log", "off",
        "--request-timeout", "60",
    )  # fmt: skip
    old = start_both_workers(service)
    with clients(service, 4) as outcomes:
        wait_for(
            lambda: service.in_flight() >= 5,
            10,
            "4 requests in flight",
        )
        victim, survivor = old
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: breakages(service), 10, "the breakage to be logged")
        # Killed as the pool is replaced, not left to finish what it was computing.
        wait_for(lambda: killed(survivor), 0.3, "the old pool's surviving worker to be killed")
        wait_for(lambda: ended(survivor), 10, "the old pool's surviving worker to be gone")
        answered = len(outcomes)
        wait_for(lambda: len(outcomes) >= answered + 4, 30, "4 more answers from the new pool")
    assert outcomes and set(outcomes) == {200}, outcomes
    [breakage] = breakages(service)
    assert breakage["level"] == "error"
    assert breakage["dead_workers"] == [victim]
    current = workers(service.process.pid)
    assert current and not set(current) & set(old)
    assert service.get("/abc").status_code == 200


def test_sigterm_after_the_tracker_and_a_worker_are_killed_leaves_nothing(
    start_in_python: StartService,
) -> None:
    drain, timeout = 0.5, 2.0
    service = start_in_python(
        "--num", str(num_lasting(0.2, function=interpreted_fib)), "--num-max", "40",
        "--workers", "2",
        "--access-log", "off", "--drain-delay", str(drain), "--shutdown-timeout", str(timeout),
    )  # fmt: skip
    start_both_workers(service)
    [tracker] = resource_tracker(service.process.pid)
    with clients(service, 1) as outcomes:
        os.kill(tracker, signal.SIGKILL)
        # The idle worker waits for work holding the call queue's lock: killed there, it
        # leaves that lock taken for ever, the case where the busy survivor cannot leave alone.
        idle = wait_for(
            lambda: [pid for pid in workers(service.process.pid) if state(pid) == "S"],
            10,
            "an idle worker",
        )
        os.kill(idle[0], signal.SIGKILL)
        wait_for(lambda: breakages(service), 10, "the breakage to be logged")
        answered = len(outcomes)
        wait_for(lambda: len(outcomes) > answered, 30, "an answer from the new pool")
        children = {tracker, *descendants(service.process.pid)}
        signalled = time.monotonic()
        service.signal(signal.SIGTERM)
    assert service.process.wait(drain + timeout + 5) == 0
    assert time.monotonic() - signalled < drain + timeout
    # The resource tracker leaves when the service's end closes its pipe: a moment, not a wait.
    wait_for(lambda: all(ended(pid) for pid in children), 2, f"no child left of {children}")
    assert len(breakages(service)) == 1
    assert outcomes and set(outcomes) == {200}, outcomes
