from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder

from example_service.metrics.formats import Format
from example_service.metrics.loop_local import CounterFamily, Histogram, HistogramFamily


def test_a_value_on_a_bound_counts_in_that_bucket() -> None:
    histogram = Histogram((0.1, 1.0))
    for value in (0.1, 0.05, 1.0, 1.5, 0.5):
        histogram.observe(value)
    assert list(histogram.buckets()) == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
    assert histogram.sum == 3.15


def test_families_expose_like_the_library() -> None:
    registry = CollectorRegistry()
    counter = CounterFamily("http_requests", "Requests.", ("route", "status"))
    histogram = HistogramFamily("duration_seconds", "Durations.", ("route",), (0.5,))
    registry.register(counter)
    registry.register(histogram)
    counter.child(("/abc", "200")).value = 3
    histogram.child(("/abc",)).observe(0.25)
    histogram.child(("/abc",)).observe(2)
    text = generate_latest(registry).decode()
    assert text == (
        "# HELP http_requests_total Requests.\n"
        "# TYPE http_requests_total counter\n"
        'http_requests_total{route="/abc",status="200"} 3.0\n'
        "# HELP duration_seconds Durations.\n"
        "# TYPE duration_seconds histogram\n"
        'duration_seconds_bucket{le="0.5",route="/abc"} 1.0\n'
        'duration_seconds_bucket{le="+Inf",route="/abc"} 2.0\n'
        'duration_seconds_count{route="/abc"} 2.0\n'
        'duration_seconds_sum{route="/abc"} 2.25\n'
    )


def test_describe_reads_no_values() -> None:
    counter = CounterFamily("c", "C.", ())
    assert [family.samples for family in counter.describe()] == [[]]


ACCEPT_HEADERS = [
    "",
    "text/plain; version=0.0.4",
    "text/plain; version=1.0.0; escaping=allow-utf-8",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
    "application/openmetrics-text; version=0.0.1",
]


@pytest.mark.parametrize("accept", ACCEPT_HEADERS)
def test_own_lines_are_the_librarys_byte_for_byte(accept: str) -> None:
    encoder, _ = choose_encoder(accept)
    page_format = Format(encoder)
    counter = CounterFamily("http_requests", "Requests, \\ and\nall.", ("route", "status"))
    histogram = HistogramFamily("duration_seconds", "Durations.", ("route",), (0.005, 0.5, 1e7))
    families: list[CounterFamily | HistogramFamily] = [counter, histogram]
    for family in families:  # no series yet: the header alone
        assert family.render(page_format).encode() == page_format.body(family)
    for route, count in (("/abc", 999_999), ('a "quoted"\\ new\nline', 1_000_000), ("/é", 0)):
        counter.child((route, "200")).value += count
        histogram.child((route,)).observe(0.25)
        histogram.child((route,)).observe(1e9)
        histogram.child((route,)).counts[0] += count  # counts on both sides of a million
        for family in families:  # each new series, then the same ones from the kept text
            for _ in range(2):
                assert family.render(page_format).encode() == page_format.body(family)
