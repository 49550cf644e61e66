"""Latencies in constant memory with a bounded relative error: HDR-style log-linear buckets.

Below 2**(PRECISION_BITS + 1) ns every nanosecond has its own bucket. Above, each power of
two is cut into 2**PRECISION_BITS equal buckets, so a bucket is never wider than 1/128 of
its lower bound. A quantile is reported as the middle of its bucket, clamped to the exact
minimum and maximum, hence within 1/256 (0.4 %) of a latency that was really observed;
the first and last ranks are the exact minimum and maximum.
The buckets cover up to MAX_NS; a longer latency counts in the last bucket and still
reaches the exact maximum. The whole histogram is one array of about 5,000 counters (39 KiB)
however long the run.

The HdrHistogram package does the same with more options, but records through several
pure-Python calls (about five times the cost of `record` here, per answer) and needs
setuptools and pbr at run time; this is the part the load command needs.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable

PRECISION_BITS = 7
_SUB_BUCKETS = 1 << PRECISION_BITS
_LINEAR = _SUB_BUCKETS << 1  # values below this have a bucket each
MAX_NS = (1 << 44) - 1  # about 4.9 hours: above any --timeout a run would use


def bucket_index(ns: int) -> int:
    """The bucket of a non-negative latency in nanoseconds (MAX_NS and above: the last)."""
    if ns < _LINEAR:
        return ns
    ns = min(ns, MAX_NS)
    shift = ns.bit_length() - PRECISION_BITS - 1
    return (shift << PRECISION_BITS) + (ns >> shift)


BUCKETS = bucket_index(MAX_NS) + 1


def bucket_bounds(index: int) -> tuple[int, int]:
    """The latencies [low, high] in nanoseconds that fall in bucket index."""
    if index < _LINEAR:
        return index, index
    shift = (index >> PRECISION_BITS) - 1
    low = (index - (shift << PRECISION_BITS)) << shift
    return low, low + (1 << shift) - 1


class LatencyHistogram:
    """Counts of latencies by bucket, with their exact count, sum, minimum and maximum."""

    __slots__ = ("count", "counts", "max_ns", "min_ns", "sum_ns")

    def __init__(self) -> None:
        self.counts = array("Q", bytes(8 * BUCKETS))
        self.count = 0
        self.sum_ns = 0
        self.min_ns = 0
        self.max_ns = 0

    def record(self, ns: int) -> None:
        """One latency; called once per answer, so kept to a few operations."""
        ns = max(ns, 0)
        self.counts[bucket_index(ns)] += 1
        if not self.count or ns < self.min_ns:
            self.min_ns = ns
        self.max_ns = max(ns, self.max_ns)
        self.count += 1
        self.sum_ns += ns

    def copy(self) -> LatencyHistogram:
        other = LatencyHistogram()
        other.counts = array("Q", self.counts)
        other.count, other.sum_ns = self.count, self.sum_ns
        other.min_ns, other.max_ns = self.min_ns, self.max_ns
        return other

    def _used(self) -> tuple[int, int]:
        """The first and last bucket anything was recorded in: the rest are zeros."""
        return bucket_index(self.min_ns), bucket_index(self.max_ns)

    def since(self, earlier: LatencyHistogram) -> LatencyHistogram:
        """What was recorded after `earlier`, a copy() of this histogram taken before.

        The window's exact minimum and maximum are unknown: its extreme buckets' bounds,
        clamped to the whole run's, stand for them.
        """
        window = LatencyHistogram()
        window.count = self.count - earlier.count
        window.sum_ns = self.sum_ns - earlier.sum_ns
        if not window.count:
            return window
        first, last = self._used()
        pairs = zip(self.counts[first : last + 1], earlier.counts[first : last + 1], strict=True)
        counts = array("Q", (now - then for now, then in pairs))
        window.counts[first : last + 1] = counts
        used = [first + offset for offset, count in enumerate(counts) if count]
        window.min_ns = max(self.min_ns, bucket_bounds(used[0])[0])
        window.max_ns = min(self.max_ns, bucket_bounds(used[-1])[1])
        return window

    def quantiles(self, qs: Iterable[float]) -> dict[float, float]:
        """Nearest-rank quantiles in nanoseconds (NaN when empty), in one pass."""
        wanted = sorted(set(qs))
        if not self.count:
            return {q: math.nan for q in wanted}
        ranks = [(max(1, math.ceil(q * self.count)), q) for q in wanted]
        found: dict[float, float] = {}
        seen = 0
        pending = iter(ranks)
        rank, q = next(pending)
        first, last = self._used()
        for index, count in enumerate(self.counts[first : last + 1], start=first):
            if not count:
                continue
            seen += count
            while seen >= rank:
                if rank == 1:
                    found[q] = self.min_ns
                elif rank == self.count:
                    found[q] = self.max_ns
                else:
                    low, high = bucket_bounds(index)
                    found[q] = min(max((low + high) / 2, self.min_ns), self.max_ns)
                step = next(pending, None)
                if step is None:
                    return found
                rank, q = step
        raise AssertionError("histogram counts disagree with its count")
