"""Child processes: started with their output in files, waited on until ready, stopped.

The one runner for every server a command or a test starts: the stack's components, the
servers of the test suite and of the benchmark. Output goes to files rather than pipes, so a
chatty child never blocks on a full pipe that nobody reads, and its log outlives it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

STOP_TIMEOUT = 10.0


class StartError(Exception):
    """A component did not become ready."""


@dataclass
class Component:
    """One child process, with where to reach it and how to tell it is ready."""

    name: str
    command: list[str]
    url: str
    # Ready when a GET of this path answers 200; None: when the server answers at all (a
    # server with no health endpoint, such as a webhook receiver that only takes POSTs).
    ready_path: str | None
    # stdout, and stderr too unless stderr_path sets it apart.
    log_path: Path
    stderr_path: Path | None = None
    # None: this process' own environment.
    env: Mapping[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # time.perf_counter() just before the process was spawned.
    started_at: float = field(default=0.0, repr=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as files:
            log = files.enter_context(self.log_path.open("ab"))
            errors: int | IO[bytes] = subprocess.STDOUT
            if self.stderr_path is not None:
                errors = files.enter_context(self.stderr_path.open("ab"))
            self.started_at = time.perf_counter()
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=errors,
                stdin=subprocess.DEVNULL,
                env=self.env,
                # Its own session: Ctrl-C in a terminal reaches the parent alone, which stops
                # each child in order, and stopping can reach whatever the child left behind.
                start_new_session=True,
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float, interval: float = 0.05) -> float:
        """Poll until it is ready (see ready_path); the seconds since start()."""
        deadline = time.perf_counter() + timeout
        # Where it says what went wrong.
        log = self.stderr_path or self.log_path
        while True:
            if not self.running():
                raise StartError(f"{self.name} exited at start; see {log}")
            if self.answers(timeout=1.0):
                return time.perf_counter() - self.started_at
            if time.perf_counter() > deadline:
                raise StartError(f"{self.name} not ready after {timeout:g} s; see {log}")
            time.sleep(interval)

    def answers(self, timeout: float = 0.5) -> bool:
        """One readiness probe."""
        status = _status(self.url + (self.ready_path or "/"), timeout=timeout)
        return status == 200 if self.ready_path is not None else status is not None

    def send_signal(self, signum: int) -> None:
        if self.process is not None:
            self.process.send_signal(signum)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL if it is still there after the timeout."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._kill_leftovers()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._kill_leftovers()

    def _kill_leftovers(self) -> None:
        # Whatever is left in the session it led (a worker that outlived it) is ours to end.
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _status(url: str, timeout: float) -> int | None:
    """The status of a GET, None when there is no answer. http.client rather than urllib:
    urllib would send a loopback request through a proxy named in the environment."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/")
        return connection.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()
