"""The measurements of one round on one running server: throughput (the /abc load, the
/metrics run, memory, time to ready) or /healthz latency while /abc is saturated."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import BenchError
from bench.overload import measure_overload
from bench.sampling import CpuReading, tree_memory_mb, wait_idle
from bench.servers import Server, http_get
from bench.targets import LOOPBACK
from bench.wrk import Wrk
from example_service.load.stats import quantile
from example_service.server.handlers import REPLY_WITH_NUM, REPLY_WITHOUT_NUM

# How long the backlog wrk leaves behind may take to finish (see sampling.wait_idle).
SETTLE_TIMEOUT = 15.0


@dataclass
class BenchSettings:
    mode: str
    num: int | None
    cores: list[int]
    duration: int
    warmup: int
    metrics_duration: int
    metrics_connections: int
    connections: int
    # connections counts per server core: a server on two cores gets twice the load, so that
    # each of its workers has work queued as on one core (the scaling target, (c)).
    per_core: bool
    threads: int
    rounds: int
    ready_timeout: float
    probe_interval: float
    service: Path
    baseline: str
    script: Path
    logdir: Path

    def expected_reply(self) -> bytes:
        return REPLY_WITH_NUM if self.num is not None else REPLY_WITHOUT_NUM

    def abc_connections(self, server_cpus: int) -> int:
        return self.connections * server_cpus if self.per_core else self.connections


def per_request_us(seconds: float, requests: int) -> float | None:
    return seconds / requests * 1e6 if requests else None


def cpu_figures(cpu: dict[str, float], requests: int, server_cpus: int) -> dict[str, Any]:
    wall = cpu["wall_s"]
    return {
        "cpu_us_per_req": per_request_us(cpu["server_cpu_s"], requests),
        "loadgen_cpu_us_per_req": per_request_us(cpu["loadgen_cpu_s"], requests),
        # Below about 95 the server was not the bottleneck: look at wrk and others next.
        "server_busy_pct": 100 * cpu["server_cpu_s"] / wall / server_cpus,
        "loadgen_busy_pct": 100 * cpu["loadgen_cpu_s"] / wall,
        "others_busy_pct": 100 * cpu["others_cpu_s"] / wall,
        "server_cpus_idle_pct": 100 * cpu["server_cpus_idle_s"] / wall / server_cpus,
    }


def check_reply(server: Server, settings: BenchSettings) -> None:
    status, body = http_get(server.port, "/abc", timeout=30)
    if status != 200 or body != settings.expected_reply():
        raise BenchError(
            f"{server.target.name}: GET /abc answered {status} {body!r}, "
            f"expected 200 {settings.expected_reply()!r}"
        )


def measure_throughput(
    server: Server, settings: BenchSettings, loadgen: Sequence[int]
) -> dict[str, Any]:
    s = settings
    base = f"http://{LOOPBACK}:{server.port}"
    figures: dict[str, Any] = {
        "ready_ms": server.ready_s * 1e3,
        "ready_cpu_ms": server.ready_cpu_s * 1e3,
    }
    figures["rss_idle_mb"], figures["pss_idle_mb"] = tree_memory_mb(server.pid)
    check_reply(server, s)

    def wrk(path: str, connections: int, duration: int) -> Wrk:
        return Wrk(base + path, loadgen, s.script, connections, s.threads, duration, 10)

    connections = s.abc_connections(len(server.cpus))
    if s.warmup:
        wrk("/abc", connections, s.warmup).run()
        wait_idle(server.pid, SETTLE_TIMEOUT)

    before = CpuReading.take(server.pid)
    abc = wrk("/abc", connections, s.duration).run()
    cpu = before.until(CpuReading.take(server.pid), server.cpus)
    wait_idle(server.pid, SETTLE_TIMEOUT)
    figures.update(
        rps=abc.rps,
        p50_ms=abc.p50_ms,
        p99_ms=abc.p99_ms,
        errors=abc.error_count,
        error_kinds=abc.errors,
        requests=abc.answered,
        **cpu,
        **cpu_figures(cpu, abc.answered, len(server.cpus)),
    )

    status, body = http_get(server.port, "/metrics", timeout=10)
    figures["metrics_bytes"] = len(body) if status == 200 else None
    before = CpuReading.take(server.pid)
    scrape = wrk("/metrics", s.metrics_connections, s.metrics_duration).run()
    cpu = before.until(CpuReading.take(server.pid), server.cpus)
    figures.update(
        metrics_p50_ms=scrape.p50_ms,
        metrics_p99_ms=scrape.p99_ms,
        metrics_rps=scrape.rps,
        metrics_errors=scrape.error_count,
        metrics_cpu_us_per_scrape=per_request_us(cpu["server_cpu_s"], scrape.requests),
    )
    figures["rss_loaded_mb"], figures["pss_loaded_mb"] = tree_memory_mb(server.pid)
    return figures


@dataclass
class ProbeResult:
    latencies_ms: list[float]
    errors: int

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile: the value below which q percent of probes fall."""
        if not self.latencies_ms:
            return None
        return quantile(sorted(self.latencies_ms), q / 100)


def probe(port: int, path: str, duration: float, interval: float, timeout: float) -> ProbeResult:
    """GET path every `interval` seconds on a fresh connection, as kubelet probes do.

    Paced rather than back to back, so the probe is not itself a load; a fresh
    connection per probe, so accepting it is part of what is timed (from connect to
    the end of the response). A failed or timed-out probe counts as an error and as a
    latency of however long it took.
    """
    result = ProbeResult([], 0)
    end = time.perf_counter() + duration
    next_at = time.perf_counter()
    while next_at < end:
        time.sleep(max(0.0, next_at - time.perf_counter()))
        started = time.perf_counter()
        try:
            status, _ = http_get(port, path, timeout=timeout)
        except (OSError, BenchError, ValueError, IndexError):
            status = 0
        result.latencies_ms.append((time.perf_counter() - started) * 1e3)
        if status != 200:
            result.errors += 1
        # A slow probe delays the next one rather than piling up behind it.
        next_at = max(next_at + interval, time.perf_counter())
    return result


def measure_healthz(
    server: Server, settings: BenchSettings, loadgen: Sequence[int]
) -> dict[str, Any]:
    """/healthz latency while /abc is saturated (at NUM=27 unless told otherwise)."""
    s = settings
    figures: dict[str, Any] = {
        "ready_ms": server.ready_s * 1e3,
        "ready_cpu_ms": server.ready_cpu_s * 1e3,
    }
    figures["rss_idle_mb"], figures["pss_idle_mb"] = tree_memory_mb(server.pid)
    check_reply(server, s)

    head_start = 1.0
    load = Wrk(
        f"http://{LOOPBACK}:{server.port}/abc",
        loadgen,
        s.script,
        connections=s.abc_connections(len(server.cpus)),
        threads=s.threads,
        duration_s=s.duration + 2 * int(head_start),
        # Saturating requests queue behind each other: give them the service's deadline.
        timeout_s=30,
    )
    before = CpuReading.take(server.pid)
    load.start()
    try:
        # Let the load fill every connection before probing.
        time.sleep(head_start)
        probed = probe(server.port, "/healthz", s.duration, s.probe_interval, timeout=5.0)
    finally:
        loaded = load.finish()
    cpu = before.until(CpuReading.take(server.pid), server.cpus)
    figures.update(
        healthz_p50_ms=probed.percentile(50),
        healthz_p99_ms=probed.percentile(99),
        healthz_max_ms=probed.percentile(100),
        healthz_probes=len(probed.latencies_ms),
        healthz_errors=probed.errors,
        rps=loaded.rps,
        errors=loaded.error_count,
        error_kinds=loaded.errors,
        requests=loaded.answered,
        abc_p50_ms=loaded.p50_ms,
        abc_p99_ms=loaded.p99_ms,
        **cpu,
        # Paced probes cost next to nothing beside the saturating work.
        **cpu_figures(cpu, loaded.answered, len(server.cpus)),
    )
    return figures


Measure = Callable[[Server, BenchSettings, Sequence[int]], dict[str, Any]]
MEASURES: dict[str, Measure] = {
    "throughput": measure_throughput,
    "healthz": measure_healthz,
    "overload": measure_overload,
}
