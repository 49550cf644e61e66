"""The command line: `example-service [options]` serves; subcommands run the lab's tools."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from example_service import __version__
from example_service.logs import json_format
from example_service.settings import ConfigError, add_arguments, parse_settings

EXIT_USAGE = 2

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="example-service",
        description=(
            "Serve the lab's instrumented HTTP service: GET /abc, /metrics, /healthz, "
            "/readyz and /info on one port. Every option can also be set by the environment "
            "variable named after it (env); a flag wins over the variable."
        ),
        epilog=(
            "Subcommands: `example-service stack --help` runs the lab on this machine; "
            "`example-service load --help` sends it bounded load."
        ),
    )
    add_arguments(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if arguments[:1] == ["stack"]:
        from example_service.stack.cli import main as stack_main

        return stack_main(arguments[1:])
    if arguments[:1] == ["load"]:
        return load(arguments[1:])
    return serve(arguments)


def load(argv: Sequence[str]) -> int:
    """The load command, or one line saying how to install what it needs."""
    try:
        from example_service.load.cli import main as load_main

        return load_main(argv)
    except ModuleNotFoundError as error:
        # Any package missing but our own is one of the [load] extra's (or theirs).
        package = (error.name or "example_service").partition(".")[0]
        if package == "example_service":
            raise
        print(
            f"example-service load: {package} is not installed; the load command needs "
            "the [load] extra: pip install 'example-service[load]'",
            file=sys.stderr,
        )
        return 1


def serve(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = parse_settings(vars(args), os.environ)
    except ConfigError as error:
        print(f"example-service: {error}", file=sys.stderr)
        return EXIT_USAGE
    log_output = json_format.configure(settings.log_level)
    # Imported here so `--help` and a bad setting answer without loading the server.
    from example_service.server.embed import ListenError, run

    try:
        return _event_loop_runner()(run(settings, log_output))
    except ListenError as error:
        print(f"example-service: {error}", file=sys.stderr)
        return 1
    finally:
        asyncio.set_event_loop(None)
        log_output.close()  # the last lines, "shutdown: complete" among them


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """uvloop's runner, or asyncio's where uvloop is not installed (it has no Windows build)."""
    try:
        import uvloop
    except ImportError:
        log.warning("uvloop is not installed: serving on asyncio's own event loop")
        return asyncio.run
    return uvloop.run
