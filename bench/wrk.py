"""The wrk driver: one run on one URL, pinned to the load generator's cores, its figures
taken exactly from wrk's own counters and histogram."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import BenchError

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
    def answered(self) -> int:
        """Responses with a 2xx or 3xx status: a shed request's quick 503 is not work done."""
        return self.requests - self.errors["status"]

    @property
    def rps(self) -> float:
        return self.answered / self.duration_s if self.duration_s else 0.0

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
