from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

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
