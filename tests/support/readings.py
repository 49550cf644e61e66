"""What the readers' tests share: the fixture trees and their scratch copies, a one-collector
scrape, golden files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from example_service.metrics.readings import ReadingCollector, ReadingsCollector

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "readings"
GOLDEN = FIXTURES / "golden"
LOGGER = "example_service.readings"


def copy(case: str, tmp_path: Path) -> Path:
    """A scratch copy of a fixture tree (a machine's or a cgroup case's) under tmp_path, links
    kept as links, for a test that changes, breaks or removes its files."""
    shutil.copytree(FIXTURES / case, tmp_path / case, symlinks=True)
    return tmp_path / case


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
