"""`example-service stack`: the lab on one machine, in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import queue
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from example_service.server.faults import DelayRange
from example_service.stack import control
from example_service.stack.components import (
    Fault,
    MissingBinaries,
    Stack,
    StackOptions,
    check_binaries,
)
from example_service.stack.config import Intervals
from example_service.stack.notifications import NotificationLog
from example_service.stack.processes import StartError
from example_service.stack.supervisor import Supervisor

TICK = 0.5


def _parser() -> argparse.ArgumentParser:
    defaults = StackOptions()
    parser = argparse.ArgumentParser(
        prog="example-service stack",
        description=(
            "Run the lab on this machine, all on loopback: N replicas of the service, "
            "Prometheus (scraping them, evaluating the project's rules), Alertmanager (with "
            "the project's configuration and shorter local timings), the webhook receiver "
            "it notifies, a Pushgateway, and with --federate a global Prometheus federating "
            "the first. A component that exits is started again after a back-off, as the "
            "kubelet would. Ctrl-C (or SIGTERM) stops everything it started. "
            "`example-service stack break N --help` breaks replica N on purpose; "
            "`example-service stack restore N` undoes it."
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
    receiver = parser.add_mutually_exclusive_group()
    receiver.add_argument(
        "--webhook-port",
        type=int,
        help="run the webhook receiver on this port rather than the configuration's",
    )
    receiver.add_argument(
        "--webhook-url",
        help="send notifications to this receiver, which the stack does not run "
        "(default: the configuration's URL, with the stack's own receiver there)",
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
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _say(line: str) -> None:
    print(time.strftime("%H:%M:%S"), line, flush=True)


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share above 0 and at most 1")
    return value


def _latency(text: str) -> str:
    try:
        return str(DelayRange.parse(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'{text!r} is not milliseconds: "1500", or a range "100-900"'
        ) from None


def _control_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"example-service stack {command}",
        description=(
            "Restart replica N of the running stack with faults on GET /abc, as a bad rollout "
            "would: a share of errors, added latency, or a setting it refuses so that it "
            "crash-loops. `example-service stack restore N` restarts it as configured."
            if command == "break"
            else "Restart replica N of the running stack as configured, without faults."
        ),
    )
    parser.add_argument("replica", type=int, metavar="N", help="the replica, from 1")
    if command == "break":
        parser.add_argument(
            "--error-ratio",
            type=_ratio,
            default=0.0,
            help="share of /abc requests answered 500, above 0 and at most 1",
        )
        parser.add_argument(
            "--latency",
            type=_latency,
            metavar="MS",
            help='milliseconds added to every /abc request, "1500" or a range "100-900"',
        )
        parser.add_argument(
            "--crash",
            action="store_true",
            help="start it with a setting it refuses: it exits at once, again and again",
        )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=StackOptions().data_dir,
        help="the running stack's --data-dir (default: %(default)s)",
    )
    return parser


def control_main(command: str, argv: Sequence[str]) -> int:
    """`example-service stack break|restore N`: one request to the running stack."""
    parser = _control_parser(command)
    args = parser.parse_args(argv)
    body: dict[str, Any] = {"command": command, "replica": args.replica}
    if command == "break":
        if not (args.error_ratio or args.latency or args.crash):
            parser.error("say how to break it: --error-ratio, --latency or --crash")
        latency = args.latency or ""
        body |= {"error_ratio": args.error_ratio, "latency": latency, "crash": args.crash}
    try:
        reply = control.send(args.data_dir, body)
    except control.ControlError as error:
        print(f"example-service stack {command}: {error}", file=sys.stderr)
        return 1
    print(reply.get("message", ""), file=sys.stdout if reply.get("ok") else sys.stderr)
    return 0 if reply.get("ok") else 1


def _fault(body: dict[str, Any]) -> Fault:
    """The fault a request asks for; ValueError if it is not one."""
    if body.get("command") == "restore":
        return Fault()
    ratio, latency, crash = body.get("error_ratio", 0), body.get("latency", ""), body.get("crash")
    if not isinstance(ratio, int | float) or isinstance(ratio, bool) or not 0 <= ratio <= 1:
        raise ValueError("error_ratio must be a number from 0 to 1")
    if not isinstance(latency, str) or (latency and _parsed(latency) != latency):
        raise ValueError('latency must be milliseconds, "1500" or "100-900"')
    return Fault(float(ratio), latency, crash is True)


def _parsed(latency: str) -> str | None:
    """The latency as the replica's flag spells it, None if it is not one."""
    try:
        return str(DelayRange.parse(latency))
    except ValueError:
        return None


def carry_out(stack: Stack, supervisor: Supervisor, body: dict[str, Any]) -> dict[str, Any]:
    """A break or restore request, done; the reply for the client."""
    count = len(stack.replicas)
    index = body.get("replica")
    if body.get("command") not in ("break", "restore"):
        return {"ok": False, "message": "the stack knows `break` and `restore`"}
    if not isinstance(index, int) or isinstance(index, bool) or not 1 <= index <= count:
        return {"ok": False, "message": f"no replica {index!r}: the stack runs 1 to {count}"}
    try:
        fault = _fault(body)
    except ValueError as error:
        return {"ok": False, "message": str(error)}
    try:
        replica = stack.break_replica(index - 1, fault)
    except StartError as error:
        return {"ok": False, "message": str(error)}
    finally:
        supervisor.reset(stack.replicas[index - 1].name)
    flags = shlex.join(fault.args())
    if fault.crash:
        message = (
            f"{replica.name} restarted with {flags}, which it refuses: it exits, and the stack "
            f"restarts it with back-off until `restore {index}`"
        )
    elif flags:
        message = f"{replica.name} restarted with {flags}, pid {replica.pid}, ready"
    else:
        message = f"{replica.name} restarted as configured, pid {replica.pid}, ready"
    return {"ok": True, "message": message}


def _options(args: argparse.Namespace) -> StackOptions:
    return StackOptions(
        replica_ports=tuple(range(args.first_port, args.first_port + args.replicas)),
        prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port,
        pushgateway_port=args.pushgateway_port,
        global_prometheus_port=args.global_prometheus_port if args.federate else 0,
        data_dir=args.data_dir,
        rules_dir=args.rules_dir,
        alertmanager_config=args.alertmanager_config,
        webhook_url=args.webhook_url,
        webhook_port=args.webhook_port,
        intervals=Intervals(args.scrape_interval, args.evaluation_interval),
        replica_args=("--demo-readings", "on") if args.demo_readings else (),
    )


def _banner(stack: Stack) -> str:
    options = stack.options
    # The same command as this one, so that the hint runs as printed (`make stack` runs
    # .venv/bin/example-service, which is not on the PATH).
    program = sys.argv[0] or "example-service"
    if shutil.which(os.path.basename(program)) == os.path.abspath(program):
        program = os.path.basename(program)
    last = len(stack.replicas)
    data_dir = ""
    if options.data_dir != StackOptions().data_dir:
        data_dir = f" --data-dir {shlex.quote(str(options.data_dir))}"
    lines = [
        table(stack),
        "",
        f"Prometheus: {stack.prometheus.url}  (the runbook's $PROM; graphs at "
        f"{stack.prometheus.url}/graph)",
        f"Alertmanager: {stack.alertmanager.url}",
        f"Pushgateway: {stack.pushgateway.url}",
    ]
    if stack.global_prometheus:
        lines.append(f"Global Prometheus (federation): {stack.global_prometheus.url}")
    if stack.receiver:
        lines.append(
            f"Notifications: {stack.notification_url} -> shown here and written to "
            f"{stack.receiver.log_path.resolve()}"
        )
    else:
        lines.append(f"Notifications: sent to {stack.notification_url} (not run by the stack)")
    lines += [
        f"Data and logs: {options.data_dir.resolve()}",
        f"Break a replica: {program} stack break {last} --error-ratio 0.5{data_dir} "
        f"(or --latency 1500, or --crash); undo: {program} stack restore {last}{data_dir}",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    if argv[:1] in (["break"], ["restore"]):
        return control_main(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    options = _options(args)
    stack = Stack(options)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        check_binaries()
        options.data_dir.mkdir(parents=True, exist_ok=True)
        controls = control.ControlServer(options.data_dir)
    except (MissingBinaries, control.ControlError, OSError, RuntimeError) as error:
        # RuntimeError: no thread for the control socket (a process limit reached).
        print(f"example-service stack: {error}", file=sys.stderr)
        return 1
    notifications = NotificationLog(stack.receiver.log_path) if stack.receiver else None
    try:
        stack.start()
    except (StartError, FileNotFoundError) as error:
        controls.close()
        print(f"example-service stack: {error}", file=sys.stderr)
        return 1
    print(_banner(stack), flush=True)
    supervisor = Supervisor(options.backoff)
    try:
        while not stopping.is_set():
            try:
                request = controls.requests.get(timeout=TICK)
            except queue.Empty:
                pass
            else:
                request.reply = carry_out(stack, supervisor, request.body)
                request.done.set()
                _say(request.reply["message"])
            for line in supervisor.tick(stack.components):
                _say(line)
            for line in notifications.read() if notifications else []:
                _say(line)
    finally:
        print("stopping...", flush=True)
        controls.close()
        stack.stop()
    return 0
