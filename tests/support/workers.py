"""The service's processes and threads as /proc shows them, and the cost of one computation
here."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from example_service.workload.fibonacci import fib


def descendants(pid: int) -> list[int]:
    """Every process below pid, zombies included (a killed child not yet waited for)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *descendants(int(child))]
    return found


def threads(pid: int) -> dict[int, str]:
    """The threads of a process, by id, with their names."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found[int(task.name)] = (task / "comm").read_text().strip()
        except FileNotFoundError:  # ended while listed
            continue
    return found


def descriptors(pid: int) -> dict[int, str]:
    """The open file descriptors of a process, with what each refers to."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed while listed
            continue
    return found


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
