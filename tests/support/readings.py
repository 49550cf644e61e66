"""What the readers' tests share: the fixture trees, a one-collector scrape, golden files."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from example_service.metrics.family import FamilyCollector
from example_service.metrics.formats import Format

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "readings"
GOLDEN = FIXTURES / "golden"
LOGGER = "example_service.readings"


class _Taken(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def scrape(collector: Collector) -> str:
    """The classic exposition of a registry holding just this collector. For a collector that
    writes its own text, from one reading, that text is checked against the library's, in
    every format the service offers, so each golden page also proves the kept text."""
    registry = CollectorRegistry()
    registry.register(collector)
    if not isinstance(collector, FamilyCollector):
        return generate_latest(registry).decode()
    samples = list(collector.samples())
    taken = _Taken([family.metric(values) for family, values in samples])
    for accept in ("", "application/openmetrics-text; version=1.0.0"):
        encoder, _ = choose_encoder(accept)
        page_format = Format(encoder)
        for _ in range(2):  # the text taken from the library, then the kept text
            text = "".join(family.text(page_format, values) for family, values in samples)
            assert text.encode() + page_format.trailer == encoder(taken)
    return generate_latest(taken).decode()


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
