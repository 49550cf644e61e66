"""The figures of a run: their medians and paired ratios, the table, the notes on what makes
a run less trustworthy, and the machine it ran on."""

from __future__ import annotations

import contextlib
import platform
import socket
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import BenchSettings
from bench.overload import CONNECTIONS
from bench.rounds import MACHINE_CPUS, Cell


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    fmt: str
    ratio: bool = True  # False for diagnostics, whose ratio to the peer means nothing


THROUGHPUT_FIGURES = [
    Figure("rps", "/abc req/s", "{:,.0f}"),
    Figure("p50_ms", "/abc p50 ms", "{:.2f}"),
    Figure("p99_ms", "/abc p99 ms", "{:.2f}"),
    Figure("errors", "/abc errors", "{:.0f}", ratio=False),
    Figure("cpu_us_per_req", "server CPU us/req", "{:.1f}"),
    Figure("server_busy_pct", "server busy % of its CPUs", "{:.0f}", ratio=False),
    Figure("server_cpus_idle_pct", "server's CPUs idle %", "{:.0f}", ratio=False),
    Figure("loadgen_busy_pct", "wrk busy % of a CPU", "{:.0f}", ratio=False),
    Figure("others_busy_pct", "other processes % of a CPU", "{:.0f}", ratio=False),
    Figure("metrics_p50_ms", "/metrics p50 ms", "{:.3f}"),
    Figure("metrics_cpu_us_per_scrape", "/metrics CPU us", "{:.0f}"),
    Figure("metrics_bytes", "/metrics bytes", "{:,.0f}"),
    Figure("rss_idle_mb", "RSS idle MB", "{:.1f}"),
    Figure("pss_idle_mb", "PSS idle MB", "{:.1f}"),
    Figure("rss_loaded_mb", "RSS after load MB", "{:.1f}"),
    Figure("ready_ms", "time to ready ms", "{:.1f}"),
    Figure("ready_cpu_ms", "CPU until ready ms", "{:.1f}"),
]

HEALTHZ_FIGURES = [
    Figure("healthz_p50_ms", "/healthz p50 ms", "{:.2f}"),
    Figure("healthz_p99_ms", "/healthz p99 ms", "{:.2f}"),
    Figure("healthz_max_ms", "/healthz max ms", "{:.2f}"),
    Figure("healthz_probes", "/healthz probes", "{:,.0f}", ratio=False),
    Figure("healthz_errors", "/healthz errors", "{:.0f}", ratio=False),
    Figure("rps", "/abc req/s (load)", "{:,.1f}"),
    Figure("errors", "/abc errors", "{:.0f}", ratio=False),
    Figure("cpu_us_per_req", "server CPU us/req", "{:,.0f}"),
    Figure("server_busy_pct", "server busy % of its CPUs", "{:.0f}", ratio=False),
    Figure("others_busy_pct", "other processes % of a CPU", "{:.0f}", ratio=False),
    Figure("rss_idle_mb", "RSS idle MB", "{:.1f}"),
    Figure("ready_ms", "time to ready ms", "{:.1f}"),
    Figure("ready_cpu_ms", "CPU until ready ms", "{:.1f}"),
]
OVERLOAD_FIGURES = [
    *(
        figure
        for connections in CONNECTIONS
        for figure in (
            Figure(f"rps_c{connections}", f"{connections} connections: 2xx/s", "{:,.0f}"),
            Figure(f"refused_pct_c{connections}", "  refused %", "{:.2f}", ratio=False),
            Figure(f"p99_ms_c{connections}", "  p99 ms", "{:.2f}"),
        )
    ),
    *(
        Figure(f"rps_c{c}_over_4", f"{c} connections: 2xx/s over 4's", "{:.2f}", ratio=False)
        for c in CONNECTIONS[1:]
    ),
    Figure("capacity_rps", "capacity: most 2xx/s", "{:,.0f}"),
    Figure("open_rate", "open loop: rate sent req/s", "{:,.0f}", ratio=False),
    Figure("open_answered_over_capacity", "  200/s over capacity", "{:.2f}", ratio=False),
    Figure("open_refused_pct", "  refused %", "{:.1f}", ratio=False),
    Figure("open_admitted_p99_ms", "  admitted p99 ms (service)", "{:.1f}", ratio=False),
    Figure("open_admitted_p99_over_bound", "  over budget + one", "{:.2f}", ratio=False),
    Figure("open_refused_p99_ms", "  refused p99 ms (service)", "{:.3f}", ratio=False),
    Figure("open_p99_ms", "  p99 ms (client, all)", "{:.1f}", ratio=False),
]
FIGURES = {
    "throughput": THROUGHPUT_FIGURES,
    "healthz": HEALTHZ_FIGURES,
    "overload": OVERLOAD_FIGURES,
}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(cells: list[Cell], settings: BenchSettings) -> dict[str, Any]:
    """Medians per cell, and ratios to the reference paired round by round.

    Pairing each round's figure with the reference's figure from the same round cancels
    most of the drift of a shared machine; the median of those ratios is reported.
    """
    figures = FIGURES[settings.mode]
    by_key = {c.key: c for c in cells}
    summary: dict[str, Any] = {}
    for cell in cells:
        ok = [r for r in cell.rounds if "failed" not in r]
        medians = {
            f.key: _median([r[f.key] for r in ok if r.get(f.key) is not None]) for f in figures
        }
        ref = by_key.get(f"{settings.baseline}@{cell.cores}")
        ratios: dict[str, float | None] = {}
        if ref is not None and ref is not cell:
            for f in figures:
                pairs = [
                    r[f.key] / q[f.key]
                    for r, q in zip(cell.rounds, ref.rounds, strict=True)
                    if r.get(f.key) is not None and q.get(f.key)
                ]
                ratios[f.key] = _median(pairs)
        summary[cell.key] = {
            "target": cell.target.name,
            "cores": cell.cores,
            "rounds_ok": len(ok),
            "median": medians,
            "ratio_to_baseline": ratios,
        }
    if len(settings.cores) > 1:
        lo, hi = min(settings.cores), max(settings.cores)
        for name in dict.fromkeys(c.target.name for c in cells):
            a, b = by_key[f"{name}@{lo}"], by_key[f"{name}@{hi}"]
            pairs = [
                y["rps"] / x["rps"]
                for x, y in zip(a.rounds, b.rounds, strict=True)
                if x.get("rps") and y.get("rps") is not None
            ]
            summary[f"{name}@{hi}"][f"rps_ratio_to_{lo}_cores"] = _median(pairs)
    return summary


def print_table(cells: list[Cell], summary: dict[str, Any], settings: BenchSettings) -> None:
    figures = FIGURES[settings.mode]
    header = ["figure (median)", *(c.key for c in cells)]
    rows = [header]
    for f in figures:
        row = [f.label]
        for cell in cells:
            s = summary[cell.key]
            value = s["median"].get(f.key)
            text = "-" if value is None else f.fmt.format(value)
            ratio = s["ratio_to_baseline"].get(f.key) if f.ratio else None
            if ratio is not None:
                text += f" ({ratio:.2f}x)"
            row.append(text)
        rows.append(row)
    scaling_key = f"rps_ratio_to_{min(settings.cores)}_cores"
    if len(settings.cores) > 1:
        row = [f"req/s {max(settings.cores)} cores / {min(settings.cores)}"]
        for cell in cells:
            ratio = summary[cell.key].get(scaling_key)
            row.append("" if ratio is None else f"{ratio:.2f}x")
        rows.append(row)
    rows.append(["rounds ok", *(f"{summary[c.key]['rounds_ok']}/{settings.rounds}" for c in cells)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        cols = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cols))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(
        f"(ratios: each target over {settings.baseline} at the same core count, paired per round)"
    )
    for note in caveats(cells, summary):
        print(f"note: {note}")


# Above this share of a CPU taken by other work, a note says the run was disturbed.
OTHERS_NOTE_PCT = 25


def caveats(cells: list[Cell], summary: dict[str, Any], per_cell_load: bool = True) -> list[str]:
    """What makes this run's ratios less trustworthy, read off its own figures.

    per_cell_load=False leaves out the notes on other work, for a caller that sums the
    machine's load up in one line.
    """
    notes = []
    for cell in cells:
        median = summary[cell.key]["median"]
        idle = median.get("server_cpus_idle_pct")
        if idle is not None and idle > 10:
            notes.append(
                f"{cell.key}'s CPUs were {idle:.0f}% idle under load: it was not saturated "
                "(wrk or other processes bound it), so its req/s understates it; "
                "CPU per request still holds"
            )
        others = median.get("others_busy_pct")
        if per_cell_load and others is not None and others > OTHERS_NOTE_PCT:
            notes.append(
                f"during {cell.key} other work on the machine took {others:.0f}% of a CPU: "
                "prefer the CPU-per-request ratios, or rerun when the machine is quieter"
            )
    return notes


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "cpu_model": model,
        "cpus": MACHINE_CPUS,
        "python": platform.python_version(),
        "go": tool_version(["go", "version"]),
        "wrk": tool_version(["wrk", "-v"]),
    }
