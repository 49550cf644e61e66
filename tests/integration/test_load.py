"""`example-service load`, the real process against real replicas, signals and a Pushgateway.

Every run is bounded (a count, a duration, or a signal the test sends) and stays on
loopback. The service's own counters are the reference: what the load command says it got,
the replica must have served.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.binaries import require
from support.ports import free_port
from support.processes import running
from support.service import EXECUTABLE, ServiceProcess, StartService
from support.waiting import wait_for

from example_service.load.progress import REFRESH_SECONDS
from example_service.load.targets import TargetError, check_targets
from example_service.stack.processes import Component

JOB = "example-service-load"
OUTCOMES = {
    "success", "http_error", "timeout", "connection_error", "protocol_error", "other_error",
    "cancelled",
}  # fmt: skip
# rich takes these as "stderr is a terminal"; the tests that want the bar set them.
TERMINAL_VARIABLES = ("TTY_COMPATIBLE", "FORCE_COLOR", "TTY_INTERACTIVE")


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TERMINAL_VARIABLES}
    return env | (extra or {})


def load(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EXECUTABLE), "load", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(),
        check=False,
    )


def load_json(*args: str) -> dict[str, Any]:
    result = load(*args, "--json")
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def abc_served(service: ServiceProcess) -> tuple[float | None, float | None]:
    """The lab's request_total and the per-route count of successful /abc answers (None until
    the first one creates the series)."""
    return (
        service.metric("request_total"),
        service.metric('http_requests_total{method="GET",route="/abc",status="200"}'),
    )


def text_figures(stdout: str) -> dict[str, int]:
    """The counts of the text summary: "sent   120" and the like."""
    return {
        name: int(count)
        for name, count in re.findall(r"(?m)^(sent|succeeded|failed)\s+(\d+)$", stdout)
    }


class LoadProcess:
    """A load run in the background, for the tests that signal it mid-run."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [str(EXECUTABLE), "load", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment(env),
        )
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        assert self.process.stdout is not None and self.process.stderr is not None
        # The progress bar redraws with carriage returns, never a newline: read chunks.
        self._readers = [
            threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
            for stream, sink in ((self.process.stdout, self._out), (self.process.stderr, self._err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _drain(stream: Any, sink: list[bytes]) -> None:
        while chunk := stream.read1(65536):
            sink.append(chunk)

    @property
    def stderr(self) -> str:
        return b"".join(self._err).decode(errors="replace")

    @property
    def stdout(self) -> str:
        return b"".join(self._out).decode(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        status = self.process.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def background() -> Iterator[list[LoadProcess]]:
    started: list[LoadProcess] = []
    yield started
    for process in started:
        process.kill()


class SilentServer:
    """Accepts connections on loopback and never answers: requests can only time out."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/abc"
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed by close()
                return
            self.connections.append(connection)

    def close(self) -> None:
        self._listener.close()
        for connection in self.connections:
            connection.close()
        self._thread.join(5)


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


# -- What a run sends and what the replica served -------------------------------------


def test_count_mode_sends_exactly_the_count_and_the_replica_served_them(
    service: ServiceProcess,
) -> None:
    summary = load_json(f"{service.url}/abc", "--count", "300", "--concurrency", "4")
    assert summary["stopped_by"] == "count"
    assert summary["mode"] == "concurrency"
    assert (summary["sent"], summary["succeeded"], summary["failed"]) == (300, 300, 0)
    assert summary["outcomes"] == {outcome: 0 for outcome in OUTCOMES} | {"success": 300}
    assert summary["status_codes"] == {"200": 300}
    assert abc_served(service) == (300, 300)
    latency = summary["latency_seconds"]
    assert latency["count"] == 300
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert latency["sum"] == pytest.approx(latency["mean"] * 300)
    assert summary["requests_per_second"] == pytest.approx(300 / summary["duration_seconds"])


def test_text_summary_without_a_terminal_and_no_progress_bar(service: ServiceProcess) -> None:
    result = load(f"{service.url}/abc", "--count", "120")
    assert result.returncode == 0
    # Not a terminal: no bar, not even a final frozen copy of it in a log.
    assert result.stderr == ""
    assert text_figures(result.stdout) == {"sent": 120, "succeeded": 120, "failed": 0}
    assert re.search(r"(?m)^run\s+concurrency 4, [\d.]+ s, stopped by count$", result.stdout)
    assert re.search(r"(?m)^req/s\s+[\d.]+$", result.stdout)
    assert re.search(r"(?m)^latency\s+p50 \S+ m?s\s+p90 \S+ m?s\s+p99 \S+ m?s", result.stdout)
    assert abc_served(service) == (120, 120)


def test_duration_mode_stops_sending_on_time_and_waits_for_answers(
    service: ServiceProcess,
) -> None:
    started = time.monotonic()
    summary = load_json(f"{service.url}/abc", "--duration", "1.5s", "--concurrency", "3")
    assert summary["stopped_by"] == "duration"
    assert summary["limits"] == {"count": None, "duration_seconds": 1.5}
    # Sending stops at 1.5 s; the answers in flight then take milliseconds, not seconds.
    assert 1.5 <= summary["duration_seconds"] < 3.0
    assert time.monotonic() - started < 15
    assert summary["sent"] > 10
    assert summary["succeeded"] == summary["sent"]
    assert abc_served(service) == (summary["succeeded"], summary["succeeded"])


def test_rate_mode_holds_the_rate_and_never_runs_ahead_of_it(service: ServiceProcess) -> None:
    summary = load_json(f"{service.url}/abc", "--rate", "50", "--duration", "2s")
    assert summary["mode"] == "rate"
    assert summary["rate"] == 50
    assert summary["stopped_by"] == "duration"
    # Every request due in the 2 s is sent: one the tool woke late for starts at once
    # (its delay counted in its latency), and none starts early.
    assert summary["generator"]["schedule"]["due"] == summary["sent"] == 100
    assert summary["generator"]["schedule"]["waited_for_slot"] == 0
    assert 35 <= summary["requests_per_second"] <= 55
    assert abc_served(service) == (summary["succeeded"], summary["succeeded"])
    assert summary["succeeded"] == summary["sent"]

    # With a count, request i starts at i/rate s: 60 at 100/s need at least 0.59 s.
    paced = load_json(f"{service.url}/abc", "--rate", "100", "--count", "60")
    assert paced["stopped_by"] == "count"
    assert paced["sent"] == paced["generator"]["schedule"]["due"] == 60
    assert 0.59 <= paced["duration_seconds"] < 5
    # The closed loop has no schedule.
    assert load_json(f"{service.url}/abc", "--count", "5")["generator"]["schedule"] is None


def test_targets_take_turns_and_each_replica_served_its_share(
    start_service: StartService,
) -> None:
    replicas = [start_service("--access-log", "off") for _ in range(2)]
    urls = [f"{replica.url}/abc" for replica in replicas]
    summary = load_json(*urls, "--count", "101", "--concurrency", "5")
    assert summary["targets"] == urls
    shares = [summary["per_target"][url] for url in urls]
    assert shares == [{"sent": 51, "succeeded": 51}, {"sent": 50, "succeeded": 50}]
    assert [abc_served(replica) for replica in replicas] == [(51, 51), (50, 50)]


def test_failures_are_counted_by_kind(service: ServiceProcess, silent: SilentServer) -> None:
    closed = f"http://127.0.0.1:{free_port()}/abc"
    targets = [f"{service.url}/abc", f"{service.url}/nowhere", closed, silent.url]
    result = load(*targets, "--count", "8", "--concurrency", "4", "--timeout", "300ms", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["outcomes"] == {outcome: 0 for outcome in OUTCOMES} | {
        "success": 2,
        "http_error": 2,
        "connection_error": 2,
        "timeout": 2,
    }
    assert summary["status_codes"] == {"200": 2, "404": 2}
    assert (summary["sent"], summary["succeeded"], summary["failed"]) == (8, 2, 6)
    # Latency is of HTTP answers only: a timeout has no latency, just a limit.
    assert summary["latency_seconds"]["count"] == 4
    assert abc_served(service) == (2, 2)

    text = load(*targets, "--count", "8", "--concurrency", "4", "--timeout", "300ms").stdout
    assert text_figures(text) == {"sent": 8, "succeeded": 2, "failed": 6}
    assert re.search(r"(?m)^  HTTP 4xx\s+2   \(404: 2\)$", text)
    assert re.search(r"(?m)^  timeout\s+2$", text)
    assert re.search(r"(?m)^  connection error\s+2$", text)
    for url in targets:
        assert re.search(rf"(?m)^target\s+{re.escape(url)}: sent 2, succeeded [02]$", text)


def test_localhost_is_resolved_and_allowed(service: ServiceProcess) -> None:
    summary = load_json(f"http://localhost:{service.port}/abc", "--count", "5")
    assert summary["succeeded"] == 5
    assert abc_served(service) == (5, 5)


# -- Refusals: before anything is sent ---------------------------------------------------


@pytest.mark.parametrize(
    "remote",
    [
        "http://10.0.0.1/abc",
        "http://192.0.2.1:5565/abc",
        "https://[2001:db8::1]/abc",
        "http://[::ffff:10.0.0.1]/abc",
        "http://0.0.0.0:5565/abc",
    ],
)
def test_refuses_a_target_outside_loopback_without_sending_anything(
    service: ServiceProcess, remote: str
) -> None:
    # A loopback target first: had the check come after sending began, it would have served.
    started = time.monotonic()
    result = load(f"{service.url}/abc", remote, "--count", "20")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"example-service load: refusing {remote}: ")
    assert "--allow-remote" in result.stderr
    assert result.stderr.count("\n") == 1
    # No connection attempt: one to 10.0.0.1 would hang for its timeout, not return at once.
    assert time.monotonic() - started < 10
    assert abc_served(service) == (0, None)


def test_a_hostname_must_resolve_to_loopback_only() -> None:
    def resolver(addresses: list[str]) -> Any:
        return lambda host, port: addresses

    assert check_targets(["http://lab:80/abc"], resolver=resolver(["127.0.0.2", "::1"]))
    with pytest.raises(TargetError, match=r"refusing http://lab/abc: lab is not loopback "):
        check_targets(["http://lab/abc"], resolver=resolver(["127.0.0.1", "203.0.113.7"]))
    with pytest.raises(TargetError, match=r"resolves to 203\.0\.113\.7"):
        check_targets(["http://lab/abc"], resolver=resolver(["203.0.113.7"]))
    # --allow-remote skips the check, resolution included.
    [target] = check_targets(["http://10.0.0.1/abc"], allow_remote=True, resolver=resolver([]))
    assert (target.host, target.port) == ("10.0.0.1", 80)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no limit: give --count N and/or --duration TIME"),
        (("--rate", "10"), "no limit: give --count N and/or --duration TIME"),
        (("--count", "0"), "--count must be at least 1, not 0"),
        (("--count", "5", "--rate", "0"), "--rate must be more than zero, not 0.0"),
        (("--count", "5", "--concurrency", "0"), "--concurrency must be from 1 to 1000, not 0"),
        (("--count", "5", "--rate", "5", "--max-in-flight", "5000"), "--max-in-flight must be"),
        (("ftp://127.0.0.1/abc", "--count", "5"), "invalid target 'ftp://127.0.0.1/abc'"),
    ],
)
def test_refuses_to_start_unbounded_or_ill_paced(
    service: ServiceProcess, args: tuple[str, ...], message: str
) -> None:
    urls = () if any("://" in arg for arg in args) else (f"{service.url}/abc",)
    result = load(*urls, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"example-service load: {message}")
    assert abc_served(service) == (0, None)


@pytest.mark.parametrize("duration", ["0", "0s", "-1", "soon", "1d"])
def test_refuses_a_bad_duration(duration: str) -> None:
    result = load("--duration", duration)
    assert result.returncode == 2
    assert "invalid duration" in result.stderr


# -- Signals: the summary comes anyway ---------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_cleanly_and_still_prints_the_summary(
    service: ServiceProcess, background: list[LoadProcess], signum: int
) -> None:
    run = LoadProcess(f"{service.url}/abc", "--duration", "60s", "--concurrency", "4")
    background.append(run)
    wait_for(lambda: (service.metric("request_total") or 0) >= 100, 20, "the load to be under way")
    run.signal(signum)
    assert run.wait(15) == 0
    assert "Traceback" not in run.stderr
    figures = text_figures(run.stdout)
    assert re.search(r"(?m)^run\s+concurrency 4, [\d.]+ s, stopped by interrupt$", run.stdout)
    # The requests in flight at the signal were answered and counted, on both sides.
    assert figures["failed"] == 0
    assert figures["sent"] == figures["succeeded"] >= 100
    assert abc_served(service) == (figures["succeeded"], figures["succeeded"])


def test_a_second_ctrl_c_abandons_the_requests_in_flight(
    silent: SilentServer, background: list[LoadProcess]
) -> None:
    # The bar, forced on, shows when the first Ctrl-C has been taken.
    run = LoadProcess(
        silent.url, "--count", "10", "--concurrency", "3", "--timeout", "60s", "--json",
        env={"TTY_COMPATIBLE": "1", "COLUMNS": "200"},
    )  # fmt: skip
    background.append(run)
    wait_for(lambda: len(silent.connections) == 3, 20, "3 requests in flight")
    wait_for(lambda: "in flight 3" in run.stderr, 20, "the progress bar to show them")
    run.signal(signal.SIGINT)
    wait_for(lambda: "stopping: waiting for the answers in flight" in run.stderr, 20, "drain")
    run.signal(signal.SIGINT)
    # Well before the 60 s timeout: the second Ctrl-C did not wait for the answers.
    assert run.wait(15) == 0
    summary = json.loads(run.stdout)
    assert summary["stopped_by"] == "interrupt"
    assert summary["sent"] == 3
    assert summary["outcomes"]["cancelled"] == 3
    assert summary["failed"] == 3
    assert summary["latency_seconds"] == {
        "count": 0, "sum": 0.0, "mean": None, "max": None, "p50": None, "p90": None,
        "p99": None,
    }  # fmt: skip
    assert "stopped by interrupt" in run.stderr


def test_progress_bar_shows_rate_errors_and_latency(
    service: ServiceProcess, background: list[LoadProcess]
) -> None:
    run = LoadProcess(
        f"{service.url}/abc", f"{service.url}/nowhere", "--rate", "40", "--duration", "1.5s",
        env={"TTY_COMPATIBLE": "1", "COLUMNS": "200"},
    )  # fmt: skip
    background.append(run)
    assert run.wait(20) == 0
    frames = [frame for frame in re.split(r"[\r\n]", run.stderr) if "req/s" in frame]
    assert len(frames) >= 3  # redrawn while running, not only drawn at the end
    final = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", frames[-1])
    assert re.search(r"100% (\d+) sent\s+[\d.]+ req/s\s+errors (\d+)", final), final
    assert re.search(r"p50 [\d.]+ ms\s+p99 [\d.]+ ms\s+in flight 0\s+stopped by duration", final)
    figures = text_figures(run.stdout)
    assert f"{figures['sent']} sent" in final
    assert f"errors {figures['failed']} " in final


def test_progress_bar_redraws_on_a_timer_and_costs_a_few_percent(
    service: ServiceProcess, background: list[LoadProcess]
) -> None:
    run = LoadProcess(
        f"{service.url}/abc", "--concurrency", "16", "--duration", "3s", "--json",
        env={"TTY_COMPATIBLE": "1", "COLUMNS": "200"},
    )  # fmt: skip
    background.append(run)
    assert run.wait(30) == 0
    summary = json.loads(run.stdout)
    frames = [frame for frame in re.split(r"[\r\n]", run.stderr) if "req/s" in frame]
    # Redrawn on its timer (and once at the end), however many requests were answered.
    assert 3 <= len(frames) <= 3 / REFRESH_SECONDS + 3
    assert summary["sent"] >= 50 * len(frames)
    generator = summary["generator"]
    assert 0 < generator["progress_cpu_seconds"] <= 0.05 * generator["cpu_seconds"], generator


# -- The Pushgateway ---------------------------------------------------------------------


Series = tuple[str, frozenset[tuple[str, str]]]


class Pushgateway:
    def __init__(self, log: Path) -> None:
        binary = require("prometheus-pushgateway", "prometheus-pushgateway")
        address = f"127.0.0.1:{free_port()}"
        # In memory (no persistence file): nothing to clean up.
        command = [binary, f"--web.listen-address={address}", "--persistence.file="]
        self.server = Component("pushgateway", command, f"http://{address}", "/-/ready", log)
        self.url = self.server.url

    def samples(self, job: str = JOB) -> dict[Series, float]:
        """Every sample the gateway exposes for a job: (name, labels) -> value."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.labels.get("job") == job
        }


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[Pushgateway]:
    gateway = Pushgateway(tmp_path / "pushgateway.log")
    with running(gateway.server):
        yield gateway


def series(name: str, instance: str, **labels: str) -> Series:
    """A pushed series of the load job's group, as Pushgateway.samples() keys it."""
    group = {"job": JOB, "instance": instance}
    return f"example_service_load_{name}", frozenset((group | labels).items())


def expected_samples(summary: dict[str, Any], instance: str) -> dict[Series, float]:
    def key(name: str, **labels: str) -> Series:
        return series(name, instance, **labels)

    latency = summary["latency_seconds"]
    expected = {
        key("requests_total", outcome=outcome): count
        for outcome, count in summary["outcomes"].items()
    }
    expected |= {
        key("responses_total", code=code): count for code, count in summary["status_codes"].items()
    }
    expected |= {
        key("latency_seconds", quantile=q): latency[f"p{float(q) * 100:g}"]
        for q in ("0.5", "0.9", "0.99")
    }
    expected |= {
        key("latency_seconds_sum"): latency["sum"],
        key("latency_seconds_count"): latency["count"],
        key("duration_seconds"): summary["duration_seconds"],
        key("requests_per_second"): summary["requests_per_second"],
        key("last_run_timestamp_seconds"): summary["finished_at"],
        key("interrupted"): 0,
    }
    return expected


def test_push_replaces_the_group_with_the_last_run(
    service: ServiceProcess, pushgateway: Pushgateway
) -> None:
    instance = socket.gethostname()
    first = load_json(
        f"{service.url}/abc", f"{service.url}/nowhere", "--count", "40",
        "--pushgateway", pushgateway.url,
    )  # fmt: skip
    assert first["pushgateway"] == {"url": pushgateway.url, "job": JOB, "instance": instance}
    pushed = pushgateway.samples()
    expected = expected_samples(first, instance)
    assert {k: v for k, v in pushed.items() if k in expected} == pytest.approx(expected)
    assert pushed[series("responses_total", instance, code="404")] == 20

    # A series the group holds from elsewhere (an older version, say): PUT must drop it,
    # where POST would keep it and replace only the families it sends.
    leftover = httpx.post(
        f"{pushgateway.url}/metrics/job/{JOB}/instance/{instance}",
        content="example_service_load_leftover 1\n",
        timeout=10,
    )
    assert leftover.status_code == 200
    assert pushgateway.samples()[series("leftover", instance)] == 1

    second = load_json(
        f"{service.url}/abc", "--rate", "100", "--count", "25", "--pushgateway", pushgateway.url
    )
    pushed = pushgateway.samples()
    expected = expected_samples(second, instance)
    # Exactly the second run's series: the first run's 404s are gone, nothing was added up.
    ours = {k: v for k, v in pushed.items() if k[0].startswith("example_service_load_")}
    assert ours == pytest.approx(expected)
    assert ours[series("requests_total", instance, outcome="success")] == 25
    # One group, stamped by the gateway when the second run pushed.
    push_times = [v for (name, _), v in pushed.items() if name == "push_time_seconds"]
    assert len(push_times) == 1
    assert push_times[0] >= second["finished_at"] - 1


def test_push_instance_names_another_group_and_types_are_kept(
    service: ServiceProcess, pushgateway: Pushgateway
) -> None:
    for instance in ("laptop-a", "laptop-b"):
        load_json(
            f"{service.url}/abc", "--count", "5", "--pushgateway", pushgateway.url,
            "--push-instance", instance,
        )  # fmt: skip
    instances = {
        dict(labels)["instance"]
        for name, labels in pushgateway.samples()
        if name == "example_service_load_interrupted"
    }
    assert instances == {"laptop-a", "laptop-b"}
    api = httpx.get(f"{pushgateway.url}/api/v1/metrics", timeout=10).json()
    groups = {group["labels"]["instance"]: group for group in api["data"]}
    types = {
        name: family["type"]
        for name, family in groups["laptop-a"].items()
        if name.startswith("example_service_load_")
    }
    assert types == {
        "example_service_load_requests_total": "COUNTER",
        "example_service_load_responses_total": "COUNTER",
        "example_service_load_latency_seconds": "SUMMARY",
        "example_service_load_duration_seconds": "GAUGE",
        "example_service_load_requests_per_second": "GAUGE",
        "example_service_load_last_run_timestamp_seconds": "GAUGE",
        "example_service_load_interrupted": "GAUGE",
    }


def test_a_failed_push_still_prints_the_summary_and_exits_1(service: ServiceProcess) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = load(f"{service.url}/abc", "--count", "10", "--pushgateway", nowhere)
    assert result.returncode == 1
    assert text_figures(result.stdout) == {"sent": 10, "succeeded": 10, "failed": 0}
    assert result.stderr.startswith(f"example-service load: push to {nowhere} failed: ")


# -- The server does not pay for the load generator --------------------------------------


def test_the_server_never_imports_the_load_generators_libraries() -> None:
    probe = (
        "import sys, example_service.cli, example_service.server.embed\n"
        "import example_service.server.app\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'httpx', 'rich', 'httptools'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout == "[]\n"
