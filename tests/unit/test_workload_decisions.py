"""The workload's sizing and its own messages, in process (the pool runs in tests/integration)."""

from __future__ import annotations

import os

import pytest

from example_service.workload.admission import DeadlineExceeded, default_workers

CPUS = len(os.sched_getaffinity(0))


def test_without_a_quota_every_cpu_the_process_may_run_on() -> None:
    assert default_workers(None) == CPUS


@pytest.mark.parametrize(
    ("quota", "expected"), [(0.1, 1), (1.0, 1), (1.5, min(2, CPUS)), (CPUS + 8.0, CPUS)]
)
def test_a_quota_rounded_up_and_never_above_the_cpus(quota: float, expected: int) -> None:
    assert default_workers(quota) == expected


def test_deadline_message_names_the_computation_and_the_deadline() -> None:
    error = DeadlineExceeded(40, 0.5)
    assert str(error) == "computation of fib(40) exceeded the 0.5 s request deadline"
    assert error.n == 40
