"""The programs the suite drives for real: found on PATH or a clear failure, and run to their
end with their output captured."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping

import pytest


def require(binary: str, package: str) -> str:
    """The path of binary; fails the test naming the package that installs it."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} not found; `make test` installs it (apt-get install {package})")
    return path


def run(
    *command: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Runs command to its end, output captured as text; the caller checks the status."""
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
