from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.worker_pool import MakeWorkload

from example_service.workload import Workload


@pytest.fixture
def make_workload() -> Iterator[MakeWorkload]:
    """Workloads with real worker threads, closed after the test: no thread outlives it."""
    made: list[Workload] = []

    def make(n: int, workers: int = 1, timeout: float = 10.0, queue: int = 4) -> Workload:
        workload = Workload(n, workers, timeout, queue)
        made.append(workload)
        return workload

    yield make
    for workload in made:
        workload.close()
