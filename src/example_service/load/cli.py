"""`example-service load`: bounded load on the lab's replicas, with a live view and a summary."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Sequence

from example_service.load.limits import MAX_IN_FLIGHT, LimitError, Limits, Pacing, parse_duration
from example_service.load.targets import DEFAULT_TARGETS, TargetError, check_targets

EXIT_USAGE = 2
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = "15s"  # above the service's 10 s deadline, so its 503 arrives first
DEFAULT_MAX_IN_FLIGHT = 100


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except LimitError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="example-service load",
        description=(
            "Send GET requests to the URLs, at a fixed rate (open loop) or with a fixed number "
            "of requests in flight (closed loop), until --count requests are sent or "
            "--duration has passed, whichever comes first; one of the two is required. Shows a "
            "live progress bar on a terminal and prints a summary at the end, also after "
            "Ctrl-C (a second Ctrl-C abandons the requests in flight). Only loopback targets "
            "unless --allow-remote."
        ),
        epilog="Exit status: 0 after a run (failed requests included), 1 if the push "
        "failed, 2 for a usage error or a refused target. See docs/load.md.",
    )
    parser.add_argument(
        "urls",
        nargs="*",
        metavar="URL",
        default=list(DEFAULT_TARGETS),
        help="targets, used in turn (default: the local stack's replicas, "
        + " ".join(DEFAULT_TARGETS)
        + ")",
    )
    limits = parser.add_argument_group("limits (at least one)")
    limits.add_argument(
        "--count", type=int, metavar="N", help="stop after sending this many requests"
    )
    limits.add_argument(
        "--duration",
        type=_duration,
        metavar="TIME",
        help="stop sending after this long: 30 (seconds), 30s, 500ms, 2m, 1h",
    )
    pacing = parser.add_argument_group("pacing (one of)").add_mutually_exclusive_group()
    pacing.add_argument(
        "--rate",
        type=float,
        metavar="REQ_PER_S",
        help="start this many requests per second, whether or not earlier ones have "
        "answered; latency counts from each request's scheduled start",
    )
    pacing.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="keep N requests in flight, each sent when another answers "
        f"(default when --rate is not given: {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=DEFAULT_MAX_IN_FLIGHT,
        metavar="N",
        help="with --rate, the most requests waiting for an answer at once (one connection "
        "each); past it a due request waits for one, the wait counts in its latency and "
        f"the rate may fall short (default: %(default)s, at most {MAX_IN_FLIGHT})",
    )
    parser.add_argument(
        "--timeout",
        type=_duration,
        default=DEFAULT_TIMEOUT,
        metavar="TIME",
        help="per request, connection to last byte (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow targets outside loopback (127.0.0.0/8, ::1 and names resolving only to those)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object on stdout"
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (it is shown only when stderr is a terminal anyway)",
    )
    push = parser.add_argument_group("Pushgateway")
    push.add_argument(
        "--pushgateway",
        metavar="URL",
        help="push the summary there at the end (PUT: it replaces the group's last run)",
    )
    push.add_argument(
        "--push-job",
        default="example-service-load",
        metavar="NAME",
        help="job label of the pushed group (default: %(default)s)",
    )
    push.add_argument(
        "--push-instance",
        default="",
        metavar="NAME",
        help="instance label of the pushed group (default: this machine's hostname)",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        limits = Limits(count=args.count, duration=args.duration)
        rate, concurrency = args.rate, args.concurrency
        if rate is None and concurrency is None:
            concurrency = DEFAULT_CONCURRENCY
        pacing = Pacing(rate=rate, concurrency=concurrency, max_in_flight=args.max_in_flight)
        targets = check_targets(args.urls, allow_remote=args.allow_remote)
    except (LimitError, TargetError) as error:
        print(f"example-service load: {error}", file=sys.stderr)
        return EXIT_USAGE
    # Imported only now: the client and rich cost start-up time a refused run need not pay.
    from example_service.load.run import Options, execute
    from example_service.load.runner import Plan

    options = Options(
        plan=Plan(tuple(target.url for target in targets), limits, pacing, args.timeout),
        as_json=args.json,
        progress=not args.no_progress,
        pushgateway=args.pushgateway,
        push_job=args.push_job,
        push_instance=args.push_instance,
    )
    with contextlib.suppress(KeyboardInterrupt):
        return execute(options)
    # Ctrl-C outside the run's own handler (while starting, or during the push): there is
    # no summary to give, only the conventional status of a process stopped by SIGINT.
    return 128 + signal.SIGINT
