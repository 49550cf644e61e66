"""`example-service stack`: the lab on one machine, in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from example_service.stack.config import Intervals
from example_service.stack.lab import MissingBinaries, Stack, StackOptions
from example_service.stack.processes import StartError


def _parser() -> argparse.ArgumentParser:
    defaults = StackOptions()
    parser = argparse.ArgumentParser(
        prog="example-service stack",
        description=(
            "Run the lab on this machine, all on loopback: N replicas of the service, "
            "Prometheus (scraping them, evaluating the project's rules), Alertmanager (with "
            "the project's configuration), a Pushgateway, and with --federate a global "
            "Prometheus federating the first. Ctrl-C stops everything it started."
        ),
    )
    parser.add_argument(
        "--replicas",
        type=int,
        default=len(defaults.replica_ports),
        help="how many replicas (default: %(default)s)",
    )
    parser.add_argument(
        "--first-port",
        type=int,
        default=defaults.replica_ports[0],
        help="port of the first replica; the others follow (default: %(default)s)",
    )
    parser.add_argument(
        "--prometheus-port", type=int, default=defaults.prometheus_port, help="default: %(default)s"
    )
    parser.add_argument(
        "--alertmanager-port",
        type=int,
        default=defaults.alertmanager_port,
        help="default: %(default)s",
    )
    parser.add_argument(
        "--pushgateway-port",
        type=int,
        default=defaults.pushgateway_port,
        help="default: %(default)s",
    )
    parser.add_argument(
        "--federate",
        action="store_true",
        help="also run a global Prometheus that federates the lab's aggregates",
    )
    parser.add_argument(
        "--global-prometheus-port",
        type=int,
        default=9190,
        help="the global Prometheus' port, with --federate (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=defaults.data_dir,
        help="configurations, data and logs go here (default: %(default)s)",
    )
    parser.add_argument(
        "--rules-dir",
        type=Path,
        default=defaults.rules_dir,
        help="Prometheus rule files, *.yml (default: %(default)s)",
    )
    parser.add_argument(
        "--alertmanager-config",
        type=Path,
        default=defaults.alertmanager_config,
        help="default: %(default)s",
    )
    parser.add_argument(
        "--webhook-url", help="where Alertmanager sends notifications (default: the config's)"
    )
    parser.add_argument(
        "--scrape-interval", default=defaults.intervals.scrape, help="default: %(default)s"
    )
    parser.add_argument(
        "--evaluation-interval", default=defaults.intervals.evaluation, help="default: %(default)s"
    )
    parser.add_argument(
        "--demo-readings",
        action="store_true",
        help="replicas report the lab's hand-set temperature and disk errors",
    )
    return parser


def table(stack: Stack) -> str:
    rows = [("component", "pid", "url", "log")]
    rows += [(c.name, str(c.pid), c.url, str(c.log_path)) for c in stack.components]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
    )


def main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    options = StackOptions(
        replica_ports=tuple(range(args.first_port, args.first_port + args.replicas)),
        prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port,
        pushgateway_port=args.pushgateway_port,
        global_prometheus_port=args.global_prometheus_port if args.federate else 0,
        data_dir=args.data_dir,
        rules_dir=args.rules_dir,
        alertmanager_config=args.alertmanager_config,
        webhook_url=args.webhook_url,
        intervals=Intervals(args.scrape_interval, args.evaluation_interval),
        replica_args=("--demo-readings", "on") if args.demo_readings else (),
    )
    stack = Stack(options)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        stack.start()
    except (MissingBinaries, StartError, FileNotFoundError) as error:
        print(f"example-service stack: {error}", file=sys.stderr)
        return 1
    print(table(stack))
    print(f"\nPrometheus UI: {stack.prometheus.url}/graph")
    print(f"Alertmanager UI: {stack.alertmanager.url}")
    print(f"Pushgateway: {stack.pushgateway.url}")
    if stack.global_prometheus:
        print(f"Global Prometheus (federation): {stack.global_prometheus.url}/graph")
    print(f"Data and logs: {options.data_dir.resolve()}\nCtrl-C stops everything.", flush=True)
    status = 0
    while not stopping.wait(0.5):
        if dead := stack.dead():
            names = ", ".join(c.name for c in dead)
            print(f"example-service stack: {names} exited; stopping", file=sys.stderr)
            status = 1
            break
    print("stopping...", flush=True)
    stack.stop()
    return status
