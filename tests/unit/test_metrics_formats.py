"""Families written from kept text are what the library writes, byte for byte, in every format,
and the library writes what the kept text cannot (timestamps, the text format's _created)."""

from __future__ import annotations

import pytest
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from example_service.metrics.family import Family
from example_service.metrics.formats import Format, value_text

ACCEPT_HEADERS = [
    "",
    "text/plain; version=1.0.0; escaping=allow-utf-8",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
]


def families(value: float) -> list[Metric]:
    gauge = GaugeMetricFamily("sensor_celsius", "A \\ help\nwith a newline.", labels=["chip"])
    for chip in ("plain", 'a "quoted"\\ new\nline', "é"):
        gauge.add_metric([chip], value)
    created = CounterMetricFamily("events", "Events.", labels=["kind"], created=1.5)
    created.add_metric(["a"], value, created=2.5)
    stamped = GaugeMetricFamily("stamped", "With a timestamp.")
    stamped.add_metric([], value, timestamp=1234.5)
    info = InfoMetricFamily("build", "Build.", value={"version": "1.2.3"})
    return [gauge, created, stamped, info, CounterMetricFamily("empty", "No series.")]


@pytest.mark.parametrize("accept", ACCEPT_HEADERS)
def test_each_family_as_the_library_writes_it(accept: str) -> None:
    encoder, _ = choose_encoder(accept)
    page_format = Format(encoder)
    for value in (0, 42, 1_000_000, 0.1, float("inf")):  # new series, then kept text
        for family in families(value):
            library = "".join(page_format.lines(family))
            assert page_format.family(family) == library
        page_format.page_done()


@pytest.mark.parametrize("accept", ACCEPT_HEADERS)
def test_a_family_from_its_samples_as_the_library_writes_it(accept: str) -> None:
    encoder, _ = choose_encoder(accept)
    page_format = Format(encoder)
    families = [
        Family("gauge", "sensor_celsius", "A \\ help\nwith a newline.", ["chip", "sensor"]),
        Family("counter", "errors", "Errors.", ["device"]),
        Family("info", "cgroup", "The cgroup.", ["version", "path"]),
    ]
    pages: list[list[tuple[tuple[str, ...], float]]] = [  # series appear, move and go
        [(("plain", "temp1"), 0), (('a "quoted"\\ new\nline', "é"), 42)],
        [(("plain", "temp1"), 1_000_000), (("new", "temp2"), 0.1), (("é", "x"), float("inf"))],
        [],
        [(("plain", "temp1"), -1.5)],
    ]
    for samples in pages * 2:
        for family in families:
            library = "".join(page_format.lines(family.metric(samples)))
            assert family.text(page_format, samples) == library


@pytest.mark.parametrize(
    "value",
    [0, 1, 999_999, 1_000_000, 123_456_789, -1, -5_000_000, True,
     0.0, -0.0, 1.0, 0.1, 1e-05, 2.5e-07, 999_999.999, 1e6, 1.5e6, 1.79603192774e9, 1e16, 1e22,
     -0.5, -1e6, -1e22, float("inf"), float("-inf"), float("nan")],
)  # fmt: skip
def test_value_text_is_the_library_s(value: float) -> None:
    assert value_text(value) == floatToGoString(value)  # type: ignore[no-untyped-call]
