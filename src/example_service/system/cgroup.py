"""The container's own resources, as its cgroup (v1 or v2) accounts them.

The cgroup is found once, at construction; its files are read when asked (each scrape, each
GET /info, and when the service sizes its worker pool). "Unlimited" is never a number: the
limit is None. The rules are in docs/readings.md."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from example_service.system.files import OpenFiles, Reads, read_file

# cgroup v1 says "no memory limit" with LONG_MAX rounded down to a page:
# 9223372036854771712 with 4 KiB pages, 9223372036854710272 with 64 KiB pages.
_V1_UNLIMITED_BYTES = (2**63 - 1) // 65536 * 65536
_CONTROLLERS = ("cpu", "cpuacct", "memory")


@dataclass(frozen=True, slots=True)
class CgroupReadings:
    """One reading of the cgroup; None where the kernel gave no value (or, for limits,
    where there is no limit). problems says what could not be read, and why."""

    cpu_quota_cores: float | None = None
    cpu_period_seconds: float | None = None
    cpu_usage_seconds: float | None = None
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_seconds: float | None = None
    memory_limit_bytes: int | None = None
    memory_usage_bytes: int | None = None
    memory_working_set_bytes: int | None = None
    oom_kills: int | None = None
    problems: tuple[str, ...] = ()

    @property
    def up(self) -> bool:
        """Whether everything the cgroup offers was read."""
        return not self.problems

    @classmethod
    def unavailable(cls, problem: str) -> CgroupReadings:
        """No reading at all, and why."""
        return cls(problems=(problem,))


class CgroupReader:
    """This process's cgroup, found under cgroup_root from procfs_root/self/cgroup.

    version is 2 (unified hierarchy), 1 (the cpu, cpuacct and memory controllers on v1
    hierarchies, hybrid set-ups included) or None when no cgroup was found (failure says why).
    path is the cgroup's path as /proc/self/cgroup shows it (v1: the memory controller's)."""

    def __init__(self, *, cgroup_root: Path, procfs_root: Path) -> None:
        self.version: int | None = None
        self.path: str | None = None
        self.failure: str | None = None
        self._dirs: dict[str, str] = {}
        self._files = OpenFiles()
        source = f"{procfs_root}/self/cgroup"
        try:
            memberships = _parse_memberships(read_file(source))
        except OSError as error:
            self.failure = f"{source}: {error.strerror}"
            return
        except ValueError:
            self.failure = f"{source}: not 'id:controllers:path' lines"
            return
        if any(".." in path.split("/") for _, path in memberships.values()):
            # A cgroup outside this cgroup namespace: joined to the mount, the path would
            # lead to some other cgroup's figures.
            self.failure = f"{source}: a cgroup outside this cgroup namespace"
            return
        root = str(cgroup_root)
        if os.path.exists(f"{root}/cgroup.controllers"):
            if "" not in memberships:
                self.failure = f"{source}: no cgroup v2 entry"
                return
            path = memberships[""][1]
            directory = _directory(root, path)
            self._dirs = dict.fromkeys(_CONTROLLERS, directory)
            self.version, self.path = 2, path
            return
        for controller in _CONTROLLERS:
            found = _v1_directory(root, controller, memberships)
            if found is None:
                self.failure = f"no cgroup v2 and no cgroup v1 {controller} controller in {root}"
                return
            self._dirs[controller] = found
        self.version, self.path = 1, memberships["memory"][1]

    def cpu_limit_cores(self) -> float | None:
        """The CPU quota in cores (1.5 for "150000 100000"); None when unlimited or unknown."""
        quota = self._cpu_quota(Reads())
        return None if quota is None else quota[0]

    def memory_limit_bytes(self) -> int | None:
        """The memory limit; None when unlimited or unknown."""
        return self._memory_limit(Reads())

    def read(self) -> CgroupReadings:
        """Everything the cgroup's files say now. Not for two threads at once: it keeps its
        files open between readings (cpu_limit_cores and memory_limit_bytes do not)."""
        if self.version is None:
            return CgroupReadings.unavailable(f"no cgroup: {self.failure}")
        reads = Reads(self._files)
        quota = self._cpu_quota(reads)
        cores, period = quota if quota is not None else (None, None)
        cpu, cpuacct, memory = (self._dirs[controller] for controller in _CONTROLLERS)
        cpu_stat = reads.keyed(f"{cpu}/cpu.stat") or {}
        if self.version == 2:
            usage_usec = cpu_stat.get("usage_usec")
            throttled_usec = cpu_stat.get("throttled_usec")
            usage = None if usage_usec is None else usage_usec / 1e6
            throttled = None if throttled_usec is None else throttled_usec / 1e6
            memory_usage = reads.integer(f"{memory}/memory.current")
            inactive = reads.keyed_value(f"{memory}/memory.stat", "inactive_file")
            oom_kills = reads.keyed_value(f"{memory}/memory.events", "oom_kill")
        else:
            usage_ns = reads.integer(f"{cpuacct}/cpuacct.usage")
            throttled_ns = cpu_stat.get("throttled_time")
            usage = None if usage_ns is None else usage_ns / 1e9
            throttled = None if throttled_ns is None else throttled_ns / 1e9
            memory_usage = reads.integer(f"{memory}/memory.usage_in_bytes")
            inactive = reads.keyed_value(f"{memory}/memory.stat", "total_inactive_file")
            oom_kills = reads.keyed_value(f"{memory}/memory.oom_control", "oom_kill")
        working_set = None
        if memory_usage is not None and inactive is not None:
            # As the kubelet counts it for eviction: the inactive page cache is reclaimable.
            working_set = max(memory_usage - inactive, 0)
        memory_limit = self._memory_limit(reads)
        self._files.reading_done()
        return CgroupReadings(
            cpu_quota_cores=cores,
            cpu_period_seconds=period,
            cpu_usage_seconds=usage,
            cpu_periods=cpu_stat.get("nr_periods"),
            cpu_throttled_periods=cpu_stat.get("nr_throttled"),
            cpu_throttled_seconds=throttled,
            memory_limit_bytes=memory_limit,
            memory_usage_bytes=memory_usage,
            memory_working_set_bytes=working_set,
            oom_kills=oom_kills,
            problems=tuple(reads.problems),
        )

    def _cpu_quota(self, reads: Reads) -> tuple[float, float] | None:
        """(quota in cores, period in seconds), or None when unlimited or unknown."""
        if self.version is None:
            return None
        cpu = self._dirs["cpu"]
        limit = _v2_cpu_max(reads, f"{cpu}/cpu.max") if self.version == 2 else _v1_cfs(reads, cpu)
        if limit is None:
            return None
        quota, period = limit
        return quota / period, period / 1e6

    def _memory_limit(self, reads: Reads) -> int | None:
        if self.version is None:
            return None
        memory = self._dirs["memory"]
        if self.version == 2:
            path = f"{memory}/memory.max"
            text = reads.text(path)
            if text is None or text.strip() == "max":
                return None
            return reads.parse_integer(path, text)
        limit = reads.integer(f"{memory}/memory.limit_in_bytes")
        return None if limit is None or limit >= _V1_UNLIMITED_BYTES else limit


def _v2_cpu_max(reads: Reads, path: str) -> tuple[int, int] | None:
    """cpu.max: "max 100000" or "150000 100000"; absent in the root cgroup, which has no limit."""
    text = reads.text(path)
    if text is None:
        return None
    fields = text.split()
    if len(fields) != 2:
        reads.note(f"{path}: not 'quota period': {text.strip()!r}")
        return None
    if fields[0] == "max":
        return None
    quota = reads.parse_integer(path, fields[0], minimum=1)
    period = reads.parse_integer(path, fields[1], minimum=1)
    return None if quota is None or period is None else (quota, period)


def _v1_cfs(reads: Reads, directory: str) -> tuple[int, int] | None:
    quota = reads.integer(f"{directory}/cpu.cfs_quota_us", minimum=-1)
    if quota is None or quota == -1:  # -1: unlimited
        return None
    period = reads.integer(f"{directory}/cpu.cfs_period_us", minimum=1)
    return None if period is None else (quota, period)


def _parse_memberships(text: str) -> dict[str, tuple[str, str]]:
    """/proc/self/cgroup as {controller: (its hierarchy's controllers, path)}; the v2 entry's
    controller is ""."""
    memberships: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            memberships[controller] = (controllers, path)
    return memberships


def _directory(mount: str, path: str) -> str:
    """The cgroup's directory under a mount. A container without its own cgroup namespace
    sees its full path (/kubepods/...) in /proc/self/cgroup but has only its own cgroup
    mounted, as the mount's root."""
    relative = path.strip("/")
    joined = f"{mount}/{relative}"
    return joined if relative and os.path.isdir(joined) else mount


def _v1_directory(
    root: str, controller: str, memberships: dict[str, tuple[str, str]]
) -> str | None:
    if controller not in memberships:
        return None
    controllers, path = memberships[controller]
    # Co-mounted controllers live in "cpu,cpuacct", which systems usually also reach through
    # "cpu" and "cpuacct" links; without the links only the combined name exists.
    for mount in (f"{root}/{controller}", f"{root}/{controllers}"):
        if os.path.isdir(mount):
            return _directory(mount, path)
    return None
