"""One run's rounds: every target at every core count, alternating, each measured alone."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from bench import BenchError
from bench.measure import MEASURES, BenchSettings
from bench.servers import free_port, start_server, stop_server
from bench.targets import RunSpec, Target

# Read once: the harness later pins itself to the load generator's CPUs.
MACHINE_CPUS = sorted(os.sched_getaffinity(0))


@dataclass
class Cell:
    """One target at one core count: its per-round figures."""

    target: Target
    cores: int
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.target.name}@{self.cores}"


def cpu_layout(cores: int) -> tuple[list[int], list[int], bool]:
    """(server cpus, load generator cpus, whether they share).

    The server takes the first `cores` CPUs this process may use and wrk the next one.
    When none is left (two cores per server on a two-core machine) wrk shares the
    server's CPUs: that mode is meant for expensive requests (--num 25), where wrk's
    share is small, and the table shows that share as wrk CPU us/req.
    """
    cpus = MACHINE_CPUS
    if cores > len(cpus):
        raise BenchError(f"--cores {cores}: only {len(cpus)} CPUs available ({cpus})")
    server, rest = cpus[:cores], cpus[cores:]
    if rest:
        return server, rest[:1], False
    return server, server, True


def run_rounds(targets: list[Target], settings: BenchSettings) -> list[Cell]:
    cells = [Cell(t, c) for c in settings.cores for t in targets]
    measure = MEASURES[settings.mode]
    for rnd in range(1, settings.rounds + 1):
        for cell in cells:
            server_cpus, loadgen_cpus, shared = cpu_layout(cell.cores)
            # The harness polls and parses on the load generator's side too.
            os.sched_setaffinity(0, loadgen_cpus)
            spec = RunSpec(free_port(), cell.cores, settings.num, settings.service)
            figures: dict[str, Any] = {"round": rnd}
            try:
                server = start_server(
                    cell.target, spec, server_cpus, settings.logdir, settings.ready_timeout
                )
                try:
                    figures.update(measure(server, settings, loadgen_cpus))
                finally:
                    stop_server(server)
            except BenchError as exc:
                figures["failed"] = str(exc)
                print(f"  round {rnd} {cell.key}: FAILED: {exc}", flush=True)
            else:
                print(f"  round {rnd} {cell.key}: {progress_line(figures, settings)}", flush=True)
            figures.update(
                server_cpus=server_cpus, loadgen_cpus=loadgen_cpus, loadgen_shares_cpus=shared
            )
            cell.rounds.append(figures)
    return cells


def progress_line(f: dict[str, Any], settings: BenchSettings) -> str:
    if settings.mode == "overload":
        closed = ", ".join(
            f"{c}: {f[f'rps_c{c}']:,.0f}/s {f[f'refused_pct_c{c}']:.1f}% refused"
            for c in (4, 64, 256, 1024)
            if f.get(f"rps_c{c}") is not None and f.get(f"refused_pct_c{c}") is not None
        )
        answered = f.get("open_answered_over_capacity")
        opened = "" if answered is None else f"; open loop {answered:.2f}x capacity answered"
        return closed + opened
    if settings.mode == "healthz":
        return (
            f"/healthz p99 {f['healthz_p99_ms']:.2f} ms over {f['healthz_probes']} probes, "
            f"/abc {f['rps']:,.1f} req/s, {f['errors']} errors"
        )
    cpu = f["cpu_us_per_req"]
    return (
        f"{f['rps']:,.0f} req/s, p99 {f['p99_ms']:.2f} ms, "
        f"{cpu:.1f} us CPU/req, {f['errors']} errors, "
        f"/metrics p50 {f['metrics_p50_ms']:.3f} ms, ready {f['ready_ms']:.0f} ms"
        if cpu is not None
        else "no requests completed"
    )
