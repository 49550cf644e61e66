from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.service import ServiceProcess, StartService


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[StartService]:
    """Start the real service (flags as arguments, env= for variables); stopped afterwards.
    Its output stays in the test's temporary directory, service-1/ and on."""
    started: list[ServiceProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> ServiceProcess:
        service = ServiceProcess(*args, logs=tmp_path / f"service-{len(started) + 1}", env=env)
        started.append(service)
        return service.wait_ready() if ready else service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def service(start_service: StartService) -> ServiceProcess:
    """One service with defaults, access log off to keep the output small."""
    return start_service("--access-log", "off", "--drain-delay", "0")
