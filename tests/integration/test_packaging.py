"""How the package is started and what it needs installed, on the real interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.blocked_imports import blocking
from support.service import ServiceProcess, StartService
from support.waiting import wait_for

from example_service import __version__
from example_service.settings import ENVIRONMENT_VARIABLES


def python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT_VARIABLES}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_python_m_runs_the_command() -> None:
    result = python("-m", "example_service", "--version")
    assert (result.returncode, result.stdout) == (0, f"example-service {__version__}\n")


def test_importing_main_runs_nothing() -> None:
    # Were the command to run on import, this bad NUM would make it exit 2 with a message.
    result = python("-c", "import example_service.__main__", env={"NUM": "x"})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def uvloop_lines(service: ServiceProcess) -> list[tuple[str, str]]:
    return [(e["level"], e["message"]) for e in service.logs() if "uvloop" in e["message"]]


def test_without_uvloop_the_server_runs_on_asyncio_and_says_so(
    start_service: StartService, tmp_path: Path
) -> None:
    env = blocking(["uvloop"], tmp_path)
    service = start_service("--access-log", "off", "--drain-delay", "0", env=env)
    assert service.get("/abc").text == "there is no env NUM. Computation succeeded\n"
    assert service.get("/metrics").status_code == 200
    expected = [("warning", "uvloop is not installed: serving on asyncio's own event loop")]
    wait_for(lambda: uvloop_lines(service) == expected, 5, "the one line about uvloop")
    service.signal()
    assert service.process.wait(15) == 0


def test_with_uvloop_nothing_is_said_about_it(service: ServiceProcess) -> None:
    assert service.get("/abc").status_code == 200
    assert any(entry["message"] == "started" for entry in service.logs())
    assert uvloop_lines(service) == []
