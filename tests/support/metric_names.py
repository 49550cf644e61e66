"""Metric names more than one test checks, written once."""

from __future__ import annotations

# prometheus-client's process collector, as the service exposes them.
PROCESS_SERIES = (
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_start_time_seconds",
)
