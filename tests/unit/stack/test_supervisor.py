"""The stack's supervisor on real child processes: the back-off doubles, stops at its cap,
starts over after a long enough run, and each step is said on the console."""

from __future__ import annotations

import time
from pathlib import Path

from example_service.stack.processes import Component
from example_service.stack.supervisor import Backoff, Supervisor


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(initial=1, cap=30)
    assert [backoff.delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    # However many exits in a row, never more than the cap (no overflow either).
    assert backoff.delay(10_000) == 30


def exiting(tmp_path: Path, status: int) -> Component:
    return Component(
        "replica-1",
        ["sh", "-c", f"exit {status}"],
        "http://127.0.0.1:9",
        "/readyz",
        tmp_path / "replica-1.log",
    )


def exited(component: Component) -> None:
    assert component.process is not None
    component.process.wait(10)


def test_an_exit_is_restarted_after_a_doubling_back_off(tmp_path: Path) -> None:
    supervisor = Supervisor(Backoff(initial=1, cap=4, reset_after=60))
    component = exiting(tmp_path, 3)
    component.start()
    exited(component)
    now = component.started_at
    delays = []
    for _ in range(4):
        [event] = supervisor.tick([component], now)
        assert event.startswith("replica-1 exited (exit status 3) after ")
        delays.append(float(event.split("restarting in ")[1].split(" s")[0]))
        # Not before its time...
        assert supervisor.tick([component], now + delays[-1] - 0.01) == []
        first = component.pid
        # ...then started again: a new process.
        [event] = supervisor.tick([component], now + delays[-1])
        assert event == f"replica-1 restarted, pid {component.pid}" and component.pid != first
        exited(component)
        now = component.started_at
    assert delays == [1, 2, 4, 4]


def test_a_long_run_starts_the_back_off_over(tmp_path: Path) -> None:
    supervisor = Supervisor(Backoff(initial=1, cap=4, reset_after=60))
    component = exiting(tmp_path, 1)
    for ran in (0.0, 0.0, 0.0, 61.0):
        component.start()
        exited(component)
        [event] = supervisor.tick([component], component.started_at + ran)
        supervisor.tick([component], time.perf_counter() + 100)  # restarts it
        exited(component)
    assert "restarting in 1 s" in event and "exit 1 in a row" in event


def test_the_console_names_the_signal(tmp_path: Path) -> None:
    component = Component("prometheus", ["sh", "-c", "kill -9 $$"], "", "/", tmp_path / "log")
    component.start()
    exited(component)
    [event] = Supervisor(Backoff()).tick([component])
    assert "prometheus exited (killed by SIGKILL)" in event


def test_a_request_starts_the_back_off_over(tmp_path: Path) -> None:
    supervisor = Supervisor(Backoff(initial=1, cap=30))
    component = exiting(tmp_path, 2)
    component.start()
    for _ in range(3):
        exited(component)
        [event] = supervisor.tick([component], component.started_at)
        supervisor.tick([component], time.perf_counter() + 100)  # restarts it
    assert "restarting in 4 s" in event
    # A break or a restore starts it anew: its next exit waits the shortest time.
    supervisor.reset("replica-1")
    exited(component)
    [event] = supervisor.tick([component], component.started_at)
    assert "restarting in 1 s" in event
