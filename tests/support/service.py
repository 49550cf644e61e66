"""The real service as a child process on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from support.ports import free_port
from support.waiting import wait_for

EXECUTABLE = Path(sys.executable).with_name("example-service")


class ServiceProcess:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if k not in ("NUM", "PORT", "HOST")}
        environment.update(env or {})
        self.process = subprocess.Popen(
            [str(EXECUTABLE), "--host", "127.0.0.1", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_ready(self, timeout: float = 10.0) -> ServiceProcess:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"service exited early: {self.stderr()}")
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200

        wait_for(ready, timeout, f"{self.url}/readyz to answer 200")
        return self

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=kwargs.pop("timeout", 10), **kwargs)

    def metric(self, sample: str) -> float:
        """The value of one sample line (name with labels, exactly as exposed) or 0 if absent."""
        for line in self.get("/metrics").text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        return 0.0

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.lines)]

    def stderr(self) -> str:
        assert self.process.stderr is not None
        if self.process.poll() is None:
            return ""
        return self.process.stderr.read()

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(5)


StartService = Callable[..., ServiceProcess]
