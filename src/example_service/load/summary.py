"""The end-of-run summary: frozen figures, as text for people and JSON for scripts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from example_service.load.runner import Plan, Times
from example_service.load.stats import FAILURES, Latency, Outcome, Recorder, TargetCounts

_FAILURE_TEXT = {
    Outcome.TIMEOUT: "timeout",
    Outcome.CONNECTION_ERROR: "connection error",
    Outcome.PROTOCOL_ERROR: "protocol error",
    Outcome.OTHER_ERROR: "other error",
    Outcome.CANCELLED: "cancelled",
}


@dataclass(frozen=True)
class Summary:
    plan: Plan
    times: Times
    sent: int
    outcomes: dict[Outcome, int]  # every outcome, zeros included
    codes: dict[int, int]  # HTTP status code -> answers
    latency: Latency
    targets: dict[str, TargetCounts]

    @classmethod
    def of(cls, plan: Plan, times: Times, recorder: Recorder) -> Summary:
        return cls(
            plan=plan,
            times=times,
            sent=recorder.sent,
            outcomes={outcome: recorder.outcomes[outcome] for outcome in Outcome},
            codes=dict(sorted(recorder.codes.items())),
            latency=recorder.latency(),
            targets={url: recorder.targets.get(url, TargetCounts()) for url in plan.urls},
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


def _seconds(value: float) -> str:
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
        quantiles = "   ".join(f"p{q * 100:g} {_seconds(v)}" for q, v in latency.quantiles.items())
        lines.append(
            f"{'latency':<20}{quantiles}   ({latency.count} answers; mean "
            f"{_seconds(latency.mean)}, max {_seconds(latency.max)})"
        )
    else:
        lines.append(f"{'latency':<20}none measured: no HTTP answer")
    if len(summary.targets) > 1:
        lines += [
            f"{'target':<20}{url}: sent {counts.sent}, succeeded {counts.succeeded}"
            for url, counts in summary.targets.items()
        ]
    return "\n".join(lines)


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
    }
