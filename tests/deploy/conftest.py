"""Fixtures the deployment tests share."""

from __future__ import annotations

import pytest
from support.binaries import require


@pytest.fixture(scope="session")
def promtool() -> str:
    return require("promtool", "prometheus")
