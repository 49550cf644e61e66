"""The default run: the targets, each measured side by side with the Go peer and
judged met or not met in one table.

A "target" elsewhere in this harness is a server; the figures it is held to are called goals
here. Each goal reads one figure from one scenario (a mode, a NUM and core counts, run
as its own alternating rounds) and compares it with the Go peer's figure from the same
rounds, with another figure of the service, or with a fixed bound.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.measure import BenchSettings
from bench.report import OTHERS_NOTE_PCT, caveats, summarise
from bench.rounds import Cell, run_rounds
from bench.targets import REFERENCE, TARGETS, Target

SERVICE = "example-service"
ACCESS_LOG_OFF = "example-service-access-log-off"
HEALTHZ_NUM = 30  # saturates the workers with compiled fib too (a request takes milliseconds)
OVERLOAD_NUM = 25  # a computation short beside a round trip: more clients than one core serves


# With NUM set, /abc runs in the worker threads. Four connections per server core keep each
# worker busy with work always queued: the figures are computations, as with the Go peer.
# More clients than that are the overload scenario's. Per core, not four in all: four in all
# leave the workers of a two-core server waiting on the round trips, idle part of the time,
# and measure the load generator rather than the service.
WORKLOAD_CONNECTIONS_PER_CORE = 4


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: str
    num: int | None
    cores: list[int]
    targets: list[str]
    connections_per_core: int | None = None  # None: --connections, in all


SCENARIOS = [
    Scenario("abc", "throughput", None, [1], [REFERENCE, SERVICE, ACCESS_LOG_OFF]),
    Scenario(
        "num25", "throughput", 25, [1, 2], [REFERENCE, SERVICE], WORKLOAD_CONNECTIONS_PER_CORE
    ),
    Scenario(
        "healthz", "healthz", HEALTHZ_NUM, [1], [REFERENCE, SERVICE], WORKLOAD_CONNECTIONS_PER_CORE
    ),
    Scenario("overload", "overload", OVERLOAD_NUM, [1], [REFERENCE, SERVICE]),
]


def scenario_seconds(settings: BenchSettings) -> int:
    """The default run's duration, roughly: every round of every scenario."""
    total = 0
    for sc in SCENARIOS:
        per_round = settings.warmup + settings.duration + 2
        if sc.mode == "throughput":
            per_round += settings.metrics_duration
        if sc.mode == "overload":
            per_round = settings.warmup + 5 * (settings.duration + 2)
        total += per_round * len(sc.targets) * len(sc.cores) * settings.rounds
    return total


@dataclass(frozen=True)
class Result:
    """One scenario's cells and their summary (medians, paired ratios)."""

    settings: BenchSettings
    cells: list[Cell]
    summary: dict[str, Any]

    def median(self, target: str, cores: int, key: str) -> float | None:
        value = self.summary.get(f"{target}@{cores}", {}).get("median", {}).get(key)
        return None if value is None else float(value)

    def ratio(self, target: str, cores: int, key: str) -> float | None:
        value = self.summary.get(f"{target}@{cores}", {}).get("ratio_to_baseline", {}).get(key)
        return None if value is None else float(value)

    def scaling(self, target: str) -> float | None:
        lo, hi = min(self.settings.cores), max(self.settings.cores)
        value = self.summary.get(f"{target}@{hi}", {}).get(f"rps_ratio_to_{lo}_cores")
        return None if value is None else float(value)


def run_scenarios(targets: list[Target], base: BenchSettings) -> dict[str, Result]:
    """Runs every scenario in turn; within one, targets alternate round by round."""
    known = {t.name: t for t in targets}
    results: dict[str, Result] = {}
    for sc in SCENARIOS:
        chosen = [known[name] for name in sc.targets if name in known]
        per_core = sc.connections_per_core is not None
        connections = sc.connections_per_core or base.connections
        settings = dataclasses.replace(
            base,
            mode=sc.mode,
            num=sc.num,
            cores=sc.cores,
            connections=connections,
            per_core=per_core,
        )
        num = "unset" if sc.num is None else sc.num
        shape = f"{connections} per core" if per_core else str(connections)
        print(
            f"{sc.name}: mode={sc.mode} NUM={num} cores={sc.cores} connections={shape}",
            flush=True,
        )
        cells = run_rounds(chosen, settings)
        results[sc.name] = Result(settings, cells, summarise(cells, settings))
    return results


def scorecard_targets() -> list[Target]:
    names = dict.fromkeys(name for sc in SCENARIOS for name in sc.targets)
    known = {t.name: t for t in TARGETS}
    return [known[name] for name in names]


@dataclass(frozen=True)
class Row:
    goal: str
    measured: str
    against: str
    ratio: str
    bound: str
    verdict: str


Compare = Callable[[float, float], bool]
AT_MOST: Compare = operator.le
AT_LEAST: Compare = operator.ge
UNDER: Compare = operator.lt
SYMBOL = {AT_MOST: "<=", AT_LEAST: ">=", UNDER: "<"}


def verdict(value: float | None, compare: Compare, bound: float, reference: bool) -> str:
    if value is None:
        return "not measured"
    if reference:
        return "(reference)"
    return "met" if compare(value, bound) else "NOT met"


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


@dataclass(frozen=True)
class Goal:
    """A figure of one scenario and the bound it must meet."""

    label: str
    scenario: str
    key: str
    spec: str  # how the figure is printed
    compare: Compare
    bound: float
    unit: str = "x"  # "x": a bound on the ratio to the Go peer; else on the figure itself
    target: str = SERVICE
    cores: int = 1
    reference: bool = False  # a labelled variant shown beside a goal, not judged

    def row(self, result: Result) -> Row:
        value = result.median(self.target, self.cores, self.key)
        ratio = result.ratio(self.target, self.cores, self.key)
        judged = ratio if self.unit == "x" else value
        bound = f"{SYMBOL[self.compare]} {self.bound:g}{'' if self.unit == 'x' else ' '}{self.unit}"
        return Row(
            self.label,
            fmt(value, self.spec),
            "Go peer " + fmt(result.median(REFERENCE, self.cores, self.key), self.spec),
            fmt(ratio, "{:.2f}x"),
            bound,
            verdict(judged, self.compare, self.bound, self.reference),
        )


RPS, CPU = "{:,.0f}", "{:.1f}"
GOALS = [
    Goal("(a) /abc req/s, NUM unset", "abc", "rps", RPS, AT_LEAST, 0.5),
    Goal("(a) /abc CPU us/req, NUM unset", "abc", "cpu_us_per_req", CPU, AT_MOST, 2),
    Goal("    the same, --access-log off: req/s", "abc", "rps", RPS, AT_LEAST, 0.5,
         target=ACCESS_LOG_OFF, reference=True),
    Goal("    the same, --access-log off: CPU us/req", "abc", "cpu_us_per_req", CPU, AT_MOST, 2,
         target=ACCESS_LOG_OFF, reference=True),
    Goal("(b) /abc req/s, NUM=25, one core", "num25", "rps", "{:,.1f}", AT_LEAST, 0.8),
    Goal("(d) /metrics p50 ms", "abc", "metrics_p50_ms", "{:.3f}", AT_MOST, 3),
    Goal("(e) RSS at idle MB", "abc", "rss_idle_mb", "{:.1f}", AT_MOST, 40, unit="MB"),
    Goal("(e) time to ready ms", "abc", "ready_ms", "{:.0f}", AT_MOST, 500, unit="ms"),
    Goal("    CPU time until ready ms", "abc", "ready_cpu_ms", "{:.0f}", AT_MOST, 500, unit="ms",
         reference=True),
    Goal(f"(f) /healthz p99 ms, /abc saturated at NUM={HEALTHZ_NUM}", "healthz",
         "healthz_p99_ms", "{:.2f}", UNDER, 20, unit="ms"),
    # Overload, NUM=25 on one core: only 2xx answers count as throughput.
    *(
        goal
        for c in (64, 256, 1024)
        for goal in (
            Goal(f"(g) {c} connections: 2xx/s over 4 connections'", "overload",
                 f"rps_c{c}_over_4", "{:.2f}", AT_LEAST, 0.9, unit=""),
            Goal(f"(g) {c} connections: 2xx/s", "overload", f"rps_c{c}", RPS, AT_LEAST, 0.8),
        )
    ),
    *(
        Goal(f"(g) {c} connections: refused %", "overload", f"refused_pct_c{c}", "{:.2f}",
             UNDER, 1, unit="%")
        for c in (64, 256)
    ),
    Goal("(g) open loop at 2x capacity: 200/s over capacity", "overload",
         "open_answered_over_capacity", "{:.2f}", AT_LEAST, 0.9, unit=""),
    Goal("(g) open loop: admitted p99 over budget + one computation", "overload",
         "open_admitted_p99_over_bound", "{:.2f}", AT_MOST, 1, unit=""),
    Goal("(g) open loop: refused p99 ms (in the service)", "overload", "open_refused_p99_ms",
         "{:.3f}", AT_MOST, 1, unit="ms"),
]  # fmt: skip


def scaling_row(num25: Result) -> Row:
    """(c): the service's two-core rate over its one-core rate, paired per round."""
    scaling = num25.scaling(SERVICE)
    return Row(
        "(c) NUM=25 req/s, two cores over one",
        fmt(num25.median(SERVICE, 2, "rps"), "{:,.1f}"),
        "one core " + fmt(num25.median(SERVICE, 1, "rps"), "{:,.1f}"),
        fmt(scaling, "{:.2f}x"),
        ">= 1.7x",
        verdict(scaling, AT_LEAST, 1.7, reference=False)
        + f" (Go peer {fmt(num25.scaling(REFERENCE), '{:.2f}x')})",
    )


def rows(results: dict[str, Result]) -> list[Row]:
    out = [goal.row(results[goal.scenario]) for goal in GOALS]
    out.insert(5, scaling_row(results["num25"]))
    # A probe that failed is not a fast probe: (f) needs every probe answered.
    failed = results["healthz"].median(SERVICE, 1, "healthz_errors")
    if failed and out[-1].verdict == "met":
        out[-1] = dataclasses.replace(out[-1], verdict=f"NOT met ({failed:.0f} probes failed)")
    return out


def machine_notes(results: dict[str, Result]) -> list[str]:
    """The run's caveats, with the shared machine's load in one line rather than per cell."""
    notes = [
        f"{name}: {note}"
        for name, r in results.items()
        for note in caveats(r.cells, r.summary, per_cell_load=False)
    ]
    others = [
        r.summary[c.key]["median"]["others_busy_pct"]
        for r in results.values()
        for c in r.cells
        if r.summary[c.key]["median"].get("others_busy_pct") is not None
    ]
    if others and max(others) > OTHERS_NOTE_PCT:
        notes.append(
            f"other work on the machine took {min(others):.0f}-{max(others):.0f}% of a CPU "
            "during the rounds: the machine is shared, so trust the ratios (taken in the same "
            "round) and CPU per request over absolute req/s"
        )
    return notes


def print_scorecard(results: dict[str, Result]) -> list[str]:
    """Prints the table and its notes; returns the notes."""
    header = Row("target", SERVICE, "compared with", "ratio", "bound", "result")
    table = [header, *rows(results)]
    columns = [list(dataclasses.astuple(r)) for r in table]
    widths = [max(len(c[i]) for c in columns) for i in range(len(dataclasses.fields(Row)))]
    for i, cols in enumerate(columns):
        print("  ".join(v.ljust(w) for v, w in zip(cols, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(
        "(medians over rounds; ratios are medians of per-round ratios, each taken in the same "
        "round; example-service runs with its default settings unless the row says otherwise)"
    )
    notes = machine_notes(results)
    for note in notes:
        print(f"note: {note}")
    return notes
