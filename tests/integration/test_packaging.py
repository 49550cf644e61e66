"""How the package is started and what it needs installed, on the real interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

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
