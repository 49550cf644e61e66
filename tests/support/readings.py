"""What the readers' tests share: the fixture trees, a one-collector scrape, golden files."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "readings"
GOLDEN = FIXTURES / "golden"
LOGGER = "example_service.readings"


def scrape(collector: Collector) -> str:
    """The classic exposition of a registry holding just this collector."""
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def assert_golden(text: str, name: str) -> None:
    """Compare with golden/<name>.prom; a missing one is written and the test fails, so a
    new golden file is always read by a person before it counts."""
    golden = GOLDEN / f"{name}.prom"
    if not golden.exists():
        golden.write_text(text)
        pytest.fail(f"wrote {golden}: check it by hand, then run again")
    assert text.splitlines() == golden.read_text().splitlines()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelname == "WARNING"]
