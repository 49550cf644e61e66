"""What the server, the load generator and the rest of the machine spent: CPU time and
memory, sampled with psutil before and after each measured run."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil


def process_tree(root: int) -> list[psutil.Process]:
    """root and every live descendant (worker processes of a pool included)."""
    try:
        parent = psutil.Process(root)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu_seconds(root: int) -> float:
    """User and system time of the live tree, plus that of children already reaped.

    A child that exits between two readings moves its time into its parent's children
    times, so the sum stays continuous across worker restarts.
    """
    total = 0.0
    for process in process_tree(root):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


def tree_memory_mb(root: int) -> tuple[float, float]:
    """(sum of RSS, sum of PSS) over the tree, in MB (10^6 bytes).

    RSS counts pages shared by forked workers once per process; PSS divides them, so
    it is the fairer total for a server with a process pool.
    """
    rss = pss = 0
    for process in process_tree(root):
        with contextlib.suppress(psutil.Error):
            memory = process.memory_full_info()
            rss += memory.rss
            pss += memory.pss
    return rss / 1e6, pss / 1e6


def children_cpu_seconds() -> float:
    """CPU of this harness's reaped children: wrk, when read around its wait."""
    times = psutil.Process().cpu_times()
    return float(times.children_user + times.children_system)


def machine_cpu_seconds() -> dict[int, dict[str, float]]:
    """Each CPU's time: busy (tasks and interrupts), idle, steal."""
    return {
        cpu: {
            "busy": t.user + t.nice + t.system + t.irq + t.softirq,
            "idle": t.idle + t.iowait,
            "steal": t.steal,
        }
        for cpu, t in enumerate(psutil.cpu_times(percpu=True))
    }


@dataclass(frozen=True)
class CpuReading:
    server: float
    loadgen: float
    machine: dict[int, dict[str, float]]
    wall: float

    @classmethod
    def take(cls, server_pid: int) -> CpuReading:
        return cls(
            tree_cpu_seconds(server_pid),
            children_cpu_seconds(),
            machine_cpu_seconds(),
            time.monotonic(),
        )

    def until(self, later: CpuReading, server_cpus: Sequence[int]) -> dict[str, float]:
        """CPU seconds spent between two readings, split by who spent them.

        `others` is what the machine's CPUs did besides the server and wrk: other
        processes (this machine is shared) and interrupt time charged to no task. When
        it is large, the round's req/s is suspect; CPU per request mostly holds. The
        server's own idle time says whether it was saturated. wrk is only counted once
        reaped, so take `later` after it has exited.
        """

        def spent(kind: str, cpus: Sequence[int]) -> float:
            return sum(later.machine[c][kind] - self.machine[c][kind] for c in cpus)

        server = later.server - self.server
        loadgen = later.loadgen - self.loadgen
        every = list(self.machine)
        return {
            "wall_s": later.wall - self.wall,
            "server_cpu_s": server,
            "loadgen_cpu_s": loadgen,
            "others_cpu_s": max(0.0, spent("busy", every) - server - loadgen),
            "server_cpus_idle_s": spent("idle", server_cpus),
            "steal_cpu_s": spent("steal", every),
        }


def wait_idle(root: int, timeout: float, window: float = 0.2) -> bool:
    """Waits until the tree spends at most one clock tick (10 ms) of CPU in `window` seconds.

    wrk abandons its in-flight requests when its time is up, and the server goes on
    computing them: a run started at once would share the CPU with that backlog, and for
    a service that sheds load, find its queue still full. False if still busy at timeout.
    """
    deadline = time.monotonic() + timeout
    before = tree_cpu_seconds(root)
    while time.monotonic() < deadline:
        time.sleep(window)
        now = tree_cpu_seconds(root)
        if now - before <= 0.011:
            return True
        before = now
    return False
