"""Real servers for a test, through the same runner the stack uses (its start, readiness and
stop), failing the test with the server's own log when it does not come up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from example_service.stack.processes import Component, StartError


@contextmanager
def running(component: Component, timeout: float = 30.0) -> Iterator[Component]:
    component.start()
    try:
        try:
            component.wait_ready(timeout)
        except StartError as error:
            pytest.fail(f"{error}\n{component.log_tail(40)}")
        yield component
    finally:
        component.stop()
