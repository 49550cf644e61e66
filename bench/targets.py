"""What the bench can measure: the Go peer, example-service and its variants, the bare
granian floor, and any command given with --add-target."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError

BENCH = Path(__file__).resolve().parent
GO_PEER_DIR = BENCH / "go-peer"
GO_PEER_BIN = GO_PEER_DIR / "bin" / "example-service-go"
DEFAULT_SERVICE = BENCH.parent / ".venv" / "bin" / "example-service"
LOOPBACK = "127.0.0.1"
REFERENCE = "go-peer"


@dataclass(frozen=True)
class RunSpec:
    """What one server start needs to know about the scenario."""

    port: int
    cores: int
    num: int | None
    service: Path  # the example-service executable (--service)


@dataclass(frozen=True)
class Target:
    name: str
    argv: Callable[[RunSpec], list[str]]
    prepare: Callable[[Path], None] | None = None  # build or check; raises BenchError

    def command(self, spec: RunSpec) -> list[str]:
        return self.argv(spec)


def build_go_peer(_service: Path) -> None:
    """Builds the Go peer when its binary is missing or older than its source."""
    source = GO_PEER_DIR / "main.go"
    if GO_PEER_BIN.exists() and GO_PEER_BIN.stat().st_mtime >= source.stat().st_mtime:
        return
    print(f"building the Go peer ({GO_PEER_DIR / 'build.sh'}) ...", flush=True)
    try:
        subprocess.run([str(GO_PEER_DIR / "build.sh")], check=True, timeout=600)
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"building the Go peer failed: {exc}") from exc


def service_target(name: str, *extra: str) -> Target:
    """example-service with its default settings plus the variant's own flags.

    Measured as users run it: the access log stays on (to the log file the process
    runner gives it) and no setting is changed but the drain delay, which only makes
    stopping between rounds quick and costs nothing per request. A variant that turns a
    feature off says so in its name, and the tables carry that name.
    """

    def argv(spec: RunSpec) -> list[str]:
        return [
            str(spec.service),
            "--host",
            LOOPBACK,
            "--port",
            str(spec.port),
            "--drain-delay",
            "0",
            # No --workers: the default sizes the pool from the affinity mask taskset
            # sets, as the Go runtime sizes GOMAXPROCS, and the default is what ships.
            *extra,
        ]

    def check(service: Path) -> None:
        try:
            subprocess.run([str(service), "--help"], check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"{service} --help does not work: {exc}") from exc

    return Target(name, argv, check)


def command_target(name: str, command: str) -> Target:
    """A target given on the command line; {port} in the command is substituted."""

    def argv(spec: RunSpec) -> list[str]:
        return [part.replace("{port}", str(spec.port)) for part in shlex.split(command)]

    return Target(name, argv)


# One line per variant; --targets picks a subset. Ratios are to REFERENCE unless
# --baseline names another target (e.g. the no-request-metrics build, for overhead).
TARGETS: list[Target] = [
    Target(REFERENCE, lambda spec: [str(GO_PEER_BIN)], build_go_peer),
    service_target("example-service"),
    service_target("example-service-access-log-off", "--access-log", "off"),
    service_target("example-service-no-request-metrics", "--request-metrics", "off"),
    # The floor: granian with a bare callable (bench/bare_granian.py), in either interface.
    *(
        command_target(
            f"bare-{kind}", f"{sys.executable} {BENCH / 'bare_granian.py'} {kind} {{port}}"
        )
        for kind in ("rsgi", "asgi")
    ),
]
DEFAULT_TARGETS = [REFERENCE, "example-service"]
