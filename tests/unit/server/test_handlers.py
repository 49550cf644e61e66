from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

import pytest
from support.fake_rsgi import request
from support.readings import FIXTURES, copy
from support.workload import RUNAWAY, SMALL, MakeWorkload, worker_threads

from example_service.metrics.loop_local import Count
from example_service.server.app import Handler
from example_service.server.faults import DelayRange, Faults
from example_service.server.handlers import (
    INJECTED_FAULT,
    JSON,
    OVERLOADED,
    REPLY_WITH_NUM,
    REPLY_WITHOUT_NUM,
    ComputeFibonacci,
    Info,
    Readyz,
    healthz,
)
from example_service.server.identity import build_identity
from example_service.server.lifecycle import Lifecycle, Phase
from example_service.server.rsgi import TEXT, Response
from example_service.system.cgroup import CgroupReader
from example_service.workload.admission import QUEUE_DELAY, QUEUE_FULL, SHED_REASONS

NO_FAULTS = Faults()


def answer(handler: Handler) -> Response:
    async def get() -> Response:
        return await handler(request())

    return asyncio.run(get())


def test_healthz_answers_ok() -> None:
    response = answer(healthz)
    assert (response.status, response.body, response.content_type) == (200, b"ok\n", TEXT)


def test_readyz_follows_the_lifecycle_phase() -> None:
    lifecycle = Lifecycle()
    readyz = Readyz(lifecycle)
    replies = []
    for phase in (Phase.SERVING, Phase.DRAINING):
        lifecycle.phase = phase
        response = answer(readyz)
        replies.append((response.status, response.body))
    assert replies == [(200, b"ready\n"), (503, b"not ready: draining\n")]


def make_handler(
    make_workload: MakeWorkload,
    *,
    num_set: bool = False,
    n: int = 10,
    timeout: float = 10.0,
    queue: int = 4,
    faults: Faults = NO_FAULTS,
    shed: dict[str, Count] | None = None,
    queue_delay: float | None = None,
) -> ComputeFibonacci:
    workload = make_workload(n, workers=1, timeout=timeout, queue=queue, queue_delay=queue_delay)
    shed = shed if shed is not None else {reason: Count() for reason in SHED_REASONS}
    return ComputeFibonacci(workload=workload, num_set=num_set, faults=faults, shed=shed)


@pytest.mark.parametrize(("num_set", "body"), [(False, REPLY_WITHOUT_NUM), (True, REPLY_WITH_NUM)])
def test_abc_says_whether_num_is_set(
    make_workload: MakeWorkload, num_set: bool, body: bytes
) -> None:
    response = answer(make_handler(make_workload, num_set=num_set, n=10))
    assert (response.status, response.body, response.content_type) == (200, body, TEXT)
    # fib(10) is computed inline: no worker thread for the lab's default.
    assert worker_threads() == []


def test_abc_computes_a_larger_n_in_a_worker_thread(make_workload: MakeWorkload) -> None:
    response = answer(make_handler(make_workload, num_set=True, n=SMALL))
    assert (response.status, response.body) == (200, REPLY_WITH_NUM)
    assert len(worker_threads()) == 1


def test_abc_past_its_deadline_is_503_and_says_why(
    make_workload: MakeWorkload, caplog: pytest.LogCaptureFixture
) -> None:
    response = answer(make_handler(make_workload, num_set=True, n=RUNAWAY, timeout=0.2))
    assert (response.status, response.content_type) == (503, TEXT)
    assert response.body == b"computation of fib(50) exceeded the 0.2 s request deadline\n"
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert (warning.getMessage(), warning.__dict__["n"]) == ("request deadline exceeded", RUNAWAY)


def test_abc_when_no_worker_thread_can_start_is_503(
    make_workload: MakeWorkload, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    handler = make_handler(make_workload, num_set=True, n=SMALL)
    monkeypatch.setattr(threading.Thread, "start", refused)
    response = answer(handler)
    assert (response.status, response.body) == (503, b"workers unavailable, retry shortly\n")


def test_abc_whose_computation_fails_is_500_and_logged(
    make_workload: MakeWorkload, caplog: pytest.LogCaptureFixture
) -> None:
    workload = make_workload(SMALL, workers=1)

    def failing(n: int, deadline: float, stop: object) -> int:
        raise ZeroDivisionError

    workload._threads._compute = failing
    shed = {reason: Count() for reason in SHED_REASONS}
    handler = ComputeFibonacci(workload=workload, num_set=True, faults=NO_FAULTS, shed=shed)
    response = answer(handler)
    assert (response.status, response.body) == (
        500,
        f"computation of fib({SMALL}) failed\n".encode(),
    )
    [error] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert (error.getMessage(), error.__dict__["n"]) == ("computation failed", SMALL)
    assert error.exc_info is not None
    assert error.exc_info[1] is not None
    assert type(error.exc_info[1].__cause__) is ZeroDivisionError


@pytest.mark.parametrize(
    ("queue", "reason"),
    # Past the memory bound; or, a computation timed at 0.6 s, past the deadline of 1 s.
    [(0, QUEUE_FULL), (4, QUEUE_DELAY)],
)
def test_abc_refused_at_once_is_counted_by_reason(
    make_workload: MakeWorkload, queue: int, reason: str
) -> None:
    shed = {reason: Count() for reason in SHED_REASONS}
    handler = make_handler(make_workload, n=RUNAWAY, timeout=1.0, queue=queue, shed=shed)
    handler._workload._timed(0.6)

    async def second_while_first_computes() -> Response:
        first = asyncio.create_task(handler(request()))
        await asyncio.sleep(0)
        response = await handler(request())
        await first
        return response

    response = asyncio.run(second_while_first_computes())
    assert response == OVERLOADED
    assert (response.status, response.headers) == (503, (("retry-after", "1"),))
    assert response.body == b"service overloaded: too much work queued, retry shortly\n"
    assert {name: count.value for name, count in shed.items()} == {
        name: int(name == reason) for name in SHED_REASONS
    }


def test_an_injected_error_answers_500_without_computing(make_workload: MakeWorkload) -> None:
    start = time.monotonic()
    response = answer(make_handler(make_workload, n=RUNAWAY, faults=Faults(error_ratio=1.0)))
    assert response == INJECTED_FAULT
    assert (response.status, response.body) == (500, b"injected fault (FAULT_ERROR_RATIO is set)\n")
    assert time.monotonic() - start < 5
    assert worker_threads() == []


def test_an_injected_latency_delays_the_reply(make_workload: MakeWorkload) -> None:
    handler = make_handler(make_workload, n=10, faults=Faults(latency=DelayRange(50, 50)))
    start = time.monotonic()
    response = answer(handler)
    assert time.monotonic() - start >= 0.05
    assert (response.status, response.body) == (200, REPLY_WITHOUT_NUM)


def cgroup_reader(case: Path) -> CgroupReader:
    return CgroupReader(cgroup_root=case / "sys/fs/cgroup", procfs_root=case / "proc")


def test_info_answers_the_identity_as_json() -> None:
    case = FIXTURES / "cgroup-v2-limits"
    response = answer(Info(case / "proc", cgroup_reader(case), 30))
    assert (response.status, response.content_type) == (200, JSON)
    assert response.body.endswith(b"}\n")
    identity = json.loads(response.body)
    assert identity == build_identity(procfs_root=case / "proc", cgroup=cgroup_reader(case), num=30)
    assert (identity["pid"], identity["num"], identity["cpu_limit_cores"]) == (1, 30, 1.5)


def test_info_reads_the_limits_anew_on_each_request(tmp_path: Path) -> None:
    """A pod resized in place gets new limits without a restart."""
    case = copy("cgroup-v2-limits", tmp_path)
    info = Info(case / "proc", cgroup_reader(case), None)
    assert json.loads(answer(info).body)["cpu_limit_cores"] == 1.5
    (case / "sys/fs/cgroup/cpu.max").write_text("250000 100000\n")
    assert json.loads(answer(info).body)["cpu_limit_cores"] == 2.5
