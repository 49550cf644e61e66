"""Where do the service's threads wait for the GIL under load?

Target (c), two cores over one at NUM=25, falls short because the two-core server idles
while its CPU-bound requests wait (docs/performance.md, "Two cores over one"). This script
shows where: it puts uprobes on CPython's take_gil and drop_gil, loads the service on its
cores with wrk, and prints for each thread how long it held the GIL, how long it waited
for it, and how those waits are spread. Run it beside a change to the request path, the
worker threads, the event loop or the switch interval, before and after.

    .venv/bin/python -m bench.gil_waits [--cores 0,1] [--connections 8] [--num 25]
        [--duration 3] [-- SERVICE_ARGS...]

Needs root, perf with uprobes (Debian: apt-get install linux-perf) and an interpreter
whose libpython keeps its static symbols (a pyenv or source build does; Debian's
/usr/bin/python3.11 is stripped and the probes cannot be placed). The probes slow each
GIL hand-off by a few microseconds, so the req/s printed is lower than the bench's: read
the shares, not the rate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import BenchError
from bench.servers import free_port, start_server, stop_server
from bench.targets import LOOPBACK, RunSpec, service_target
from bench.wrk import WRK_REPORT, Wrk
from example_service.load.stats import quantile

DEFAULT_SERVICE = Path(sys.executable).parent / "example-service"
PROBES = {
    "take": "take_gil",
    "taken": "take_gil%return",
    "drop": "drop_gil",
}
# What perf names each probe's event: a return probe's name gets a suffix.
EVENTS = {"take": "take", "taken": "taken__return", "drop": "drop"}
GROUP = "example_service_gil"
# A wait longer than this is counted apart: it is longer than a hand-off between two
# running threads and means the waiter lost the GIL more than once or was not on a CPU.
LONG_WAIT = 100e-6


@dataclass
class ThreadGil:
    name: str
    held: float = 0.0
    acquisitions: int = 0
    waits: list[float] = field(default_factory=list)


def libpython() -> Path:
    """The shared libpython this interpreter runs on, where take_gil lives."""
    name = sysconfig.get_config_var("LDLIBRARY") or ""
    path = Path(sysconfig.get_config_var("LIBDIR") or "") / name
    if ".so" not in name or not path.exists():
        raise BenchError(
            f"{sys.executable} has no shared libpython ({name!r}): build with --enable-shared"
        )
    return path


def add_probes(library: Path) -> None:
    for event, spec in PROBES.items():
        run = subprocess.run(
            ["perf", "probe", "-q", "-x", str(library), "-a", f"{GROUP}:{event}={spec}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if run.returncode != 0:
            remove_probes()
            raise BenchError(f"perf probe {spec} in {library} failed: {run.stderr.strip()}")


def remove_probes() -> None:
    subprocess.run(["perf", "probe", "-q", "-d", f"{GROUP}:*"], capture_output=True, check=False)


def thread_names(pid: int) -> dict[int, str]:
    """The event loop is the main thread; the worker threads are the ones at a niceness of
    their own (WORKER_NICENESS); the rest are granian's and the log writer's."""
    names = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        tid = int(task.name)
        # comm may hold spaces and parentheses: the fields that follow it are counted from
        # its closing parenthesis.
        nice = int((task / "stat").read_text().rpartition(")")[2].split()[16])
        role = "event loop" if tid == pid else "worker thread" if nice > 0 else "other thread"
        names[tid] = f"{role} {tid}"
    return names


def parse(script: str, names: dict[int, str]) -> tuple[dict[int, ThreadGil], float]:
    """Per thread: the GIL held (taken to dropped) and each wait (take called to taken)."""
    threads: dict[int, ThreadGil] = {}
    asked: dict[int, float] = {}
    taken: dict[int, float] = {}
    first = last = 0.0
    for line in script.splitlines():
        tid_text, stamp, event = line.split()[:3]
        tid, now = int(tid_text), float(stamp.rstrip(":"))
        first, last = first or now, now
        thread = threads.setdefault(tid, ThreadGil(names.get(tid, f"thread {tid}")))
        if event.endswith(f":{EVENTS['taken']}:"):
            taken[tid] = now
            if tid in asked:
                thread.waits.append(now - asked.pop(tid))
        elif event.endswith(f":{EVENTS['take']}:"):
            asked[tid] = now
        elif event.endswith(f":{EVENTS['drop']}:") and tid in taken:
            thread.held += now - taken.pop(tid)
            thread.acquisitions += 1
    return threads, last - first


def report(threads: dict[int, ThreadGil], seconds: float, rps: float) -> None:
    held = sum(t.held for t in threads.values())
    acquisitions = sum(t.acquisitions for t in threads.values())
    print(
        f"{rps:,.0f} req/s under the probes; the GIL held {100 * held / seconds:.0f}% of "
        f"{seconds:.1f} s, {1e6 * held / seconds / rps:.0f} us and "
        f"{acquisitions / seconds / rps:.1f} acquisitions per request"
    )
    print(
        f"{'thread':<22}{'held %':>8}{'waiting %':>11}{'per s':>8}"
        f"{'wait p50 us':>13}{'p90':>7}{'p99':>7}{'long/s':>8}"
    )
    for thread in sorted(threads.values(), key=lambda t: -t.held):
        if not thread.acquisitions:
            continue
        waits = sorted(thread.waits)
        print(
            f"{thread.name[:21]:<22}{100 * thread.held / seconds:>8.1f}"
            f"{100 * sum(waits) / seconds:>11.1f}{thread.acquisitions / seconds:>8.0f}"
            f"{1e6 * quantile(waits, 0.5):>13.0f}{1e6 * quantile(waits, 0.9):>7.0f}"
            f"{1e6 * quantile(waits, 0.99):>7.0f}"
            f"{sum(1 for w in waits if w > LONG_WAIT) / seconds:>8.0f}"
        )
    if any(t.waits for t in threads.values()):
        every = [w for t in threads.values() for w in t.waits]
        print(f"(median wait of all {len(every):,}: {1e6 * statistics.median(every):.0f} us)")


def measure(args: argparse.Namespace, extra: list[str], logdir: Path) -> None:
    cpus = [int(c) for c in args.cores.split(",")]
    port = free_port()
    target = service_target("example-service", *extra)
    server = start_server(
        target, RunSpec(port, len(cpus), args.num, args.service), cpus, logdir, 20.0
    )
    try:
        url = f"http://{LOOPBACK}:{port}/abc"
        script = logdir / "report.lua"
        script.write_text(WRK_REPORT)
        load = Wrk(url, cpus, script, args.connections, 1, args.duration + 3, 10)
        load.start()
        time.sleep(1.5)  # past the first computations and the wrk ramp-up
        names = thread_names(server.pid)
        data = logdir / "gil.data"
        subprocess.run(
            ["perf", "record", "-q", "-o", str(data), "-p", str(server.pid),
             *(arg for event in EVENTS.values() for arg in ("-e", f"{GROUP}:{event}")),
             "--", "sleep", str(args.duration)],
            capture_output=True, check=True, timeout=args.duration + 30,
        )  # fmt: skip
        result = load.finish()
        script_text = subprocess.run(
            ["perf", "script", "-i", str(data), "-F", "tid,time,event"],
            capture_output=True, text=True, check=True, timeout=120,
        ).stdout  # fmt: skip
    finally:
        stop_server(server)
    threads, seconds = parse(script_text, names)
    report(threads, seconds, result.rps)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cores", default="0,1", help="CPUs for the service and wrk alike")
    p.add_argument("--connections", type=int, default=8, help="wrk connections on /abc")
    p.add_argument("--num", type=int, default=25, help="NUM, the computation's size")
    p.add_argument("--duration", type=int, default=3, help="seconds under the probes")
    p.add_argument("--service", type=Path, default=DEFAULT_SERVICE, help="example-service binary")
    p.add_argument("extra", nargs="*", help="after --: the service's own flags")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("needs root: perf places uprobes", file=sys.stderr)
        return 2
    try:
        add_probes(libpython())
        try:
            with tempfile.TemporaryDirectory(prefix="example-service-gil-") as tmp:
                measure(args, args.extra, Path(tmp))
        finally:
            remove_probes()
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        print(f"gil_waits: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
