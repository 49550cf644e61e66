"""`python -m bench`: options, the targets to run, the run itself, the results file."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bench
from bench import BenchError
from bench.callgrind import run_profiles
from bench.measure import MEASURES, BenchSettings
from bench.report import caveats, machine, print_table, summarise
from bench.rounds import Cell, run_rounds
from bench.scorecard import (
    HEALTHZ_NUM,
    OVERLOAD_NUM,
    SCENARIOS,
    print_scorecard,
    rows,
    run_scenarios,
    scenario_seconds,
)
from bench.targets import (
    BENCH,
    DEFAULT_SERVICE,
    DEFAULT_TARGETS,
    REFERENCE,
    TARGETS,
    RunSpec,
    Target,
    command_target,
)
from bench.wrk import WRK_REPORT

RESULTS = BENCH / "results"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description=(bench.__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--mode",
        choices=["targets", *sorted(MEASURES)],
        default="targets",
        help="targets: every target (NUM unset, NUM=25 on one and two "
        f"cores, /healthz at NUM={HEALTHZ_NUM}, NUM=25 overloaded) judged in one table; "
        "throughput: /abc, /metrics, RSS, time to ready; "
        f"healthz: /healthz latency while /abc is saturated (NUM defaults to {HEALTHZ_NUM}); "
        "overload: /abc closed loop at 4, 64, 256 and 1024 connections and open loop at "
        "twice the capacity (NUM defaults to 25)",
    )
    p.add_argument(
        "--num",
        type=int,
        default=None,
        help="NUM for every target (unset if omitted; not "
        "with --mode targets, whose scenarios set it)",
    )
    p.add_argument(
        "--cores",
        default=None,
        help="CPUs per server; a comma list (1,2) runs each and reports the req/s scaling "
        "(default 1; not with --mode targets)",
    )
    p.add_argument("--duration", type=int, default=5, help="seconds of load per measurement")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured /abc load first")
    p.add_argument("--metrics-duration", type=int, default=2, help="seconds of /metrics load")
    p.add_argument(
        "--metrics-connections",
        type=int,
        default=1,
        help="connections for /metrics (1: one scraper at a time, latency without queueing)",
    )
    p.add_argument("--connections", type=int, default=64, help="wrk connections on /abc")
    p.add_argument(
        "--per-core",
        action="store_true",
        help="--connections per server core (4: 4 on one core, 8 on two), so that a server "
        "on more cores gets as much work per core",
    )
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--rounds", type=int, default=3, help="A B A B ... rounds; medians reported")
    p.add_argument(
        "--probe-interval-ms",
        type=float,
        default=10.0,
        help="healthz mode: one /healthz probe on a fresh connection this often",
    )
    p.add_argument("--ready-timeout", type=float, default=20.0, help="seconds to wait for ready")
    p.add_argument(
        "--targets",
        default=None,
        help=f"comma list from: {', '.join(t.name for t in TARGETS)} "
        f"(default {','.join(DEFAULT_TARGETS)}; --mode targets runs its own)",
    )
    p.add_argument(
        "--add-target",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="an extra target; {port} in COMMAND becomes its port (PORT and NUM are in its "
        "environment too). Repeatable.",
    )
    p.add_argument(
        "--baseline",
        default=REFERENCE,
        help="the target every ratio is taken to (it must be among the targets run)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="instead of load: count instructions per request under valgrind's callgrind "
        "(/abc with the access log on and off, /metrics, NUM=25) and print them by object "
        "and by function",
    )
    p.add_argument(
        "--profile-scale",
        type=float,
        default=1.0,
        help="--profile: multiply the fixed request counts (2,000 /abc, 100 /metrics, "
        "20 at NUM=25) by this",
    )
    p.add_argument("--service", type=Path, default=DEFAULT_SERVICE, help="example-service binary")
    p.add_argument("--output", type=Path, default=RESULTS, help="directory for the JSON results")
    args = p.parse_args(argv)
    if args.mode == "targets":
        fixed = {"--num": args.num, "--cores": args.cores, "--targets": args.targets}
        given = [flag for flag, value in fixed.items() if value is not None]
        if given or args.add_target or args.baseline != REFERENCE:
            dropped = ", ".join(given) or "--add-target and --baseline"
            p.error(f"--mode targets sets NUM, cores and targets itself; drop {dropped}")
        args.targets = ",".join(dict.fromkeys(n for sc in SCENARIOS for n in sc.targets))
        args.cores = ",".join(str(c) for c in sorted({c for sc in SCENARIOS for c in sc.cores}))
    if args.mode == "healthz" and args.num is None:
        args.num = HEALTHZ_NUM
    if args.mode == "overload" and args.num is None:
        args.num = OVERLOAD_NUM
    args.targets = args.targets or ",".join(DEFAULT_TARGETS)
    args.cores = args.cores or "1"
    try:
        args.cores = sorted({int(c) for c in args.cores.split(",")})
    except ValueError:
        p.error(f"--cores {args.cores!r}: expected a comma list of integers")
    if min(args.cores) < 1 or args.duration < 1 or args.metrics_duration < 1 or args.rounds < 1:
        p.error("--cores, --duration, --metrics-duration and --rounds must be at least 1")
    return args


def select_targets(args: argparse.Namespace) -> list[Target]:
    known = {t.name: t for t in TARGETS}
    for spec in args.add_target:
        name, sep, command = spec.partition("=")
        if not sep or not name or not command:
            raise BenchError(f"--add-target {spec!r}: expected NAME=COMMAND")
        known[name] = command_target(name, command)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    names += [s.partition("=")[0] for s in args.add_target if s.partition("=")[0] not in names]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BenchError(f"unknown targets {unknown}; known: {sorted(known)}")
    chosen: list[Target] = []
    for name in names:
        target = known[name]
        if target.prepare is not None:
            try:
                target.prepare(args.service)
            except BenchError as exc:
                print(f"skipping {name}: {exc}", flush=True)
                continue
        chosen.append(target)
    if not chosen:
        raise BenchError("no target can run")
    if args.baseline not in {t.name for t in chosen}:
        print(f"no ratios: the baseline {args.baseline} is not among the targets run", flush=True)
    return chosen


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="example-service-bench-") as tmp:
        yield Path(tmp)


def cells_json(cells: list[Cell], summary: dict[str, Any], num: int | None, service: Path) -> Any:
    return {
        c.key: {
            "command": c.target.command(RunSpec(0, c.cores, num, service)),
            "rounds": c.rounds,
            **summary[c.key],
        }
        for c in cells
    }


def mode_seconds(args: argparse.Namespace, targets: int) -> int:
    """A single mode's run's duration, roughly: every round of every target and core count."""
    per_round: int = args.warmup + args.duration + 2
    if args.mode == "throughput":
        per_round += args.metrics_duration
    if args.mode == "overload":
        # Four closed-loop runs and the open loop, each settling after.
        per_round = args.warmup + 5 * (args.duration + 2)
    return int(per_round * targets * len(args.cores) * args.rounds)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM takes the same path as Ctrl-C, so every server and wrk is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if args.profile:
        return run_profiles(args.service, args.output, args.profile_scale)
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"missing {missing}: apt-get install wrk util-linux", file=sys.stderr)
        return 2
    try:
        targets = select_targets(args)
        with scratch_dir() as tmp:
            script = tmp / "report.lua"
            script.write_text(WRK_REPORT)
            settings = BenchSettings(
                mode=args.mode,
                num=args.num,
                cores=args.cores,
                duration=args.duration,
                warmup=args.warmup,
                metrics_duration=args.metrics_duration,
                metrics_connections=args.metrics_connections,
                connections=args.connections,
                per_core=args.per_core,
                threads=args.threads,
                rounds=args.rounds,
                ready_timeout=args.ready_timeout,
                probe_interval=args.probe_interval_ms / 1e3,
                service=args.service,
                baseline=args.baseline,
                script=script,
                logdir=tmp,
            )
            started = datetime.now(UTC)
            num = "unset" if args.num is None else args.num
            if args.mode == "targets":
                print(
                    f"every target, {args.rounds} rounds of {args.duration} s, "
                    f"{args.connections} connections, targets={[t.name for t in targets]}",
                    flush=True,
                )
                print(f"about {scenario_seconds(settings)} s", flush=True)
                results = run_scenarios(targets, settings)
            else:
                print(
                    f"mode={args.mode} NUM={num} cores={args.cores} duration={args.duration}s "
                    f"rounds={args.rounds} connections={args.connections} "
                    f"targets={[t.name for t in targets]}",
                    flush=True,
                )
                print(f"about {mode_seconds(args, len(targets))} s", flush=True)
                cells = run_rounds(targets, settings)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped, no results written", file=sys.stderr)
        return 130
    print()
    settings_out = {k: v for k, v in vars(args).items() if k not in {"service", "output"}}
    result: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {**settings_out, "service": str(args.service)},
    }
    if args.mode == "targets":
        result["notes"] = print_scorecard(results)
        result["scorecard"] = [dataclasses.asdict(row) for row in rows(results)]
        result["scenarios"] = {
            name: {
                "mode": r.settings.mode,
                "num": r.settings.num,
                "cores": r.settings.cores,
                "targets": cells_json(r.cells, r.summary, r.settings.num, args.service),
            }
            for name, r in results.items()
        }
    else:
        summary = summarise(cells, settings)
        print_table(cells, summary, settings)
        result["notes"] = caveats(cells, summary)
        result["targets"] = cells_json(cells, summary, args.num, args.service)
    result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.output.mkdir(parents=True, exist_ok=True)
    cores = "-".join(map(str, args.cores))
    name = "targets" if args.mode == "targets" else f"{args.mode}-num{num}-cores{cores}"
    path = args.output / f"{started:%Y%m%dT%H%M%SZ}-{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {path}")
    return 0
