"""Faults of the worker threads on the real process, with real causes: a seccomp filter that
refuses setpriority (the threads' Python part raises), and a pids cgroup that refuses new
threads. A worker thread dying mid-computation has no outside cause to provoke it here (a
thread cannot be killed alone): tests/unit/workload/test_threads.py covers it in process."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from support.sandbox import pids_cgroups_available, pids_limit, refusing_setpriority
from support.service import StartService
from support.waiting import wait_for
from support.workers import descriptors, num_lasting, threads

PRIORITY_REFUSED = (
    "cannot lower the worker threads' priority: they compute at the event loop's, and probes "
    "may wait behind them"
)
START_REFUSED = "cannot start a worker thread; trying again at most every second"
UNAVAILABLE = "workers unavailable, retry shortly\n"


def changes(before: dict[int, str], after: dict[int, str]) -> dict[int, tuple[str, str]]:
    """The descriptors opened, closed or reused between two listings: (before, after). The
    service's own reads of /proc (its connection count, every 50 ms) open and close files
    of their own at any moment: those are left out."""

    def transient(target: str | None) -> bool:
        return target is None or target.startswith("/proc/")

    return {
        fd: (before.get(fd, "-"), after.get(fd, "-"))
        for fd in before.keys() | after.keys()
        if before.get(fd) != after.get(fd)
        and not (transient(before.get(fd)) and transient(after.get(fd)))
    }


def timed_get(client: httpx.Client, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def test_threads_whose_niceness_is_refused_still_serve_every_request(
    start_service: StartService, tmp_path: Path
) -> None:
    timeout = 2.0
    service = start_service(
        "--num", str(num_lasting(0.002)), "--workers", "2", "--access-log", "off",
        "--request-timeout", str(timeout),
        env=refusing_setpriority(tmp_path),
    )  # fmt: skip
    # The filter holds in the service: a thread could not lower its priority.
    with httpx.Client(base_url=service.url, timeout=timeout + 10) as client:
        healthz = min(timed_get(client, "/healthz")[1] for _ in range(5))
        first, took = timed_get(client, "/abc")
        # Answered, and well inside the deadline plus the margin (1 s): not left waiting.
        assert first.status_code == 200, first.text
        assert took < timeout + 1.0 + healthz
        outcomes = []

        def send() -> None:
            with httpx.Client(base_url=service.url, timeout=timeout + 10) as own:
                outcomes.extend(own.get("/abc").status_code for _ in range(10))

        clients = [threading.Thread(target=send) for _ in range(4)]
        for client_thread in clients:
            client_thread.start()
        for client_thread in clients:
            client_thread.join(60)
    # Served, none shed: both threads compute, at the loop's priority.
    assert outcomes == [200] * 40
    warnings = [e for e in service.logs() if e["message"] == PRIORITY_REFUSED]
    assert [(e["level"], "Operation not permitted" in e["error"]) for e in warnings] == [
        ("warning", True)
    ]
    assert service.metric("example_service_worker_threads_died_total") == 0


@pytest.mark.skipif(not pids_cgroups_available(), reason="no writable pids cgroup hierarchy")
def test_threads_refused_by_a_pids_limit_leak_nothing_and_start_once_allowed(
    start_service: StartService,
) -> None:
    service = start_service(
        "--num", str(num_lasting(0.002)), "--workers", "2", "--access-log", "off",
    )  # fmt: skip
    pid = service.process.pid
    with pids_limit(pid) as cgroup, httpx.Client(base_url=service.url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        cgroup.limit(cgroup.current)
        files, tasks = descriptors(pid), threads(pid)
        answers = [client.get("/abc") for _ in range(20)]
        # Neither a descriptor nor a thread per refused request, nor any at all.
        changed = changes(files, descriptors(pid))
        assert not changed, changed
        assert threads(pid) == tasks
        assert [(a.status_code, a.text) for a in answers] == [(503, UNAVAILABLE)] * 20
        assert client.get("/healthz").status_code == 200
        cgroup.limit(None)
        # Tried again within a second of the first refusal, not at every request.
        wait_for(lambda: client.get("/abc").status_code == 200, 5, "a worker thread to start")
    started = wait_for(
        lambda: [e for e in service.logs() if e["message"] == "worker threads started"],
        5,
        "the threads' start to be logged",
    )
    assert [e["running"] for e in started] == [2]
    assert [e["message"] for e in service.logs()].count(START_REFUSED) == 1
