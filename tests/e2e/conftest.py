from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.lab import Lab, start_lab, stop_lab


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The lab on loopback, shared by a module's tests."""
    running = start_lab(tmp_path_factory.mktemp("lab"))
    try:
        yield running
    finally:
        stop_lab(running)
