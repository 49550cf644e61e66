"""Child processes of the stack: started with their logs in files, waited on, stopped."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

STOP_TIMEOUT = 10.0


class StartError(Exception):
    """A component did not become ready."""


@dataclass
class Component:
    """One process of the stack, with where to reach it and how to tell it is ready."""

    name: str
    command: list[str]
    url: str
    ready_path: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group: Ctrl-C in the terminal reaches the stack alone,
                # which then stops each component in order.
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise StartError(f"{self.name} exited at start; see {self.log_path}")
            try:
                # The URL is the component's own http:// address on loopback.
                ready_url = self.url + self.ready_path
                with urllib.request.urlopen(ready_url, timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise StartError(f"{self.name} not ready after {timeout:g} s; see {self.log_path}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL if it is still there after the timeout."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
