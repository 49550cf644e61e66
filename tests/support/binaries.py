"""The Debian programs the suite drives for real: found on PATH, or a clear failure."""

from __future__ import annotations

import shutil

import pytest


def require(binary: str, package: str) -> str:
    """The path of binary; fails the test naming the package that installs it."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} not found; `make test` installs it (apt-get install {package})")
    return path
