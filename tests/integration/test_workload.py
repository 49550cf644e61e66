"""The workload never makes the service unresponsive, and a deadline stops runaway work."""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

import httpx
from support.binaries import require
from support.service import StartService
from support.waiting import wait_for
from support.workers import descendants

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def test_probes_and_scrapes_stay_fast_while_abc_is_saturated(start_service: StartService) -> None:
    # A queue deep enough for all 32 connections: here every request waits for a worker, as
    # much work as possible queues behind the probes (shedding is tested in test_floods.py).
    service = start_service("--num", "34", "--access-log", "off", "--max-queue", "32")
    # Warm the worker pool first, so its start-up is not measured as probe latency.
    assert service.get("/abc", timeout=30).status_code == 200
    # The baseline: one computation answered alone. A probe that waited behind even one
    # computation would take at least as long.
    alone = []
    for _ in range(3):
        started = time.perf_counter()
        assert service.get("/abc", timeout=30).status_code == 200
        alone.append(time.perf_counter() - started)
    computation = min(alone)
    # The load comes from wrk, a process of its own: load sent from this process would queue
    # the probes behind the test's own client code and measure the test, not the service.
    load = subprocess.Popen(
        [require("wrk", "wrk"), "-t1", "-c32", "-d4s", f"{service.url}/abc"],
        stdout=subprocess.PIPE,
        text=True,
    )
    probe_latencies: dict[str, list[float]] = {"/healthz": [], "/readyz": [], "/metrics": []}
    with httpx.Client(base_url=service.url, timeout=10) as client:
        while load.poll() is None:
            for path, latencies in probe_latencies.items():
                started = time.perf_counter()
                response = client.get(path)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 200
    output = load.communicate(timeout=30)[0]
    answered = re.search(r"(\d+) requests in", output)
    assert answered and int(answered.group(1)) > 50, output
    assert "Non-2xx" not in output and "Socket errors" not in output, output
    for path, latencies in probe_latencies.items():
        p99 = statistics.quantiles(latencies, n=100)[98]
        assert p99 < computation, (
            f"{path} p99 {p99 * 1000:.1f} ms over {len(latencies)} probes, "
            f"one computation alone {computation * 1000:.1f} ms"
        )


def test_deadline_turns_runaway_work_into_a_counted_503(start_service: StartService) -> None:
    service = start_service("--num", "50", "--num-max", "50", "--request-timeout", "0.5")
    started = time.monotonic()
    response = service.get("/abc")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.text == "computation of fib(50) exceeded the 0.5 s request deadline\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert 0.5 <= elapsed < 2
    assert service.metric('http_requests_total{method="GET",route="/abc",status="503"}') == 1
    assert service.metric("request_total") == 1
    wait_for(
        lambda: any(e["message"] == "request deadline exceeded" for e in service.logs()),
        5,
        "the deadline's warning",
    )

    # The worker stopped computing: the service's processes are idle again.
    pids = [service.process.pid, *descendants(service.process.pid)]

    def idle() -> bool:
        before = cpu_seconds(pids)
        time.sleep(0.3)  # a measurement window, not a wait for a condition
        return cpu_seconds(pids) - before < 0.05

    wait_for(idle, 5, "the service's processes to stop burning CPU")
    # And the pool still works afterwards.
    assert service.get("/abc").status_code == 503


def test_small_num_runs_inline_without_worker_processes(start_service: StartService) -> None:
    service = start_service("--num", "12")
    assert service.get("/abc").status_code == 200
    assert descendants(service.process.pid) == []


def test_sigterm_during_a_long_computation_drains_and_exits_promptly(
    start_service: StartService,
) -> None:
    """The computation is stopped at shutdown, not waited for: fib(50) takes a minute."""
    drain, timeout = 0.5, 1.0
    service = start_service(
        "--num", "50", "--num-max", "50", "--request-timeout", "120",
        "--drain-delay", str(drain), "--shutdown-timeout", str(timeout),
    )  # fmt: skip
    answers: list[int | str] = []

    def request() -> None:
        try:
            answers.append(service.get("/abc", timeout=30).status_code)
        except httpx.HTTPError as error:
            answers.append(repr(error))

    client = threading.Thread(target=request)
    client.start()
    wait_for(lambda: service.in_flight() >= 2, 10, "the computation in flight")
    signalled = time.monotonic()
    service.signal(signal.SIGTERM)
    assert service.process.wait(drain + timeout + 10) == 0
    assert time.monotonic() - signalled < drain + timeout + 1.0
    client.join(30)
    assert answers and answers[0] != 500, answers
    [abandoned] = [e for e in service.logs() if e.get("step") == "in-flight"]
    assert abandoned["abandoned"] == 1
