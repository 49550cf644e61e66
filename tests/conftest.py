from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.service import ServiceProcess, StartService


@pytest.fixture
def start_service() -> Iterator[StartService]:
    """Start the real service (flags as arguments, env= for variables); stopped afterwards."""
    started: list[ServiceProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> ServiceProcess:
        service = ServiceProcess(*args, env=env)
        started.append(service)
        return service.wait_ready() if ready else service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def service(start_service: StartService) -> ServiceProcess:
    """One service with defaults, access log off to keep the output small."""
    return start_service("--access-log", "off", "--drain-delay", "0")
