"""The real service as a child process on a free loopback port, run by the stack's runner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from example_service.settings import ENVIRONMENT_VARIABLES
from example_service.stack.processes import Component, StartError
from support.ports import free_port

EXECUTABLE = Path(sys.executable).with_name("example-service")
IN_FLIGHT = "example_service_http_requests_in_flight"


def service_environment(variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without any variable the service reads, plus the given ones: one set in
    the shell running the tests cannot change what a test sees."""
    environment = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    return environment | dict(variables or {})


class ServiceProcess:
    """Started at once; its stdout (the JSON log) and stderr go to files in logs/."""

    def __init__(self, *args: str, logs: Path, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.component = Component(
            "example-service",
            [str(EXECUTABLE), "--host", "127.0.0.1", "--port", str(self.port), *args],
            self.url,
            "/readyz",
            logs / "stdout.log",
            stderr_path=logs / "stderr.log",
            env=service_environment(env),
        )
        self.component.start()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self.component.process is not None
        return self.component.process

    def wait_ready(self, timeout: float = 10.0) -> ServiceProcess:
        try:
            self.component.wait_ready(timeout, interval=0.02)
        except StartError as error:
            raise AssertionError(f"{error}\nstderr: {self.stderr()}") from None
        return self

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=kwargs.pop("timeout", 10), **kwargs)

    def metric(self, sample: str) -> float | None:
        """The value of one sample line (name with labels, exactly as exposed); None when the
        page has no such line, so a misspelt name never reads as 0."""
        for line in self.get("/metrics").text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        return None

    def in_flight(self) -> float:
        """Requests being served, this scrape included."""
        value = self.metric(IN_FLIGHT)
        assert value is not None, f"no {IN_FLIGHT} on the page"
        return value

    def lines(self) -> list[str]:
        """The complete lines written to stdout so far (the last one may still be written)."""
        complete, _, _ = self.component.log_path.read_text().rpartition("\n")
        return complete.splitlines()

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]

    def stderr(self) -> str:
        assert self.component.stderr_path is not None
        return self.component.stderr_path.read_text()

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.component.send_signal(signum)

    def stop(self) -> None:
        self.component.kill()


StartService = Callable[..., ServiceProcess]
