"""The service's child processes as /proc shows them, and the cost of one computation here."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from example_service.fibonacci import fib


def descendants(pid: int) -> list[int]:
    """Every process below pid, zombies included (a killed child not yet waited for)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def workers(pid: int) -> list[int]:
    """The service's worker processes (multiprocessing's spawned children)."""
    return [child for child in descendants(pid) if "spawn_main" in command_line(child)]


def resource_tracker(pid: int) -> list[int]:
    return [child for child in descendants(pid) if "resource_tracker" in command_line(child)]


def state(pid: int) -> str:
    """The process state letter (R running, S sleeping, Z zombie), or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return ""


def ended(pid: int) -> bool:
    return state(pid) in ("", "Z")


def killed(pid: int) -> bool:
    """Whether pid is gone or has a SIGKILL pending: a process at a low priority on a busy
    machine may wait a while for the CPU it needs to die."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    pending = 0
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key in ("SigPnd", "ShdPnd"):
            pending |= int(value.strip(), 16)
    return ended(pid) or bool(pending & 1 << (signal.SIGKILL - 1))


def num_lasting(seconds: float, ceiling: int = 40, function: Callable[[int], int] = fib) -> int:
    """The smallest NUM whose fib takes at least `seconds` of a core here, timed in this
    process with the service's own fib (or the given one: the Python fallback's for a service
    run without the compiled one), so the figure follows the machine and the build."""
    n = 20
    while n < ceiling:
        started = time.perf_counter()
        function(n)
        if time.perf_counter() - started >= seconds:
            return n
        n += 1
    return ceiling
