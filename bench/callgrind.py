"""`python -m bench --profile`: where a request's time goes, in instructions counted by
valgrind's callgrind over a fixed number of requests.

Instruction counts do not move when other work takes the CPU away, so unlike a sampling
profile they compare across runs on this shared machine: a change that removes work shows
as fewer instructions per request, to the function. The service runs under callgrind with
its default settings (and once with the access log off, which isolates what the log
costs); collection is switched on for the measured requests only, in the service and in
every process it started (the Python fallback's workers), and the dumps of all of them are
summed.

Instructions are not microseconds (a cache miss costs more than an add), but shares of
instructions track shares of time closely for this interpreter-bound code; the bench's CPU
time per request is the time they are shares of.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench import BenchError
from bench.report import machine
from bench.sampling import process_tree
from bench.servers import Server, free_port, start_server, stop_server
from bench.targets import LOOPBACK, RunSpec, Target, service_target

# Under callgrind the service runs about fifty times slower: start-up takes seconds.
READY_TIMEOUT = 300.0
REQUEST_TIMEOUT = 120.0
CONNECTIONS = 4  # keep-alive connections the fixed number of requests is spread over
TOP_FUNCTIONS = 15
CONTROL_TIMEOUT = 60.0


@dataclass(frozen=True)
class Window:
    """A fixed number of requests measured as one callgrind dump."""

    label: str
    path: str
    requests: int


@dataclass(frozen=True)
class ProfileRun:
    """One service start under callgrind: its flags, NUM, warm-up and measured windows."""

    name: str
    flags: tuple[str, ...]
    num: int | None
    warmup: tuple[tuple[str, int], ...]  # (path, requests) before collection starts
    windows: tuple[Window, ...]


def profile_runs(scale: float) -> list[ProfileRun]:
    def n(count: int) -> int:
        return max(1, round(count * scale))

    return [
        ProfileRun(
            "defaults",
            (),
            None,
            # Warm: every route seen once and the histograms filled, as in a live service.
            (("/abc", n(200)), ("/metrics", 3), ("/healthz", 3)),
            (
                Window("/abc, NUM unset", "/abc", n(2000)),
                Window("/metrics", "/metrics", n(100)),
            ),
        ),
        ProfileRun(
            "access-log-off",
            ("--access-log", "off"),
            None,
            (("/abc", n(200)), ("/metrics", 3), ("/healthz", 3)),
            (Window("/abc, NUM unset, --access-log off", "/abc", n(2000)),),
        ),
        ProfileRun(
            "num25",
            # Under callgrind the Python fallback's fib(25) takes seconds: a longer deadline
            # keeps the requests from answering 503. It changes no work a request does.
            ("--request-timeout", "600"),
            25,
            # The first requests start the workers; they are not measured.
            (("/abc", 4),),
            (Window("/abc, NUM=25", "/abc", n(20)),),
        ),
    ]


@dataclass
class Profile:
    """Instructions of one window, summed over every process's dump."""

    window: Window
    run: str
    total: int = 0
    functions: Counter[tuple[str, str]] = field(default_factory=Counter)  # (function, object)

    def per_request(self, count: int) -> float:
        return count / self.window.requests

    def by_object(self) -> Counter[str]:
        objects: Counter[str] = Counter()
        for (_fn, obj), count in self.functions.items():
            objects[obj] += count
        return objects

    def as_json(self) -> dict[str, object]:
        return {
            "run": self.run,
            "path": self.window.path,
            "requests": self.window.requests,
            "instructions_per_request": self.per_request(self.total),
            "by_object": {o: self.per_request(c) for o, c in self.by_object().most_common()},
            "top_functions": [
                {"function": fn, "object": obj, "per_request": self.per_request(c)}
                for (fn, obj), c in self.functions.most_common(TOP_FUNCTIONS * 2)
            ],
        }


# A line of `callgrind_annotate --show-percs=no`: "  1,234  file:function [object]".
LINE = re.compile(r"^\s*([\d,]+)\s+(.+?)(?: \[(.+)\])?$")
RECURSION = re.compile(r"'\d+$")  # callgrind's mark for a recursion level: fib'2


EXTENSION_SUFFIX = re.compile(r"(\.cpython-[^.]+)?\.so(\.[\d.]+)?$")


def short_object(path: str) -> str:
    """/x/_granian.cpython-311-x86_64-linux-gnu.so -> _granian; libc.so.6 -> libc."""
    return EXTENSION_SUFFIX.sub("", Path(path).name)


def parse_annotate(text: str, into: Profile) -> None:
    """Adds one dump's self cost per function (recursion levels merged) to `into`."""
    rows: list[tuple[int, str, str | None]] = []
    objects: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if line.strip().endswith("file:function"):
            break
    for line in lines:
        match = LINE.match(line)
        if match is None or line.startswith("-"):
            continue
        count = int(match[1].replace(",", ""))
        _file, _, function = match[2].partition(":")
        function = RECURSION.sub("", function)
        obj = short_object(match[3]) if match[3] else None
        if obj:
            objects.setdefault(function, obj)
        rows.append((count, function, obj))
    for count, function, obj in rows:
        # A function inlined from a header is listed without its object: it is the caller's.
        into.functions[function, obj or objects.get(function, "?")] += count
        into.total += count


def callgrind_control(*args: str) -> None:
    # vgdb names its pipes after $USER and $HOST, and the service's valgrind sees the HOST
    # the bench gives the service: callgrind_control must see the same to find them.
    env = {**os.environ, "HOST": LOOPBACK}
    try:
        done = subprocess.run(
            ["callgrind_control", *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=CONTROL_TIMEOUT,
            env=env,
        )
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"callgrind_control {' '.join(args)} failed: {exc}") from exc
    # It exits 0 even when it could not reach the process; it says so on stderr.
    if "error" in done.stderr or "failed" in done.stderr:
        raise BenchError(f"callgrind_control {' '.join(args)}: {done.stderr.strip()}")


def valgrind_pids(server: Server) -> list[int]:
    """The service and every process it started, each under callgrind (trace-children)."""
    pids = []
    for process in process_tree(server.pid):
        with contextlib.suppress(psutil.Error):
            if "valgrind" in process.cmdline()[0]:
                pids.append(process.pid)
    return pids


def drive(port: int, path: str, requests: int) -> None:
    """`requests` GETs over CONNECTIONS keep-alive connections; every answer must be 200."""

    def one_connection(count: int) -> None:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=REQUEST_TIMEOUT)
        try:
            for _ in range(count):
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise BenchError(f"GET {path} answered {response.status}")
        finally:
            conn.close()

    shares = [requests // CONNECTIONS + (i < requests % CONNECTIONS) for i in range(CONNECTIONS)]
    with ThreadPoolExecutor(CONNECTIONS) as pool:
        for future in [pool.submit(one_connection, s) for s in shares if s]:
            future.result()


def wait_for_dumps(outdir: Path, pids: list[int], part: int) -> list[Path]:
    deadline = time.monotonic() + CONTROL_TIMEOUT
    paths = [outdir / f"callgrind.out.{pid}.{part}" for pid in pids]
    while not all(p.exists() and p.stat().st_size for p in paths):
        if time.monotonic() > deadline:
            missing = [p.name for p in paths if not p.exists()]
            raise BenchError(f"callgrind wrote no dump {missing}")
        time.sleep(0.2)
    return paths


def profile_run(run: ProfileRun, service: Path, outdir: Path) -> list[Profile]:
    base = service_target(f"example-service-{run.name}", *run.flags)
    target = Target(
        base.name,
        lambda spec: [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--trace-children=yes",
            f"--callgrind-out-file={outdir}/callgrind.out.%p",
            f"--log-file={outdir}/valgrind.%p.log",
            *base.command(spec),
        ],
    )
    spec = RunSpec(free_port(), 1, run.num, service)
    print(f"{run.name}: starting the service under callgrind ...", flush=True)
    server = start_server(target, spec, [0], outdir, READY_TIMEOUT)
    profiles = []
    try:
        for path, count in run.warmup:
            drive(server.port, path, count)
        pids = valgrind_pids(server)
        for part, window in enumerate(run.windows, start=1):
            for pid in pids:
                callgrind_control("--instr=on", str(pid))
            started = time.monotonic()
            drive(server.port, window.path, window.requests)
            for pid in pids:
                callgrind_control("--dump", str(pid))
                callgrind_control("--instr=off", str(pid))
            profile = Profile(window, run.name)
            for dump in wait_for_dumps(outdir, pids, part):
                annotated = subprocess.run(
                    [
                        "callgrind_annotate",
                        "--auto=no",
                        "--show-percs=no",
                        "--threshold=100",
                        str(dump),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=CONTROL_TIMEOUT,
                )
                parse_annotate(annotated.stdout, profile)
            elapsed = time.monotonic() - started
            print(
                f"  {window.label}: {window.requests} requests in {elapsed:.0f} s under "
                f"callgrind, {profile.per_request(profile.total):,.0f} instructions per request",
                flush=True,
            )
            profiles.append(profile)
    finally:
        stop_server(server)
    return profiles


def print_profile(profile: Profile) -> None:
    per_request = profile.per_request(profile.total)
    print()
    print(
        f"{profile.window.label} ({profile.run}): {per_request:,.0f} instructions per request "
        f"over {profile.window.requests} requests"
    )
    print(f"  {'by object':<58} {'instr/req':>11} {'share':>6}")
    for obj, count in profile.by_object().most_common(8):
        share = 100 * count / profile.total
        print(f"  {obj[:58]:<58} {profile.per_request(count):>11,.0f} {share:>5.1f}%")
    print(f"  {'top functions, self cost':<58} {'instr/req':>11} {'share':>6}")
    for (fn, obj), count in profile.functions.most_common(TOP_FUNCTIONS):
        name = f"{fn} ({obj})"
        share = 100 * count / profile.total
        print(f"  {name[:58]:<58} {profile.per_request(count):>11,.0f} {share:>5.1f}%")


def print_differences(profiles: list[Profile]) -> None:
    """What a feature costs: the same requests with it on and off, instruction for
    instruction."""
    by_label = {p.window.label: p for p in profiles}
    on = by_label.get("/abc, NUM unset")
    off = by_label.get("/abc, NUM unset, --access-log off")
    if on is None or off is None:
        return
    on_req, off_req = on.per_request(on.total), off.per_request(off.total)
    print()
    print(
        f"the access log: {on_req - off_req:,.0f} instructions per request "
        f"({100 * (on_req - off_req) / on_req:.0f}% of a request with it on)"
    )
    delta: defaultdict[str, float] = defaultdict(float)
    for key, count in on.functions.items():
        delta[f"{key[0]} ({key[1]})"] += on.per_request(count)
    for key, count in off.functions.items():
        delta[f"{key[0]} ({key[1]})"] -= off.per_request(count)
    for name, added in sorted(delta.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  {name[:58]:<58} {added:>+11,.0f}")


def run_profiles(service: Path, output: Path, scale: float) -> int:
    missing = [
        t for t in ("valgrind", "callgrind_control", "callgrind_annotate") if not shutil.which(t)
    ]
    if missing:
        print(f"missing {missing}: apt-get install valgrind", flush=True)
        return 2
    started = datetime.now(UTC)
    outdir = output / f"{started:%Y%m%dT%H%M%SZ}-profile"
    outdir.mkdir(parents=True, exist_ok=True)
    profiles: list[Profile] = []
    try:
        for run in profile_runs(scale):
            profiles += profile_run(run, service, outdir)
    except BenchError as exc:
        print(f"bench: {exc}", flush=True)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; servers stopped", flush=True)
        return 130
    for profile in profiles:
        print_profile(profile)
    print_differences(profiles)
    result = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "service": str(service),
        "profiles": [p.as_json() for p in profiles],
    }
    path = output / f"{started:%Y%m%dT%H%M%SZ}-profile.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults: {path} (callgrind's dumps in {outdir}, for callgrind_annotate)")
    return 0
