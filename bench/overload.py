"""Overload without collapse: /abc at NUM=25 under more clients than one core
serves, closed loop and open loop, in one round on one running server.

Closed loop: wrk at 4, 64, 256 and 1,024 connections, each sending its next request the
moment it has an answer, a refusal included (clients that retry at once). Throughput counts
2xx answers only, with the refused share beside it, and each count's 2xx rate over the
4-connection one of the same round.

Open loop: the project's own `example-service load --rate` at twice the capacity (the highest
closed-loop 2xx rate of the same round): the share of the capacity answered 200, and, from
the service's own access log (the Go peer keeps none), the admitted requests' p99 against
the queueing budget plus one computation and the refusals' p99.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bench import BenchError
from bench.sampling import wait_idle
from bench.servers import Server
from bench.targets import LOOPBACK
from bench.wrk import Wrk
from example_service.load.stats import quantile
from example_service.settings import Settings

if TYPE_CHECKING:
    from bench.measure import BenchSettings

CONNECTIONS = (4, 64, 256, 1024)
# The load command's own ceiling on requests waiting for an answer at once.
MAX_IN_FLIGHT = 1000
SETTLE_TIMEOUT = 15.0
# What example-service admits by default (MAX_QUEUE_DELAY unset).
BUDGET_S = Settings().queue_delay


def measure_overload(
    server: Server, settings: BenchSettings, loadgen: Sequence[int]
) -> dict[str, Any]:
    s = settings
    url = f"http://{LOOPBACK}:{server.port}/abc"
    figures: dict[str, Any] = {}
    if s.warmup:
        Wrk(url, loadgen, s.script, CONNECTIONS[0], s.threads, s.warmup, 10).run()
        wait_idle(server.pid, SETTLE_TIMEOUT)
    for connections in CONNECTIONS:
        threads = max(s.threads, 2 if connections > 64 else 1)
        load = Wrk(url, loadgen, s.script, connections, threads, s.duration, 10).run()
        wait_idle(server.pid, SETTLE_TIMEOUT)
        figures[f"rps_c{connections}"] = load.rps
        figures[f"refused_pct_c{connections}"] = (
            100 * load.errors["status"] / load.requests if load.requests else None
        )
        figures[f"p99_ms_c{connections}"] = load.p99_ms
        figures[f"socket_errors_c{connections}"] = load.error_count - load.errors["status"]
    four = figures[f"rps_c{CONNECTIONS[0]}"]
    for connections in CONNECTIONS[1:]:
        figures[f"rps_c{connections}_over_4"] = (
            figures[f"rps_c{connections}"] / four if four else None
        )
    # The most 2xx answers a second the server gave in this round, at any count.
    capacity = max(figures[f"rps_c{connections}"] for connections in CONNECTIONS)
    figures["capacity_rps"] = capacity
    if capacity:
        figures.update(open_loop(server, s, loadgen, url, capacity))
    return figures


def open_loop(
    server: Server, s: BenchSettings, loadgen: Sequence[int], url: str, capacity: float
) -> dict[str, Any]:
    rate = 2 * capacity
    log = server.component.log_path
    logged = log.stat().st_size if log.exists() else 0
    command = [
        "taskset", "-c", ",".join(map(str, loadgen)), str(s.service), "load", url,
        "--rate", f"{rate:.0f}", "--duration", str(s.duration),
        "--max-in-flight", str(MAX_IN_FLIGHT), "--timeout", "15s", "--json", "--no-progress",
    ]  # fmt: skip
    try:
        run = subprocess.run(
            command, capture_output=True, text=True, timeout=s.duration + 60, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"the open loop failed: {exc}") from exc
    summary = json.loads(run.stdout)
    wait_idle(server.pid, SETTLE_TIMEOUT)
    codes = summary["status_codes"]
    seconds = summary["duration_seconds"]
    figures: dict[str, Any] = {
        "open_rate": rate,
        "open_answered_over_capacity": codes.get("200", 0) / seconds / capacity,
        "open_refused_pct": 100 * codes.get("503", 0) / max(summary["sent"], 1),
        "open_p99_ms": summary["latency_seconds"]["p99"] * 1e3,
        "open_generator_behind": bool(summary["generator"]["behind"]),
    }
    served = _access_lines(log, logged)
    admitted = sorted(e["duration_ms"] for e in served if e["status"] == 200)
    refused = sorted(e["duration_ms"] for e in served if e["status"] == 503)
    if admitted:
        bound_ms = (BUDGET_S + 1 / capacity) * 1e3
        p99 = quantile(admitted, 0.99)
        figures.update(open_admitted_p99_ms=p99, open_admitted_p99_over_bound=p99 / bound_ms)
    if refused:
        figures["open_refused_p99_ms"] = quantile(refused, 0.99)
    return figures


def _access_lines(log: Any, offset: int) -> list[dict[str, Any]]:
    """The service's /abc access lines written since offset (none for the Go peer)."""
    if not log.exists():
        return []
    with log.open("rb") as file:
        file.seek(offset)
        text = file.read().decode(errors="replace")
    lines = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("message") == "request" and entry.get("route") == "/abc":
            lines.append(entry)
    return lines
