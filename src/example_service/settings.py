"""One validated settings object: flags win over environment variables, which win over defaults.

Every setting is checked before anything binds a port, and a bad value is reported as a
single line naming the setting, the value and what is accepted.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from example_service.faults import MAX_LATENCY_MS, Latency

# Measured here: fib(35) takes 0.53 s of one core and fib(36) 0.84 s. 35 keeps one request
# under about a second with room for a slower node. NUM_MAX raises it deliberately.
DEFAULT_NUM_MAX = 35
# Deeper than this the naive recursion would run for hours; the deadline still applies below.
NUM_MAX_CEILING = 60
# fib(10) is what the lab computes when NUM is unset.
NUM_WHEN_UNSET = 10


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""

    def __init__(self, setting: str, value: str, accepted: str) -> None:
        super().__init__(f"invalid {setting} {value!r}: expected {accepted}")
        self.setting = setting


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 5565
    num: int | None = None
    num_max: int = DEFAULT_NUM_MAX
    workers: int | None = None
    request_timeout: float = 10.0
    drain_delay: float = 5.0
    shutdown_timeout: float = 10.0
    header_timeout: float = 10.0
    access_log: bool = True
    log_level: str = "info"
    sysfs_root: Path = Path("/sys")
    procfs_root: Path = Path("/proc")
    cgroup_root: Path = Path("/sys/fs/cgroup")
    demo_readings: bool = False
    request_metrics: bool = True
    fault_error_ratio: float = 0.0
    fault_latency: Latency = field(default_factory=Latency)

    @property
    def fib_n(self) -> int:
        """The Fibonacci argument one /abc request computes."""
        return NUM_WHEN_UNSET if self.num is None else self.num


@dataclass(frozen=True)
class Option:
    """How one setting is spelled on the command line and in the environment, and parsed."""

    field: str
    flag: str
    env: str
    # None for NUM alone: its accepted range depends on NUM_MAX, so it is parsed last.
    parse: Callable[[str], Any] | None
    accepted: str
    help: str
    # How --help words the default where the field's own default (None) would say nothing.
    default_text: str | None = None


_INTEGER = re.compile(r"[0-9]+")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
LOG_LEVELS = ("debug", "info", "warning", "error")


def _integer(text: str, low: int, high: int) -> int:
    # Only ASCII digits: int() would also accept "+5", "1_000" and other scripts' digits.
    if not _INTEGER.fullmatch(text):
        raise ValueError
    value = int(text)
    if not low <= value <= high:
        raise ValueError
    return value


def _seconds(text: str, low: float, high: float) -> float:
    value = float(text)
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError
    return value


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
    if not text:
        raise ValueError
    return Path(text)


OPTIONS: tuple[Option, ...] = (
    Option(
        "host", "--host", "HOST", _host, "an IPv4 or IPv6 address, or localhost", "listen address"
    ),
    Option(
        "port",
        "--port",
        "PORT",
        lambda t: _integer(t, 1, 65535),
        "an integer from 1 to 65535",
        "listen port",
    ),
    Option(
        "num",
        "--num",
        "NUM",
        None,
        "an integer from 1 to NUM_MAX",
        "Fibonacci argument of GET /abc; unset or empty means the lab's fib(10)",
    ),
    Option(
        "num_max",
        "--num-max",
        "NUM_MAX",
        lambda t: _integer(t, 1, NUM_MAX_CEILING),
        f"an integer from 1 to {NUM_MAX_CEILING}",
        "largest NUM accepted",
    ),
    Option(
        "workers",
        "--workers",
        "WORKERS",
        lambda t: _integer(t, 1, 256),
        "an integer from 1 to 256",
        "worker processes for the Fibonacci workload",
        default_text="the CPUs this process may run on",
    ),
    Option(
        "request_timeout",
        "--request-timeout",
        "REQUEST_TIMEOUT",
        lambda t: _seconds(t, 0.01, 3600),
        "seconds from 0.01 to 3600",
        "deadline of one /abc computation; past it the request answers 503",
    ),
    Option(
        "drain_delay",
        "--drain-delay",
        "DRAIN_DELAY",
        lambda t: _seconds(t, 0, 300),
        "seconds from 0 to 300",
        "after SIGTERM, how long to keep serving while /readyz answers 503",
    ),
    Option(
        "shutdown_timeout",
        "--shutdown-timeout",
        "SHUTDOWN_TIMEOUT",
        lambda t: _seconds(t, 0, 300),
        "seconds from 0 to 300",
        "after the drain, how long in-flight requests may take to finish",
    ),
    Option(
        "header_timeout",
        "--header-timeout",
        "HEADER_TIMEOUT",
        lambda t: _seconds(t, 0.1, 300),
        "seconds from 0.1 to 300",
        "a client that has not sent its whole request head by then is disconnected",
    ),
    Option(
        "access_log",
        "--access-log",
        "ACCESS_LOG",
        _switch,
        "on or off",
        "one JSON line per request",
    ),
    Option(
        "log_level",
        "--log-level",
        "LOG_LEVEL",
        _log_level,
        "one of " + ", ".join(LOG_LEVELS),
        "least severe level logged",
    ),
    Option(
        "sysfs_root",
        "--sysfs-root",
        "SYSFS_ROOT",
        _directory,
        "a directory path",
        "where sysfs is mounted (sensors, disks)",
    ),
    Option(
        "procfs_root",
        "--procfs-root",
        "PROCFS_ROOT",
        _directory,
        "a directory path",
        "where procfs is mounted (namespaces, own cgroup)",
    ),
    Option(
        "cgroup_root",
        "--cgroup-root",
        "CGROUP_ROOT",
        _directory,
        "a directory path",
        "where the cgroup hierarchy is mounted",
    ),
    Option(
        "demo_readings",
        "--demo-readings",
        "DEMO_READINGS",
        _switch,
        "on or off",
        "report the lab's hand-set temperature and disk errors instead of real readings",
    ),
    Option(
        "request_metrics",
        "--request-metrics",
        "REQUEST_METRICS",
        _switch,
        "on or off",
        "record per-request metrics (off only to measure their cost)",
    ),
    Option(
        "fault_error_ratio",
        "--fault-error-ratio",
        "FAULT_ERROR_RATIO",
        _ratio,
        "a number from 0 to 1",
        "share of /abc requests answered 500 on purpose (fault injection; never in production)",
    ),
    Option(
        "fault_latency",
        "--fault-latency-ms",
        "FAULT_LATENCY_MS",
        Latency.parse,
        f"milliseconds N or a range MIN-MAX, up to {MAX_LATENCY_MS}",
        "delay added to every /abc request, fixed or drawn uniformly (fault injection)",
    ),
)


def _resolve_num(name: str, raw: str | None, num_max: int) -> int | None:
    """An empty NUM means unset, as the Go lab's os.Getenv check treated it."""
    if raw is None or not raw.strip():
        return None
    accepted = f"an integer from 1 to {num_max} (NUM_MAX raises the maximum)"
    try:
        return _integer(raw.strip(), 1, num_max)
    except ValueError:
        raise ConfigError(name, raw, accepted) from None


def resolve(flags: Mapping[str, str | None], environ: Mapping[str, str]) -> Settings:
    """Build the settings from raw flag values (None when not given) and the environment.

    Surrounding white space is trimmed from every value: a ConfigMap value written as a YAML
    block scalar ends in a newline, and rejecting that would only surprise.
    """
    values: dict[str, Any] = {}
    num_name, raw_num = "NUM", None
    for option in OPTIONS:
        name, raw = option.flag, flags.get(option.field)
        if raw is None:
            name, raw = option.env, environ.get(option.env)
        if raw is None:
            continue
        if option.parse is None:
            num_name, raw_num = name, raw
            continue
        try:
            values[option.field] = option.parse(raw.strip())
        except ValueError:
            raise ConfigError(name, raw, option.accepted) from None
    settings = Settings(**values)
    return replace(settings, num=_resolve_num(num_name, raw_num, settings.num_max))


def from_environment(flags: Mapping[str, str | None]) -> Settings:
    return resolve(flags, os.environ)
