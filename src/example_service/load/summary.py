"""The end-of-run summary: frozen figures, as text for people and JSON for scripts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from example_service.load.runner import Plan, Times
from example_service.load.stats import (
    FAILURES,
    LatencyFigures,
    Outcome,
    Recorder,
    TargetCounts,
)

# Past these the load generator, not the target, limited the run: its figures then say
# more about the client than about the service.
LAG_LIMIT = 0.005  # seconds late at the 99th percentile of the open loop's requests
BUSY_LIMIT = 0.9  # share of the run's wall time the event loop's thread was on a CPU
LAG_QUANTILES = (0.5, 0.99)

_FAILURE_TEXT = {
    Outcome.TIMEOUT: "timeout",
    Outcome.CONNECTION_ERROR: "connection error",
    Outcome.PROTOCOL_ERROR: "protocol error",
    Outcome.OTHER_ERROR: "other error",
    Outcome.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class Schedule:
    """How the open loop kept its schedule."""

    due: int  # requests scheduled before sending stopped
    waited_for_slot: int  # due while every connection was busy: the target's doing
    lag: LatencyFigures  # how late the rest started: the tool's own doing


@dataclass(frozen=True)
class Generator:
    """How the load generator itself fared, so a reader knows whom the figures measure."""

    cpu_seconds: float
    loop_busy: float
    schedule: Schedule | None  # None in the closed loop
    progress_cpu_seconds: float | None  # what the progress bar cost; None without one

    def falling_behind(self) -> list[str]:
        """Why the figures measure the client, in words; empty when they do not."""
        reasons = []
        if self.loop_busy >= BUSY_LIMIT:
            reasons.append(
                f"its event loop was busy {self.loop_busy:.0%} of the run (CPU-bound), "
                "so answers waited for it"
            )
        if self.schedule is not None:
            late = self.schedule.lag.quantiles[0.99]
            if late > LAG_LIMIT:
                reasons.append(
                    f"it started requests late: p99 {format_seconds(late)} behind schedule "
                    f"(limit {format_seconds(LAG_LIMIT)})"
                )
        return reasons


@dataclass(frozen=True)
class Summary:
    plan: Plan
    times: Times
    sent: int
    outcomes: dict[Outcome, int]  # every outcome, zeros included
    codes: dict[int, int]  # HTTP status code -> answers
    latency: LatencyFigures
    targets: dict[str, TargetCounts]
    generator: Generator

    @classmethod
    def of(
        cls,
        plan: Plan,
        times: Times,
        recorder: Recorder,
        progress_cpu_seconds: float | None = None,
    ) -> Summary:
        schedule = None
        if times.due is not None:
            schedule = Schedule(
                due=times.due,
                waited_for_slot=recorder.waited_for_slot,
                lag=LatencyFigures.of(recorder.lag, LAG_QUANTILES),
            )
        busy = times.loop_cpu_seconds / times.elapsed if times.elapsed > 0 else 0.0
        targets: dict[str, TargetCounts] = {}
        for url, counts in zip(plan.urls, recorder.targets, strict=True):
            # The same URL given twice is one target to a reader.
            total = targets.setdefault(url, TargetCounts())
            total.sent += counts.sent
            total.succeeded += counts.succeeded
        return cls(
            plan=plan,
            times=times,
            sent=recorder.sent,
            outcomes={outcome: recorder.outcomes[outcome] for outcome in Outcome},
            codes=dict(sorted(recorder.codes.items())),
            latency=LatencyFigures.of(recorder.latency),
            targets=targets,
            generator=Generator(times.cpu_seconds, busy, schedule, progress_cpu_seconds),
        )

    @property
    def succeeded(self) -> int:
        return self.outcomes[Outcome.SUCCESS]

    @property
    def failed(self) -> int:
        return sum(self.outcomes[outcome] for outcome in FAILURES)

    @property
    def requests_per_second(self) -> float:
        """Finished requests per second of the run's wall time."""
        if self.times.elapsed <= 0:
            return 0.0
        return (self.succeeded + self.failed) / self.times.elapsed

    def failure_kinds(self) -> Iterator[tuple[str, int, str]]:
        """(kind, count, detail) for each kind of failure that happened, HTTP classes first."""
        classes: dict[int, dict[int, int]] = {}
        for code, count in self.codes.items():
            if not 200 <= code < 300:
                classes.setdefault(code // 100, {})[code] = count
        for status_class, codes in sorted(classes.items()):
            detail = ", ".join(f"{code}: {count}" for code, count in codes.items())
            yield f"HTTP {status_class}xx", sum(codes.values()), detail
        for outcome, text in _FAILURE_TEXT.items():
            if self.outcomes[outcome]:
                yield text, self.outcomes[outcome], ""


def format_seconds(value: float) -> str:
    """0.00123 as "1.23 ms", 2.5 as "2.5 s"; NaN (nothing measured) as "-"."""
    if math.isnan(value):
        return "-"
    if value < 1:
        return f"{value * 1000:.3g} ms"
    return f"{value:.3g} s"


def _pacing(plan: Plan) -> str:
    if plan.pacing.rate is not None:
        return f"rate {plan.pacing.rate:g} req/s"
    return f"concurrency {plan.pacing.concurrency}"


def render_text(summary: Summary) -> str:
    times, latency = summary.times, summary.latency

    def row(label: str, count: int, detail: str = "") -> str:
        return f"{label:<20}{count:>9}" + (f"   ({detail})" if detail else "")

    lines = [
        f"{'run':<20}{_pacing(summary.plan)}, {times.elapsed:.2f} s, stopped by {times.stopped_by}",
        row("sent", summary.sent),
        row("succeeded", summary.succeeded),
        row("failed", summary.failed),
    ]
    lines += [row(f"  {kind}", count, detail) for kind, count, detail in summary.failure_kinds()]
    lines.append(f"{'req/s':<20}{summary.requests_per_second:>9.1f}")
    if latency.count:
        quantiles = "   ".join(
            f"p{q * 100:g} {format_seconds(v)}" for q, v in latency.quantiles.items()
        )
        lines.append(
            f"{'latency':<20}{quantiles}   ({latency.count} answers; mean "
            f"{format_seconds(latency.mean)}, max {format_seconds(latency.max)})"
        )
    else:
        lines.append(f"{'latency':<20}none measured: no HTTP answer")
    if len(summary.targets) > 1:
        lines += [
            f"{'target':<20}{url}: sent {counts.sent}, succeeded {counts.succeeded}"
            for url, counts in summary.targets.items()
        ]
    return "\n".join(lines + _generator_lines(summary))


def _generator_lines(summary: Summary) -> list[str]:
    generator = summary.generator
    bar = generator.progress_cpu_seconds
    lines = [
        f"{'load generator':<20}CPU {generator.cpu_seconds:.2f} s"
        + ("" if bar is None else f" (progress bar {bar:.2f} s)")
        + f", event loop busy {generator.loop_busy:.0%} of the run"
    ]
    schedule = generator.schedule
    if schedule is not None:
        lag = schedule.lag
        late = (
            f"p50 {format_seconds(lag.quantiles[0.5])}, p99 {format_seconds(lag.quantiles[0.99])}, "
            f"max {format_seconds(lag.max)} late"
            if lag.count
            else "none started on its own"
        )
        lines.append(
            f"{'schedule':<20}{schedule.due} due, {summary.sent} sent; "
            f"{schedule.waited_for_slot} waited for a free connection; others {late}"
        )
    reasons = generator.falling_behind()
    if reasons:
        lines.append(
            f"{'WARNING':<20}the load generator fell behind: {'; '.join(reasons)}. "
            "These figures measure the client as much as the service."
        )
    return lines


def _number(value: float) -> float | None:
    # JSON has no NaN: a latency that was never measured is null.
    return None if math.isnan(value) else value


def to_json(summary: Summary) -> dict[str, Any]:
    plan, times, latency = summary.plan, summary.times, summary.latency
    return {
        "targets": list(plan.urls),
        "mode": plan.pacing.mode,
        "rate": plan.pacing.rate,
        "concurrency": plan.pacing.concurrency,
        "max_in_flight": plan.pacing.max_in_flight if plan.pacing.rate is not None else None,
        "limits": {"count": plan.limits.count, "duration_seconds": plan.limits.duration},
        "timeout_seconds": plan.timeout,
        "stopped_by": str(times.stopped_by),
        "started_at": times.started_at,
        "finished_at": times.finished_at,
        "duration_seconds": times.elapsed,
        "sent": summary.sent,
        "succeeded": summary.succeeded,
        "failed": summary.failed,
        "outcomes": {str(outcome): count for outcome, count in summary.outcomes.items()},
        "status_codes": {str(code): count for code, count in summary.codes.items()},
        "requests_per_second": summary.requests_per_second,
        "latency_seconds": {
            "count": latency.count,
            "sum": latency.sum,
            "mean": _number(latency.mean),
            "max": _number(latency.max),
            **{f"p{q * 100:g}": _number(value) for q, value in latency.quantiles.items()},
        },
        "per_target": {
            url: {"sent": counts.sent, "succeeded": counts.succeeded}
            for url, counts in summary.targets.items()
        },
        "generator": _generator_json(summary.generator),
    }


def _generator_json(generator: Generator) -> dict[str, Any]:
    reasons = generator.falling_behind()
    schedule = generator.schedule
    return {
        "behind": bool(reasons),
        "reasons": reasons,
        "cpu_seconds": generator.cpu_seconds,
        "progress_cpu_seconds": generator.progress_cpu_seconds,
        "loop_busy_ratio": generator.loop_busy,
        "schedule": None
        if schedule is None
        else {
            "due": schedule.due,
            "waited_for_slot": schedule.waited_for_slot,
            "lag_seconds": {
                "count": schedule.lag.count,
                "p50": _number(schedule.lag.quantiles[0.5]),
                "p99": _number(schedule.lag.quantiles[0.99]),
                "max": _number(schedule.lag.max),
            },
        },
    }
