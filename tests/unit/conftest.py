from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.worker_pool import MakeWorkload

from example_service.workload import Workload


@pytest.fixture
def make_workload() -> Iterator[MakeWorkload]:
    """Workloads with a real pool (the build's own, or processes with threads=False), closed
    after the test: no worker outlives it."""
    made: list[Workload] = []

    def make(
        n: int, workers: int = 1, timeout: float = 10.0, queue: int = 4, **pool: bool
    ) -> Workload:
        workload = Workload(n, workers, timeout, queue, **pool)
        made.append(workload)
        return workload

    yield make
    for workload in made:
        workload.close()
