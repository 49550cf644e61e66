"""The load command's latency histogram: bounded error, exact counts, constant size."""

from __future__ import annotations

import math
import random

import pytest

from example_service.load.histogram import (
    BUCKETS,
    MAX_NS,
    PRECISION_BITS,
    LatencyHistogram,
    bucket_bounds,
    bucket_index,
)
from example_service.load.stats import quantile

RELATIVE_ERROR = 1 / (1 << (PRECISION_BITS + 1))  # half a bucket: 1/256


def filled(values: list[int]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values:
        histogram.record(value)
    return histogram


def test_every_value_falls_in_a_bucket_that_holds_it_and_is_narrow() -> None:
    samples = [*range(0, 2048), *(int(1.37**k) for k in range(20, 95)), MAX_NS]
    previous = -1
    for value in sorted(samples):
        index = bucket_index(value)
        low, high = bucket_bounds(index)
        assert low <= value <= high
        assert index >= previous  # buckets are in the order of their values
        previous = index
        assert (high - low) <= low * 2 * RELATIVE_ERROR
    assert [bucket_index(v) for v in range(256)] == list(range(256))  # exact below 256 ns


def test_buckets_tile_the_range_without_gaps() -> None:
    for index in range(1, BUCKETS):
        assert bucket_bounds(index)[0] == bucket_bounds(index - 1)[1] + 1


def test_quantiles_are_within_the_relative_error_of_the_exact_ones() -> None:
    rng = random.Random(11)
    # Latencies of a service: mostly a few hundred microseconds, a long tail of seconds.
    values = [int(rng.lognormvariate(math.log(300_000), 1.5)) for _ in range(20_000)]
    histogram = filled(values)
    ordered = sorted(values)
    qs = (0.0, 0.5, 0.9, 0.99, 0.999, 1.0)
    for q, found in histogram.quantiles(qs).items():
        exact = quantile(ordered, q)
        assert found == pytest.approx(exact, rel=RELATIVE_ERROR), q
    assert histogram.quantiles([1.0])[1.0] == max(values)
    assert histogram.quantiles([0.0])[0.0] == min(values)
    assert (histogram.count, histogram.sum_ns) == (len(values), sum(values))
    assert (histogram.min_ns, histogram.max_ns) == (min(values), max(values))


def test_an_empty_histogram_has_no_quantiles() -> None:
    assert all(math.isnan(v) for v in LatencyHistogram().quantiles([0.5, 0.99]).values())


def test_memory_stays_constant_and_huge_values_keep_an_exact_maximum() -> None:
    histogram = filled([1, 10**6, 10**12, MAX_NS * 4])
    assert len(histogram.counts) == BUCKETS
    assert histogram.counts[BUCKETS - 1] == 1  # the one beyond MAX_NS, in the last bucket
    assert histogram.max_ns == MAX_NS * 4
    assert histogram.quantiles([1.0])[1.0] == MAX_NS * 4


def test_since_gives_the_window_after_a_copy() -> None:
    rng = random.Random(5)
    before = [rng.randrange(100_000, 200_000) for _ in range(5_000)]
    after = [rng.randrange(2_000_000, 9_000_000) for _ in range(3_000)]
    histogram = filled(before)
    snapshot = histogram.copy()
    for value in after:
        histogram.record(value)
    assert snapshot.count == len(before)  # the copy did not move on
    window = histogram.since(snapshot)
    assert (window.count, window.sum_ns) == (len(after), sum(after))
    expected = filled(after)
    assert list(window.counts) == list(expected.counts)
    ordered = sorted(after)
    for q, found in window.quantiles((0.5, 0.99)).items():
        assert found == pytest.approx(quantile(ordered, q), rel=RELATIVE_ERROR)
    assert histogram.since(histogram.copy()).count == 0
