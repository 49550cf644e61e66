"""What the readers' tests share: the fixture trees, a one-collector scrape, golden files."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import generate_latest

from example_service.metrics.readings import ReadingCollector, ReadingsCollector

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "readings"
GOLDEN = FIXTURES / "golden"
LOGGER = "example_service.readings"


def scrape(collector: ReadingCollector | ReadingsCollector) -> str:
    """The classic exposition of the collector's families, from readings taken now."""
    if not isinstance(collector, ReadingsCollector):
        collector = ReadingsCollector(collector)
    return generate_latest(collector.read()).decode()


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
