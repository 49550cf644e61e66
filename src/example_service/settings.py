"""Every setting of the service, each declared once: a field of `Settings` made by `setting()`.

A declaration gives the default, the parser (which also says in words what it accepts) and
the help. Everything else is derived from it: the flag and the environment variable, both
named after the field (`request_timeout` is `--request-timeout` and `REQUEST_TIMEOUT`); the
command line's options and their `--help` (`add_arguments`); the lookup, where a flag wins
over the variable, which wins over the default (`parse_settings`); and the list of variables
the service reads (`ENVIRONMENT_VARIABLES`).

Every value is checked before anything binds a port, and a bad one is reported as a single
line naming the setting as it was given (flag or variable), the value and what is accepted.

To add a setting, add one field here, for example

    max_queue: int = setting(64, integer(1, 100_000), "computations waiting for a worker")

and its row to the README's configuration table, which tests/unit/test_settings.py compares
with these declarations (flag, variable and default, in this order). A check that involves
more than one setting belongs in `_check_together`.
"""

# setting() returns a dataclasses.Field, as field() does, which ruff's check for calls in
# dataclass defaults cannot tell.
# ruff: noqa: RUF009

from __future__ import annotations

import argparse
import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

from example_service.server.faults import MAX_LATENCY_MS, DelayRange

# The largest n whose compiled fib keeps one request within a second of one core, with room
# for a slower node (fib(n) by n, compiled and in Python: docs/performance.md, "The
# workload"); the request deadline bounds the Python fallback. NUM_MAX raises it deliberately.
DEFAULT_NUM_MAX = 40
# Deeper than this the naive recursion would run for hours; the deadline still applies below.
NUM_MAX_CEILING = 60
# MAX_QUEUE_DELAY's default, as a fraction of REQUEST_TIMEOUT: room, several times over, for
# the queue of bench/overload.py's largest closed loop (1,024 clients at NUM=25 on one core)
# to wait its turn without a refusal (docs/design.md).
QUEUE_DELAY_FRACTION = 10
# fib(10) is what the lab computes when NUM is unset.
NUM_WHEN_UNSET = 10
LOG_LEVELS = ("debug", "info", "warning", "error")

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""

    def __init__(self, setting: str, value: str, accepted: str) -> None:
        super().__init__(f"invalid {setting} {value!r}: expected {accepted}")
        self.setting = setting


@dataclass(frozen=True)
class Parser(Generic[T_co]):
    """Turns a setting's text into its value or raises ValueError; `accepted` says what it takes."""

    parse: Callable[[str], T_co]
    accepted: str


_INTEGER = re.compile(r"[0-9]+")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def integer(low: int, high: int) -> Parser[int]:
    def parse(text: str) -> int:
        # Only ASCII digits: int() would also accept "+5", "1_000" and other scripts' digits.
        if not _INTEGER.fullmatch(text):
            raise ValueError
        value = int(text)
        if not low <= value <= high:
            raise ValueError
        return value

    return Parser(parse, f"an integer from {low} to {high}")


def optional(parser: Parser[T]) -> Parser[T | None]:
    """An empty value means unset, as the Go lab's os.Getenv check treated NUM."""
    return Parser(lambda text: parser.parse(text) if text else None, parser.accepted)


def seconds(low: float, high: float) -> Parser[float]:
    def parse(text: str) -> float:
        value = float(text)
        if not math.isfinite(value) or not low <= value <= high:
            raise ValueError
        return value

    return Parser(parse, f"seconds from {low:g} to {high:g}")


def _switch(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError


def _host(text: str) -> str:
    # The server binds addresses, not names: localhost is taken to mean IPv4 loopback.
    if text == "localhost":
        return "127.0.0.1"
    return str(ipaddress.ip_address(text))


def _log_level(text: str) -> str:
    if text.lower() not in LOG_LEVELS:
        raise ValueError
    return text.lower()


def _ratio(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:  # also rejects nan
        raise ValueError
    return value


def _directory(text: str) -> Path:
    # No path can hold a NUL byte: refused here rather than by the first read.
    if not text or "\0" in text:
        raise ValueError
    return Path(text)


SWITCH = Parser(_switch, "on or off")
HOST = Parser(_host, "an IPv4 or IPv6 address, or localhost")
LOG_LEVEL = Parser(_log_level, "one of " + ", ".join(LOG_LEVELS))
RATIO = Parser(_ratio, "a number from 0 to 1")
DIRECTORY = Parser(_directory, "a directory path")
LATENCY = Parser(DelayRange.parse, f"milliseconds N or a range MIN-MAX, up to {MAX_LATENCY_MS}")


@dataclass(frozen=True)
class _Declared:
    """What `setting()` stores in the field's metadata, until the field's name is known."""

    parser: Parser[object]
    help: str
    name: str | None
    accepted: str | None
    default_text: str | None


def setting(
    default: T,
    parser: Parser[T],
    help: str,
    *,
    name: str | None = None,
    accepted: str | None = None,
    default_text: str | None = None,
) -> T:
    """Declare a setting as a field of `Settings`.

    name: what the flag and variable are spelled after, when not the field's name.
    accepted: what --help and errors say is accepted, when not the parser's own words. It may
        name settings declared above it in braces ("from 1 to {num_max}"); an error fills in
        their values, --help their variables.
    default_text: how --help and the README word a default that its value alone would not say.
    """
    declared = _Declared(parser, help, name, accepted, default_text)
    # Typed as the default so that the field keeps its own type; at run time it is a Field.
    result: T = field(default=default, metadata={"setting": declared})
    return result


@dataclass(frozen=True)
class Settings:
    host: str = setting("0.0.0.0", HOST, "listen address")
    port: int = setting(5565, integer(1, 65535), "listen port")
    # Declared before NUM, whose accepted text names it.
    num_max: int = setting(DEFAULT_NUM_MAX, integer(1, NUM_MAX_CEILING), "largest NUM accepted")
    num: int | None = setting(
        None,
        optional(integer(1, NUM_MAX_CEILING)),
        f"Fibonacci argument of GET /abc; unset or empty means the lab's fib({NUM_WHEN_UNSET})",
        accepted="an integer from 1 to {num_max} (NUM_MAX raises the maximum)",
    )
    workers: int | None = setting(
        None,
        integer(1, 256),
        "worker threads for the Fibonacci workload",
        default_text="the CPU quota rounded up, at most the CPUs of the affinity mask",
    )
    request_timeout: float = setting(
        10.0,
        seconds(0.01, 3600),
        "deadline of one /abc computation; past it the request answers 503",
    )
    drain_delay: float = setting(
        5.0,
        seconds(0, 300),
        "after SIGTERM, how long to keep serving while /readyz answers 503",
    )
    shutdown_timeout: float = setting(
        10.0,
        seconds(0, 300),
        "after the drain, how long in-flight requests may take to finish",
    )
    header_timeout: float = setting(
        10.0,
        seconds(0.1, 300),
        "a client that has not sent its whole request head by then is disconnected",
    )
    max_connections: int = setting(
        10_000,
        integer(16, 1_000_000),
        "client connections held open at once; past it new ones wait in the listen queue",
    )
    max_queue: int = setting(
        10_000,
        integer(0, 100_000),
        "/abc computations waiting, per worker: a bound on memory far above what "
        "MAX_QUEUE_DELAY admits; past it /abc answers 503 at once",
    )
    # Declared after REQUEST_TIMEOUT, which bounds it.
    max_queue_delay: float | None = setting(
        None,
        optional(seconds(0, 3600)),
        "longest an /abc computation may expect to wait for a worker, by the computations "
        "ahead of it and the measured time of one; past it /abc answers 503 at once",
        accepted="seconds from 0 to {request_timeout}; empty means the default",
        default_text=f"REQUEST_TIMEOUT / {QUEUE_DELAY_FRACTION}",
    )
    access_log: bool = setting(True, SWITCH, "one JSON line per request")
    log_level: str = setting("info", LOG_LEVEL, "least severe level logged")
    sysfs_root: Path = setting(Path("/sys"), DIRECTORY, "where sysfs is mounted (sensors, disks)")
    procfs_root: Path = setting(
        Path("/proc"), DIRECTORY, "where procfs is mounted (namespaces, own cgroup)"
    )
    cgroup_root: Path = setting(
        Path("/sys/fs/cgroup"), DIRECTORY, "where the cgroup hierarchy is mounted"
    )
    demo_readings: bool = setting(
        False,
        SWITCH,
        "report the lab's hand-set temperature and disk errors instead of real readings",
    )
    request_metrics: bool = setting(
        True,
        SWITCH,
        "record per-request metrics, the lab's families included (off only to measure their cost)",
    )
    fault_error_ratio: float = setting(
        0.0,
        RATIO,
        "share of /abc requests answered 500 on purpose (fault injection; never in production)",
    )
    fault_latency: DelayRange = setting(
        DelayRange(),
        LATENCY,
        "delay added to every /abc request, fixed or drawn uniformly (fault injection)",
        name="fault_latency_ms",
    )

    @property
    def queue_delay(self) -> float:
        """The queueing budget of one /abc computation, MAX_QUEUE_DELAY or its default."""
        if self.max_queue_delay is None:
            return self.request_timeout / QUEUE_DELAY_FRACTION
        return self.max_queue_delay

    @property
    def fib_n(self) -> int:
        """The Fibonacci argument one /abc request computes."""
        return NUM_WHEN_UNSET if self.num is None else self.num


def _shown(value: object) -> str:
    """A default as a user would write it."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass(frozen=True)
class Setting:
    """One setting as declared, with the names derived from it."""

    field: str
    flag: str
    variable: str
    default: object
    parse: Callable[[str], object]
    accepted: str
    help: str
    default_text: str

    def error(self, given_as: str, raw: str, values: Mapping[str, object]) -> ConfigError:
        """The error for a value given as this flag or variable, `values` filling `accepted`."""
        return ConfigError(given_as, raw, self.accepted.format_map(values))


def _declared_settings() -> tuple[Setting, ...]:
    declared = []
    for item in fields(Settings):
        meta: _Declared = item.metadata["setting"]
        name = meta.name or item.name
        declared.append(
            Setting(
                field=item.name,
                flag="--" + name.replace("_", "-"),
                variable=name.upper(),
                default=item.default,
                parse=meta.parser.parse,
                accepted=meta.accepted or meta.parser.accepted,
                help=meta.help,
                default_text=meta.default_text or _shown(item.default),
            )
        )
    return tuple(declared)


SETTINGS = _declared_settings()
# Every environment variable the service reads, so that a test (or a wrapper) can clear them.
ENVIRONMENT_VARIABLES: tuple[str, ...] = tuple(item.variable for item in SETTINGS)
_DEFAULTS: dict[str, object] = {item.field: item.default for item in SETTINGS}
_BY_FIELD: dict[str, Setting] = {item.field: item for item in SETTINGS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per setting; values stay text until parse_settings checks them."""
    variables = {item.field: item.variable for item in SETTINGS}
    for item in SETTINGS:
        accepted = item.accepted.format_map(variables)
        text = f"{item.help}; {accepted} (default: {item.default_text}, env {item.variable})"
        parser.add_argument(
            item.flag,
            dest=item.field,
            metavar=item.variable,
            # argparse formats help with %: a literal one must be doubled.
            help=text.replace("%", "%%"),
        )


def parse_settings(flags: Mapping[str, str | None], environ: Mapping[str, str]) -> Settings:
    """Build the settings from raw flag values (by field name, None when not given) and the
    environment.

    Surrounding white space is trimmed from every value: a ConfigMap value written as a YAML
    block scalar ends in a newline, and rejecting that would only surprise.
    """
    values: dict[str, Any] = {}
    given: dict[str, tuple[str, str]] = {}
    for item in SETTINGS:
        given_as, raw = item.flag, flags.get(item.field)
        if raw is None:
            given_as, raw = item.variable, environ.get(item.variable)
        if raw is None:
            continue
        given[item.field] = (given_as, raw)
        try:
            values[item.field] = item.parse(raw.strip())
        except ValueError:
            raise item.error(given_as, raw, _DEFAULTS | values) from None
    settings = Settings(**values)
    _check_together(settings, given)
    return settings


def _check_together(settings: Settings, given: Mapping[str, tuple[str, str]]) -> None:
    """The checks that involve more than one setting, once each has been parsed on its own."""
    if settings.num is not None and settings.num > settings.num_max:
        given_as, raw = given["num"]
        raise _BY_FIELD["num"].error(given_as, raw, vars(settings))
    # Nothing admitted may time out waiting: the budget is never more than the deadline.
    if settings.max_queue_delay is not None and settings.max_queue_delay > settings.request_timeout:
        given_as, raw = given["max_queue_delay"]
        raise _BY_FIELD["max_queue_delay"].error(given_as, raw, vars(settings))
