"""The end-of-run summary, from recorded figures: text, JSON and the tool's own health."""

from __future__ import annotations

import json
import re

from example_service.load.limits import Limits, Pacing
from example_service.load.runner import Plan, StopReason, Times
from example_service.load.stats import Outcome, Recorder
from example_service.load.summary import Summary, render_text, to_json

URLS = ("http://127.0.0.1:1/abc", "http://127.0.0.1:2/abc", "http://127.0.0.1:1/abc")


def times(due: int | None = None, loop_cpu: float = 0.5, elapsed: float = 2.0) -> Times:
    return Times(
        started_at=1000.0,
        finished_at=1002.0,
        elapsed=elapsed,
        stopped_by=StopReason.DURATION,
        due=due,
        cpu_seconds=0.8,
        loop_cpu_seconds=loop_cpu,
    )


def recorded(lag_ms: float = 0.5) -> Recorder:
    recorder = Recorder.for_targets(len(URLS))
    for i in range(100):
        target = i % 3
        recorder.started(target)
        if i < 90:
            recorder.answered(target, 200, (i + 1) * 10_000)  # 10 us .. 900 us
        elif i < 95:
            recorder.answered(target, 503, 5_000_000)
        else:
            recorder.failed_with(Outcome.TIMEOUT)
        recorder.lag.record(int(lag_ms * 1e6))
    return recorder


def summary(pacing: Pacing, the_times: Times, recorder: Recorder) -> Summary:
    return Summary.of(Plan(URLS, Limits(duration=2.0), pacing, 5.0), the_times, recorder)


def test_counts_latency_and_targets() -> None:
    result = summary(Pacing(concurrency=4), times(), recorded())
    assert (result.sent, result.succeeded, result.failed) == (100, 90, 10)
    assert result.codes == {200: 90, 503: 5}
    assert result.latency.count == 95
    assert result.latency.max == 0.005
    assert result.requests_per_second == 50.0
    # The same URL given twice is one target, its counts added up.
    assert {url: (c.sent, c.succeeded) for url, c in result.targets.items()} == {
        URLS[0]: (34 + 33, 30 + 30),
        URLS[1]: (33, 30),
    }


def test_text_says_how_the_tool_fared_and_warns_only_when_it_fell_behind() -> None:
    calm = render_text(summary(Pacing(rate=50), times(due=100), recorded()))
    assert re.search(r"(?m)^load generator\s+CPU 0\.80 s, event loop busy 25% of the run$", calm)
    assert re.search(
        r"(?m)^schedule\s+100 due, 100 sent; 0 waited for a free connection; "
        r"others p50 0\.5\d* ms, p99 0\.5\d* ms, max 0\.5\d* ms late$",
        calm,
    )
    assert "WARNING" not in calm
    assert re.search(r"(?m)^  HTTP 5xx\s+5   \(503: 5\)$", calm)

    late = render_text(summary(Pacing(rate=50), times(due=100), recorded(lag_ms=8)))
    assert re.search(
        r"(?m)^WARNING\s+the load generator fell behind: it started requests late", late
    )

    the_plan = Plan(URLS, Limits(duration=2.0), Pacing(concurrency=4), 5.0)
    drawn = render_text(Summary.of(the_plan, times(), recorded(), progress_cpu_seconds=0.02))
    assert re.search(r"(?m)^load generator\s+CPU 0\.80 s \(progress bar 0\.02 s\), ", drawn)

    busy = render_text(summary(Pacing(concurrency=4), times(loop_cpu=1.9), recorded()))
    assert "schedule" not in busy  # the closed loop has none
    assert re.search(r"(?m)^WARNING .*event loop was busy 95% of the run", busy)
    assert busy.endswith("These figures measure the client as much as the service.")


def test_json_carries_the_same_figures() -> None:
    document = to_json(summary(Pacing(rate=50), times(due=100), recorded(lag_ms=8)))
    json.dumps(document, allow_nan=False)  # NaN would not be JSON
    assert document["latency_seconds"]["count"] == 95
    assert document["latency_seconds"]["max"] == 0.005
    assert document["outcomes"]["timeout"] == 5
    generator = document["generator"]
    assert generator["behind"] is True
    assert generator["reasons"][0].startswith("it started requests late: p99 8")
    assert generator["loop_busy_ratio"] == 0.25
    assert generator["schedule"]["due"] == 100
    assert generator["schedule"]["waited_for_slot"] == 0
    assert generator["schedule"]["lag_seconds"]["count"] == 100
    closed = to_json(summary(Pacing(concurrency=4), times(), Recorder.for_targets(3)))
    assert closed["generator"]["schedule"] is None
    assert closed["generator"]["progress_cpu_seconds"] is None
    assert closed["generator"]["behind"] is False
    assert closed["latency_seconds"]["p50"] is None
