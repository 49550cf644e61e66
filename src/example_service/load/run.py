"""One run from first request to last word: the loop, the signals, the display, the
summary and the push."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from dataclasses import dataclass

from rich.console import Console

from example_service.load.client import HttpClient
from example_service.load.progress import ProgressDisplay
from example_service.load.push import Gateway, PushError, push
from example_service.load.runner import LoadRun, Plan, Times
from example_service.load.stats import Recorder
from example_service.load.summary import Summary, render_text, to_json

EXIT_PUSH_FAILED = 1


@dataclass(frozen=True)
class Options:
    """The run itself (plan) and what to do with its figures."""

    plan: Plan
    as_json: bool = False
    progress: bool = True
    pushgateway: str | None = None
    push_job: str = "example-service-load"
    push_instance: str = ""


async def _run(plan: Plan, recorder: Recorder, display: ProgressDisplay | None) -> Times:
    run = LoadRun(plan, recorder)
    client = HttpClient(plan.urls, plan.timeout)
    loop = asyncio.get_running_loop()
    # Installed before the first request, so Ctrl-C always reaches interrupt() and the
    # summary; SIGTERM too, as a supervisor stopping the run deserves the same.
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, run.interrupt)
    follower = asyncio.create_task(display.follow(run)) if display else None
    try:
        async with client:
            return await run.run(client.send)
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _loop_run(plan: Plan, recorder: Recorder, display: ProgressDisplay | None) -> Times:
    try:
        import uvloop
    except ImportError:  # not installed on Windows; the standard loop does the same job
        return asyncio.run(_run(plan, recorder, display))
    return uvloop.run(_run(plan, recorder, display))


def execute(options: Options) -> int:
    plan = options.plan
    console = Console(stderr=True)
    # rich decides what a terminal is (isatty, TTY_COMPATIBLE, FORCE_COLOR): a log file
    # gets no bar at all rather than a frozen copy of its last state.
    display = ProgressDisplay(console) if options.progress and console.is_terminal else None
    recorder = Recorder.for_targets(len(plan.urls))
    times = _loop_run(plan, recorder, display)
    summary = Summary.of(plan, times, recorder, display.cpu_seconds if display else None)

    status = 0
    pushed: dict[str, object] | None = None
    if options.pushgateway:
        gateway = Gateway(options.pushgateway, options.push_job, options.push_instance)
        pushed = {"url": gateway.url, "job": gateway.job, **gateway.grouping_key}
        try:
            push(summary, gateway)
        except PushError as error:
            pushed["error"] = str(error)
            print(f"example-service load: {error}", file=sys.stderr)
            status = EXIT_PUSH_FAILED

    if options.as_json:
        print(json.dumps(to_json(summary) | {"pushgateway": pushed}, indent=2))
    else:
        print(render_text(summary))
        if pushed is not None and "error" not in pushed:
            print(
                f"pushed to  {pushed['url']} (job {pushed['job']!r}, "
                f"instance {pushed['instance']!r})"
            )
    return status
