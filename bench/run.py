"""Side-by-side benchmark: example-service against the Go peer, in one run.

This machine is shared and noisy: absolute figures swing by a factor of two within
minutes, so every target is measured in the same run, alternating (A B A B ...), and
each figure is reported with its ratio to the Go peer measured in the same round. The
server is pinned to its own core(s) and the load generator (wrk) to another, so the
server's CPU time per request is attributable to the server alone; it is the steadiest
figure here. See bench/README.md for what each figure means.

Nothing here asserts an absolute time: this is a measuring tool, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
GO_PEER_DIR = BENCH / "go-peer"
GO_PEER_BIN = GO_PEER_DIR / "bin" / "example-service-go"
DEFAULT_SERVICE = REPO / ".venv" / "bin" / "example-service"
RESULTS = BENCH / "results"
LOOPBACK = "127.0.0.1"
REFERENCE = "go-peer"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Read once: the harness later pins itself to the load generator's CPUs.
MACHINE_CPUS = sorted(os.sched_getaffinity(0))

REPLY_WITH_NUM = b"there is env NUM. Computation succeeded\n"
REPLY_NO_NUM = b"there is no env NUM. Computation succeeded\n"

# wrk's done() hook hands over its own counters and HdrHistogram percentiles, exact to
# the microsecond, instead of the rounded strings of its text report. Defining only
# done() (no request/response hooks) keeps wrk on its fast C path.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,' ..
    '"max_us":%.0f,"mean_us":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


class BenchError(Exception):
    """A measurement could not be taken; the message says why."""


# --------------------------------------------------------------------------- targets


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
    """example-service with the bench's fixed flags plus the variant's own."""

    def argv(spec: RunSpec) -> list[str]:
        return [
            str(spec.service),
            "--host",
            LOOPBACK,
            "--port",
            str(spec.port),
            "--access-log",
            "off",
            # Stopping between rounds should not wait through the drain.
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


# ------------------------------------------------------------------ /proc readings


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses; fields resume after the last ')'.
    return raw.rpartition(")")[2].split()


def process_tree(root: int) -> list[int]:
    """root and every live descendant (worker processes of a pool included)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root: int) -> float:
    """utime+stime of the live tree, plus cutime+cstime for children already reaped.

    A child that exits between two readings moves its time into its parent's cutime,
    so the sum stays continuous across worker restarts.
    """
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is not None:
            # Fields 14-17 of proc(5): utime, stime, cutime, cstime.
            ticks += sum(int(f) for f in fields[11:15])
    return ticks / CLK_TCK


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory_mb(root: int) -> tuple[float, float]:
    """(sum of VmRSS, sum of PSS) over the tree, in MB (10^6 bytes).

    RSS counts pages shared by forked workers once per process; PSS divides them, so
    it is the fairer total for a server with a process pool.
    """
    tree = process_tree(root)
    rss = sum(_status_kb(pid, "VmRSS") for pid in tree)
    pss = sum(_pss_kb(pid) for pid in tree)
    return rss * 1024 / 1e6, pss * 1024 / 1e6


def children_cpu_seconds() -> float:
    """CPU of this harness's reaped children: wrk, when read around its wait."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_cpu_seconds() -> dict[int, dict[str, float]]:
    """Each CPU's time from /proc/stat: busy (tasks and interrupts), idle, steal."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        user, nice, system, idle, iowait, irq, softirq, steal = (
            int(f) / CLK_TCK for f in fields[:8]
        )
        out[int(name[3:])] = {
            "busy": user + nice + system + irq + softirq,
            "idle": idle + iowait,
            "steal": steal,
        }
    return out


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


# ------------------------------------------------------------------ HTTP on loopback


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """One GET with Connection: close over a raw socket; returns (status, body)."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        request = f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise BenchError(f"GET {path}: not an HTTP response: {head[:60]!r}")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return int(head.split()[1]), body


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    target: Target
    proc: subprocess.Popen[bytes]
    port: int
    cpus: Sequence[int]
    log: Path
    ready_s: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_server(
    target: Target, spec: RunSpec, cpus: Sequence[int], logdir: Path, ready_timeout: float
) -> Server:
    env = {k: v for k, v in os.environ.items() if k not in {"NUM", "PORT", "HOST"}}
    env.update(PORT=str(spec.port), HOST=LOOPBACK)
    if spec.num is not None:
        env["NUM"] = str(spec.num)
    argv = ["taskset", "-c", ",".join(map(str, cpus)), *target.command(spec)]
    log = logdir / f"{target.name}-{spec.port}.log"
    with log.open("wb") as out:
        started = time.perf_counter()
        # A session of its own, so that stopping can reach any worker it leaves behind.
        proc = subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(target, proc, spec.port, cpus, log)
    try:
        server.ready_s = wait_ready(server, started, ready_timeout)
    except BaseException:
        stop_server(server)
        raise
    return server


def wait_ready(server: Server, started: float, timeout: float) -> float:
    """Seconds from spawn to the first 200 on /healthz, polled every half millisecond."""
    deadline = started + timeout
    while True:
        if server.proc.poll() is not None:
            raise BenchError(
                f"{server.target.name} exited with {server.proc.returncode} before ready:\n"
                + server.log_tail()
            )
        try:
            status, _ = http_get(server.port, "/healthz", timeout=1.0)
            if status == 200:
                return time.perf_counter() - started
        except (OSError, BenchError, ValueError, IndexError):
            pass
        if time.perf_counter() > deadline:
            raise BenchError(f"{server.target.name} not ready within {timeout} s")
        time.sleep(0.0005)


def stop_server(server: Server) -> None:
    """SIGTERM; then a second signal (both servers exit at once on it); then SIGKILL."""
    proc = server.proc
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGINT, 3.0)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)
    # Anything left in the session we created (an orphaned worker) is ours to end.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


# ------------------------------------------------------------------------------- wrk


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass
class Wrk:
    """A wrk run on one URL, pinned to the load generator's cores."""

    url: str
    cpus: Sequence[int]
    script: Path
    connections: int
    threads: int
    duration_s: int
    timeout_s: int
    headers: Sequence[str] = ()
    proc: subprocess.Popen[str] | None = field(default=None, init=False)

    def argv(self) -> list[str]:
        argv = [
            "taskset",
            "-c",
            ",".join(map(str, self.cpus)),
            "wrk",
            "--latency",
            f"-t{min(self.threads, self.connections)}",
            f"-c{self.connections}",
            f"-d{self.duration_s}s",
            f"--timeout={self.timeout_s}s",
            "-s",
            str(self.script),
        ]
        for header in self.headers:
            argv += ["-H", header]
        return [*argv, self.url]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def finish(self) -> WrkResult:
        assert self.proc is not None
        try:
            out, err = self.proc.communicate(timeout=self.duration_s + self.timeout_s + 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise BenchError(f"wrk on {self.url} overran its time bound") from None
        except BaseException:  # interrupted: leave no wrk behind
            self.proc.kill()
            self.proc.communicate()
            raise
        for line in out.splitlines():
            if line.startswith("WRK-JSON "):
                data = json.loads(line.removeprefix("WRK-JSON "))
                break
        else:
            raise BenchError(f"wrk on {self.url} failed ({self.proc.returncode}): {err or out}")
        return WrkResult(
            requests=data["requests"],
            duration_s=data["duration_us"] / 1e6,
            p50_ms=data["p50_us"] / 1e3,
            p90_ms=data["p90_us"] / 1e3,
            p99_ms=data["p99_us"] / 1e3,
            max_ms=data["max_us"] / 1e3,
            mean_ms=data["mean_us"] / 1e3,
            errors={k: data[k] for k in ("status", "connect", "read", "write", "timeout")},
        )

    def run(self) -> WrkResult:
        self.start()
        return self.finish()


# ------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    fmt: str
    ratio: bool = True  # False for diagnostics, whose ratio to the peer means nothing


THROUGHPUT_FIGURES = [
    Figure("rps", "/abc req/s", "{:,.0f}"),
    Figure("p50_ms", "/abc p50 ms", "{:.2f}"),
    Figure("p99_ms", "/abc p99 ms", "{:.2f}"),
    Figure("errors", "/abc errors", "{:.0f}", ratio=False),
    Figure("cpu_us_per_req", "server CPU us/req", "{:.1f}"),
    Figure("server_busy_pct", "server busy % of its CPUs", "{:.0f}", ratio=False),
    Figure("server_cpus_idle_pct", "server's CPUs idle %", "{:.0f}", ratio=False),
    Figure("loadgen_busy_pct", "wrk busy % of a CPU", "{:.0f}", ratio=False),
    Figure("others_busy_pct", "other processes % of a CPU", "{:.0f}", ratio=False),
    Figure("metrics_p50_ms", "/metrics p50 ms", "{:.3f}"),
    Figure("metrics_cpu_us_per_scrape", "/metrics CPU us", "{:.0f}"),
    Figure("metrics_bytes", "/metrics bytes", "{:,.0f}"),
    Figure("rss_idle_mb", "RSS idle MB", "{:.1f}"),
    Figure("pss_idle_mb", "PSS idle MB", "{:.1f}"),
    Figure("rss_loaded_mb", "RSS after load MB", "{:.1f}"),
    Figure("ready_ms", "time to ready ms", "{:.1f}"),
]

HEALTHZ_FIGURES = [
    Figure("healthz_p50_ms", "/healthz p50 ms", "{:.2f}"),
    Figure("healthz_p99_ms", "/healthz p99 ms", "{:.2f}"),
    Figure("healthz_max_ms", "/healthz max ms", "{:.2f}"),
    Figure("healthz_probes", "/healthz probes", "{:,.0f}", ratio=False),
    Figure("healthz_errors", "/healthz errors", "{:.0f}", ratio=False),
    Figure("rps", "/abc req/s (load)", "{:,.1f}"),
    Figure("errors", "/abc errors", "{:.0f}", ratio=False),
    Figure("cpu_us_per_req", "server CPU us/req", "{:,.0f}"),
    Figure("server_busy_pct", "server busy % of its CPUs", "{:.0f}", ratio=False),
    Figure("others_busy_pct", "other processes % of a CPU", "{:.0f}", ratio=False),
    Figure("rss_idle_mb", "RSS idle MB", "{:.1f}"),
    Figure("ready_ms", "time to ready ms", "{:.1f}"),
]


@dataclass
class Settings:
    mode: str
    num: int | None
    cores: list[int]
    duration: int
    warmup: int
    metrics_duration: int
    metrics_connections: int
    connections: int
    threads: int
    rounds: int
    ready_timeout: float
    probe_interval: float
    service: Path
    baseline: str
    script: Path
    logdir: Path

    def expected_reply(self) -> bytes:
        return REPLY_WITH_NUM if self.num is not None else REPLY_NO_NUM


def cpu_layout(cores: int) -> tuple[list[int], list[int], bool]:
    """(server cpus, load generator cpus, whether they share).

    The server takes the first `cores` CPUs this process may use and wrk the next one.
    When none is left (two cores per server on a two-core machine) wrk shares the
    server's CPUs: that mode is meant for expensive requests (--num 25), where wrk's
    share is small, and the table shows that share as wrk CPU us/req.
    """
    cpus = MACHINE_CPUS
    if cores > len(cpus):
        raise BenchError(f"--cores {cores}: only {len(cpus)} CPUs available ({cpus})")
    server, rest = cpus[:cores], cpus[cores:]
    if rest:
        return server, rest[:1], False
    return server, server, True


def per_request_us(seconds: float, requests: int) -> float | None:
    return seconds / requests * 1e6 if requests else None


def cpu_figures(cpu: dict[str, float], requests: int, server_cpus: int) -> dict[str, Any]:
    wall = cpu["wall_s"]
    return {
        "cpu_us_per_req": per_request_us(cpu["server_cpu_s"], requests),
        "loadgen_cpu_us_per_req": per_request_us(cpu["loadgen_cpu_s"], requests),
        # Below about 95 the server was not the bottleneck: look at wrk and others next.
        "server_busy_pct": 100 * cpu["server_cpu_s"] / wall / server_cpus,
        "loadgen_busy_pct": 100 * cpu["loadgen_cpu_s"] / wall,
        "others_busy_pct": 100 * cpu["others_cpu_s"] / wall,
        "server_cpus_idle_pct": 100 * cpu["server_cpus_idle_s"] / wall / server_cpus,
    }


def check_reply(server: Server, settings: Settings) -> None:
    status, body = http_get(server.port, "/abc", timeout=30)
    if status != 200 or body != settings.expected_reply():
        raise BenchError(
            f"{server.target.name}: GET /abc answered {status} {body!r}, "
            f"expected 200 {settings.expected_reply()!r}"
        )


def measure_throughput(
    server: Server, settings: Settings, loadgen: Sequence[int]
) -> dict[str, Any]:
    s = settings
    base = f"http://{LOOPBACK}:{server.port}"
    figures: dict[str, Any] = {"ready_ms": server.ready_s * 1e3}
    figures["rss_idle_mb"], figures["pss_idle_mb"] = tree_memory_mb(server.pid)
    check_reply(server, s)

    def wrk(path: str, connections: int, duration: int) -> Wrk:
        return Wrk(base + path, loadgen, s.script, connections, s.threads, duration, 10)

    if s.warmup:
        wrk("/abc", s.connections, s.warmup).run()

    before = CpuReading.take(server.pid)
    abc = wrk("/abc", s.connections, s.duration).run()
    cpu = before.until(CpuReading.take(server.pid), server.cpus)
    figures.update(
        rps=abc.rps,
        p50_ms=abc.p50_ms,
        p99_ms=abc.p99_ms,
        errors=abc.error_count,
        error_kinds=abc.errors,
        requests=abc.requests,
        **cpu,
        **cpu_figures(cpu, abc.requests, len(server.cpus)),
    )

    status, body = http_get(server.port, "/metrics", timeout=10)
    figures["metrics_bytes"] = len(body) if status == 200 else None
    before = CpuReading.take(server.pid)
    scrape = wrk("/metrics", s.metrics_connections, s.metrics_duration).run()
    cpu = before.until(CpuReading.take(server.pid), server.cpus)
    figures.update(
        metrics_p50_ms=scrape.p50_ms,
        metrics_p99_ms=scrape.p99_ms,
        metrics_rps=scrape.rps,
        metrics_errors=scrape.error_count,
        metrics_cpu_us_per_scrape=per_request_us(cpu["server_cpu_s"], scrape.requests),
    )
    figures["rss_loaded_mb"], figures["pss_loaded_mb"] = tree_memory_mb(server.pid)
    return figures


@dataclass
class ProbeResult:
    latencies_ms: list[float]
    errors: int

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile: the value below which q percent of probes fall."""
        if not self.latencies_ms:
            return None
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def probe(port: int, path: str, duration: float, interval: float, timeout: float) -> ProbeResult:
    """GET path every `interval` seconds on a fresh connection, as kubelet probes do.

    Paced rather than back to back, so the probe is not itself a load; a fresh
    connection per probe, so accepting it is part of what is timed (from connect to
    the end of the response). A failed or timed-out probe counts as an error and as a
    latency of however long it took.
    """
    result = ProbeResult([], 0)
    end = time.perf_counter() + duration
    next_at = time.perf_counter()
    while next_at < end:
        time.sleep(max(0.0, next_at - time.perf_counter()))
        started = time.perf_counter()
        try:
            status, _ = http_get(port, path, timeout=timeout)
        except (OSError, BenchError, ValueError, IndexError):
            status = 0
        result.latencies_ms.append((time.perf_counter() - started) * 1e3)
        if status != 200:
            result.errors += 1
        # A slow probe delays the next one rather than piling up behind it.
        next_at = max(next_at + interval, time.perf_counter())
    return result


def measure_healthz(server: Server, settings: Settings, loadgen: Sequence[int]) -> dict[str, Any]:
    """/healthz latency while /abc is saturated (at NUM=27 unless told otherwise)."""
    s = settings
    figures: dict[str, Any] = {"ready_ms": server.ready_s * 1e3}
    figures["rss_idle_mb"], figures["pss_idle_mb"] = tree_memory_mb(server.pid)
    check_reply(server, s)

    head_start = 1.0
    load = Wrk(
        f"http://{LOOPBACK}:{server.port}/abc",
        loadgen,
        s.script,
        connections=s.connections,
        threads=s.threads,
        duration_s=s.duration + 2 * int(head_start),
        # Saturating requests queue behind each other: give them the service's deadline.
        timeout_s=30,
    )
    before = CpuReading.take(server.pid)
    load.start()
    try:
        # Let the load fill every connection before probing.
        time.sleep(head_start)
        probed = probe(server.port, "/healthz", s.duration, s.probe_interval, timeout=5.0)
    finally:
        loaded = load.finish()
    cpu = before.until(CpuReading.take(server.pid), server.cpus)
    figures.update(
        healthz_p50_ms=probed.percentile(50),
        healthz_p99_ms=probed.percentile(99),
        healthz_max_ms=probed.percentile(100),
        healthz_probes=len(probed.latencies_ms),
        healthz_errors=probed.errors,
        rps=loaded.rps,
        errors=loaded.error_count,
        error_kinds=loaded.errors,
        requests=loaded.requests,
        abc_p50_ms=loaded.p50_ms,
        abc_p99_ms=loaded.p99_ms,
        **cpu,
        # Paced probes cost next to nothing beside the saturating work.
        **cpu_figures(cpu, loaded.requests, len(server.cpus)),
    )
    return figures


MEASURES = {"throughput": measure_throughput, "healthz": measure_healthz}
FIGURES = {"throughput": THROUGHPUT_FIGURES, "healthz": HEALTHZ_FIGURES}


# ----------------------------------------------------------------------- the run


@dataclass
class Cell:
    """One target at one core count: its per-round figures."""

    target: Target
    cores: int
    rounds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.target.name}@{self.cores}"


def run_rounds(targets: list[Target], settings: Settings) -> list[Cell]:
    cells = [Cell(t, c) for c in settings.cores for t in targets]
    measure = MEASURES[settings.mode]
    for rnd in range(1, settings.rounds + 1):
        for cell in cells:
            server_cpus, loadgen_cpus, shared = cpu_layout(cell.cores)
            # The harness polls and parses on the load generator's side too.
            os.sched_setaffinity(0, loadgen_cpus)
            spec = RunSpec(free_port(), cell.cores, settings.num, settings.service)
            figures: dict[str, Any] = {"round": rnd}
            try:
                server = start_server(
                    cell.target, spec, server_cpus, settings.logdir, settings.ready_timeout
                )
                try:
                    figures.update(measure(server, settings, loadgen_cpus))
                finally:
                    stop_server(server)
            except BenchError as exc:
                figures["failed"] = str(exc)
                print(f"  round {rnd} {cell.key}: FAILED: {exc}", flush=True)
            else:
                print(f"  round {rnd} {cell.key}: {progress_line(figures, settings)}", flush=True)
            figures.update(
                server_cpus=server_cpus, loadgen_cpus=loadgen_cpus, loadgen_shares_cpus=shared
            )
            cell.rounds.append(figures)
    return cells


def progress_line(f: dict[str, Any], settings: Settings) -> str:
    if settings.mode == "healthz":
        return (
            f"/healthz p99 {f['healthz_p99_ms']:.2f} ms over {f['healthz_probes']} probes, "
            f"/abc {f['rps']:,.1f} req/s, {f['errors']} errors"
        )
    cpu = f["cpu_us_per_req"]
    return (
        f"{f['rps']:,.0f} req/s, p99 {f['p99_ms']:.2f} ms, "
        f"{cpu:.1f} us CPU/req, {f['errors']} errors, "
        f"/metrics p50 {f['metrics_p50_ms']:.3f} ms, ready {f['ready_ms']:.0f} ms"
        if cpu is not None
        else "no requests completed"
    )


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(cells: list[Cell], settings: Settings) -> dict[str, Any]:
    """Medians per cell, and ratios to the reference paired round by round.

    Pairing each round's figure with the reference's figure from the same round cancels
    most of the drift of a shared machine; the median of those ratios is reported.
    """
    figures = FIGURES[settings.mode]
    by_key = {c.key: c for c in cells}
    summary: dict[str, Any] = {}
    for cell in cells:
        ok = [r for r in cell.rounds if "failed" not in r]
        medians = {
            f.key: _median([r[f.key] for r in ok if r.get(f.key) is not None]) for f in figures
        }
        ref = by_key.get(f"{settings.baseline}@{cell.cores}")
        ratios: dict[str, float | None] = {}
        if ref is not None and ref is not cell:
            for f in figures:
                pairs = [
                    r[f.key] / q[f.key]
                    for r, q in zip(cell.rounds, ref.rounds, strict=True)
                    if r.get(f.key) is not None and q.get(f.key)
                ]
                ratios[f.key] = _median(pairs)
        summary[cell.key] = {
            "target": cell.target.name,
            "cores": cell.cores,
            "rounds_ok": len(ok),
            "median": medians,
            "ratio_to_baseline": ratios,
        }
    if len(settings.cores) > 1:
        lo, hi = min(settings.cores), max(settings.cores)
        for name in dict.fromkeys(c.target.name for c in cells):
            a, b = by_key[f"{name}@{lo}"], by_key[f"{name}@{hi}"]
            pairs = [
                y["rps"] / x["rps"]
                for x, y in zip(a.rounds, b.rounds, strict=True)
                if x.get("rps") and y.get("rps") is not None
            ]
            summary[f"{name}@{hi}"][f"rps_ratio_to_{lo}_cores"] = _median(pairs)
    return summary


def print_table(cells: list[Cell], summary: dict[str, Any], settings: Settings) -> None:
    figures = FIGURES[settings.mode]
    header = ["figure (median)", *(c.key for c in cells)]
    rows = [header]
    for f in figures:
        row = [f.label]
        for cell in cells:
            s = summary[cell.key]
            value = s["median"].get(f.key)
            text = "-" if value is None else f.fmt.format(value)
            ratio = s["ratio_to_baseline"].get(f.key) if f.ratio else None
            if ratio is not None:
                text += f" ({ratio:.2f}x)"
            row.append(text)
        rows.append(row)
    scaling_key = f"rps_ratio_to_{min(settings.cores)}_cores"
    if len(settings.cores) > 1:
        row = [f"req/s {max(settings.cores)} cores / {min(settings.cores)}"]
        for cell in cells:
            ratio = summary[cell.key].get(scaling_key)
            row.append("" if ratio is None else f"{ratio:.2f}x")
        rows.append(row)
    rows.append(["rounds ok", *(f"{summary[c.key]['rounds_ok']}/{settings.rounds}" for c in cells)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        cols = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cols))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(
        f"(ratios: each target over {settings.baseline} at the same core count, paired per round)"
    )
    for note in caveats(cells, summary):
        print(f"note: {note}")


def caveats(cells: list[Cell], summary: dict[str, Any]) -> list[str]:
    """What makes this run's ratios less trustworthy, read off its own figures."""
    notes = []
    for cell in cells:
        median = summary[cell.key]["median"]
        idle = median.get("server_cpus_idle_pct")
        if idle is not None and idle > 10:
            notes.append(
                f"{cell.key}'s CPUs were {idle:.0f}% idle under load: it was not saturated "
                "(wrk or other processes bound it), so its req/s understates it; "
                "CPU per request still holds"
            )
        others = median.get("others_busy_pct")
        if others is not None and others > 25:
            notes.append(
                f"during {cell.key} other work on the machine took {others:.0f}% of a CPU: "
                "prefer the CPU-per-request ratios, or rerun when the machine is quieter"
            )
    return notes


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "cpu_model": model,
        "cpus": MACHINE_CPUS,
        "python": platform.python_version(),
        "go": tool_version(["go", "version"]),
        "wrk": tool_version(["wrk", "-v"]),
    }


# ----------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--mode",
        choices=sorted(MEASURES),
        default="throughput",
        help="throughput: /abc, /metrics, RSS, time to ready; "
        "healthz: /healthz latency while /abc is saturated (NUM defaults to 27)",
    )
    p.add_argument("--num", type=int, default=None, help="NUM for every target (unset if omitted)")
    p.add_argument(
        "--cores",
        default="1",
        help="CPUs per server; a comma list (1,2) runs each and reports the req/s scaling",
    )
    p.add_argument("--duration", type=int, default=5, help="seconds of load per measurement")
    p.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured /abc load first")
    p.add_argument("--metrics-duration", type=int, default=2, help="seconds of /metrics load")
    p.add_argument(
        "--metrics-connections",
        type=int,
        default=1,
        help="connections for /metrics (1: one scraper at a time, latency without queueing)",
    )
    p.add_argument("--connections", type=int, default=64, help="wrk connections on /abc")
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--rounds", type=int, default=3, help="A B A B ... rounds; medians reported")
    p.add_argument(
        "--probe-interval-ms",
        type=float,
        default=10.0,
        help="healthz mode: one /healthz probe on a fresh connection this often",
    )
    p.add_argument("--ready-timeout", type=float, default=20.0, help="seconds to wait for ready")
    p.add_argument(
        "--targets",
        default=",".join(DEFAULT_TARGETS),
        help=f"comma list from: {', '.join(t.name for t in TARGETS)}",
    )
    p.add_argument(
        "--add-target",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="an extra target; {port} in COMMAND becomes its port (PORT and NUM are in its "
        "environment too). Repeatable.",
    )
    p.add_argument(
        "--baseline",
        default=REFERENCE,
        help="the target every ratio is taken to (it must be among the targets run)",
    )
    p.add_argument("--service", type=Path, default=DEFAULT_SERVICE, help="example-service binary")
    p.add_argument("--output", type=Path, default=RESULTS, help="directory for the JSON results")
    args = p.parse_args(argv)
    if args.mode == "healthz" and args.num is None:
        args.num = 27
    try:
        args.cores = sorted({int(c) for c in args.cores.split(",")})
    except ValueError:
        p.error(f"--cores {args.cores!r}: expected a comma list of integers")
    if min(args.cores) < 1 or args.duration < 1 or args.metrics_duration < 1 or args.rounds < 1:
        p.error("--cores, --duration, --metrics-duration and --rounds must be at least 1")
    return args


def select_targets(args: argparse.Namespace) -> list[Target]:
    known = {t.name: t for t in TARGETS}
    for spec in args.add_target:
        name, sep, command = spec.partition("=")
        if not sep or not name or not command:
            raise BenchError(f"--add-target {spec!r}: expected NAME=COMMAND")
        known[name] = command_target(name, command)
    names = [n.strip() for n in args.targets.split(",") if n.strip()]
    names += [s.partition("=")[0] for s in args.add_target if s.partition("=")[0] not in names]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BenchError(f"unknown targets {unknown}; known: {sorted(known)}")
    chosen: list[Target] = []
    for name in names:
        target = known[name]
        if target.prepare is not None:
            try:
                target.prepare(args.service)
            except BenchError as exc:
                print(f"skipping {name}: {exc}", flush=True)
                continue
        chosen.append(target)
    if not chosen:
        raise BenchError("no target can run")
    if args.baseline not in {t.name for t in chosen}:
        print(f"no ratios: the baseline {args.baseline} is not among the targets run", flush=True)
    return chosen


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="example-service-bench-") as tmp:
        yield Path(tmp)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM takes the same path as Ctrl-C, so every server and wrk is stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"missing {missing}: apt-get install wrk util-linux", file=sys.stderr)
        return 2
    try:
        targets = select_targets(args)
        with scratch_dir() as tmp:
            script = tmp / "report.lua"
            script.write_text(WRK_REPORT)
            settings = Settings(
                mode=args.mode,
                num=args.num,
                cores=args.cores,
                duration=args.duration,
                warmup=args.warmup,
                metrics_duration=args.metrics_duration,
                metrics_connections=args.metrics_connections,
                connections=args.connections,
                threads=args.threads,
                rounds=args.rounds,
                ready_timeout=args.ready_timeout,
                probe_interval=args.probe_interval_ms / 1e3,
                service=args.service,
                baseline=args.baseline,
                script=script,
                logdir=tmp,
            )
            started = datetime.now(UTC)
            num = "unset" if args.num is None else args.num
            print(
                f"mode={args.mode} NUM={num} cores={args.cores} duration={args.duration}s "
                f"rounds={args.rounds} connections={args.connections} "
                f"targets={[t.name for t in targets]}",
                flush=True,
            )
            per_round = args.warmup + args.duration + 2
            if args.mode == "throughput":
                per_round += args.metrics_duration
            cells_count = len(targets) * len(args.cores)
            print(f"about {per_round * cells_count * args.rounds} s", flush=True)
            cells = run_rounds(targets, settings)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped, no results written", file=sys.stderr)
        return 130
    summary = summarise(cells, settings)
    print()
    print_table(cells, summary, settings)

    settings_out = {k: v for k, v in vars(args).items() if k not in {"service", "output"}}
    result = {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "notes": caveats(cells, summary),
        "settings": {**settings_out, "service": str(args.service)},
        "targets": {
            c.key: {
                "command": c.target.command(RunSpec(0, c.cores, args.num, args.service)),
                "rounds": c.rounds,
                **summary[c.key],
            }
            for c in cells
        },
    }
    args.output.mkdir(parents=True, exist_ok=True)
    cores = "-".join(map(str, args.cores))
    path = args.output / (f"{started:%Y%m%dT%H%M%SZ}-{args.mode}-num{num}-cores{cores}.json")
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
