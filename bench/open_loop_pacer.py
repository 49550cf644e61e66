"""The open loop's pacer on the event loop's millisecond timer and on its timerfd alarm.

Each pacer drives the load command's engine (LoadRun and its HTTP client, under uvloop) at
--rate for --duration against one replica (fib(10), access log off), in a process of its
own, alternating in the same run. Each reports how late its requests started (the tool's
own lag), their latency from the schedule, its process's CPU per second of the run, and
the rate it achieved.
Figures, not a test: docs/load.md quotes them ("The engine and its figures").

    .venv/bin/python -m bench.open_loop_pacer              # 3 rounds of 5 s at 1000 req/s
    .venv/bin/python -m bench.open_loop_pacer --rounds 5 --rate 2000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.cli import scratch_dir
from bench.servers import free_port, start_server, stop_server
from bench.targets import LOOPBACK, RunSpec, service_target

SERVICE = Path(sys.executable).with_name("example-service")
PACERS = ("loop-timer", "timerfd")
FIGURES = ("lag_p50", "lag_p99", "p50", "p99", "cpu", "rate")


def child(pacer: str, url: str, rate: float, duration: float) -> None:
    import uvloop

    from example_service.load.alarm import LoopTimerAlarm, MakeAlarm, TimerfdAlarm
    from example_service.load.client import HttpClient
    from example_service.load.limits import Limits, Pacing
    from example_service.load.runner import LoadRun, Plan, Times
    from example_service.load.stats import Recorder
    from example_service.load.summary import Summary

    make: MakeAlarm = LoopTimerAlarm if pacer == "loop-timer" else TimerfdAlarm
    plan = Plan((url,), Limits(duration=duration), Pacing(rate=rate), 15.0)
    recorder = Recorder.for_targets(1)

    async def run() -> Times:
        async with HttpClient(plan.urls, plan.timeout) as client:
            return await LoadRun(plan, recorder, make).run(client.send)

    summary = Summary.of(plan, uvloop.run(run()), recorder)
    schedule = summary.generator.schedule
    assert schedule is not None
    latency, lag = summary.latency.quantiles, schedule.lag.quantiles
    figures = {
        "rate": summary.requests_per_second,
        "lag_p50": lag[0.5],
        "lag_p99": lag[0.99],
        "p50": latency[0.5],
        "p99": latency[0.99],
        "cpu": summary.generator.cpu_seconds / summary.times.elapsed,
    }
    print(json.dumps(figures))


def pacer_run(pacer: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    command = [
        sys.executable, "-m", "bench.open_loop_pacer", "--child", pacer, "--url", url,
        "--rate", str(args.rate), "--duration", str(args.duration),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout
    figures: dict[str, float] = json.loads(out.splitlines()[-1])
    return figures


def line(name: str, figures: dict[str, float]) -> str:
    ms = {key: figures[key] * 1e3 for key in FIGURES[:4]}
    return (
        f"{name:<11} lag p50 {ms['lag_p50']:6.3f} p99 {ms['lag_p99']:6.2f} ms   "
        f"latency p50 {ms['p50']:6.3f} p99 {ms['p99']:6.2f} ms   CPU {figures['cpu']:4.0%}   "
        f"{figures['rate']:6.0f} req/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--service", type=Path, default=SERVICE)
    parser.add_argument("--child", choices=PACERS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.rate, args.duration)
        return 0

    results: dict[str, list[dict[str, float]]] = {pacer: [] for pacer in PACERS}
    with scratch_dir() as tmp:
        spec = RunSpec(port=free_port(), cores=os.cpu_count() or 1, num=None, service=args.service)
        target = service_target("example-service-no-access-log", "--access-log", "off")
        server = start_server(target, spec, sorted(os.sched_getaffinity(0)), tmp, 30.0)
        url = f"http://{LOOPBACK}:{spec.port}/abc"
        try:
            for round_number in range(args.rounds):
                for pacer in PACERS:
                    results[pacer].append(pacer_run(pacer, url, args))
                    print(f"round {round_number + 1} {line(pacer, results[pacer][-1])}", flush=True)
        finally:
            stop_server(server)

    medians = {
        pacer: {key: statistics.median(run[key] for run in runs) for key in FIGURES}
        for pacer, runs in results.items()
    }
    print(
        f"\nmedian of {args.rounds} rounds, --rate {args.rate:g} for {args.duration:g} s each, "
        "one replica on loopback (fib(10), access log off)"
    )
    for pacer in PACERS:
        print(f"        {line(pacer, medians[pacer])}")
    coarse, fine = medians["loop-timer"], medians["timerfd"]
    print(
        f"loop-timer / timerfd: lag p50 {coarse['lag_p50'] / fine['lag_p50']:.1f}x, "
        f"latency p50 {coarse['p50'] / fine['p50']:.1f}x, CPU {coarse['cpu'] / fine['cpu']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
