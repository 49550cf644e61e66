"""Side-by-side benchmark: example-service against the Go peer, in one run.

This machine is shared and noisy: absolute figures swing by a factor of two within
minutes, so every target is measured in the same run, alternating (A B A B ...), and
each figure is reported with its ratio to the Go peer measured in the same round. The
server is pinned to its own core(s) and the load generator (wrk) to another, so the
server's CPU time per request is attributable to the server alone; it is the steadiest
figure here. See bench/README.md for what each figure means.

Nothing here asserts an absolute time: this is a measuring tool, not a test.

    python -m bench --help
"""

from __future__ import annotations


class BenchError(Exception):
    """A measurement could not be taken; the message says why."""
