from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.workload import MakeWorkload

from example_service.workload.admission import Workload


@pytest.fixture
def make_workload() -> Iterator[MakeWorkload]:
    """Workloads with real worker threads, closed after the test: no thread outlives it."""
    made: list[Workload] = []

    def make(
        n: int,
        workers: int = 1,
        timeout: float = 10.0,
        queue: int = 4,
        queue_delay: float | None = None,
    ) -> Workload:
        delay = timeout if queue_delay is None else queue_delay
        workload = Workload(n, workers, timeout, queue, delay)
        made.append(workload)
        return workload

    yield make
    for workload in made:
        workload.close()
