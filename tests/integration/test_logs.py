"""Logs: one JSON object per line on stdout, start-up, access lines, their switches, and the
access log under load and behind a blocked stdout."""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import socket
import subprocess
import threading
import time

import httpx
from support.ports import free_port
from support.service import EXECUTABLE, StartService, service_environment
from support.waiting import wait_for

F_SETPIPE_SZ = 1031  # from <linux/fcntl.h>
DROPPED = "example_service_log_lines_dropped_total"
DROP_WARNING = "stdout did not take log lines in time: lines dropped"


def test_every_line_is_json_with_start_up_and_access_entries(start_service: StartService) -> None:
    service = start_service("--num", "11")
    service.get("/abc")
    service.get("/nowhere")
    wait_for(lambda: "<unmatched>" in "".join(service.lines()), 5, "the 404's log line")
    entries = service.logs()
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    start = entries[0]
    assert start["message"] == "started"
    assert start["version"] == "1.0.0"
    assert start["address"] == f"http://127.0.0.1:{service.port}"
    assert start["settings"]["num"] == "11"
    access = [
        e for e in entries if e["logger"] == "example_service.access" and e["route"] != "/readyz"
    ]
    assert [(e["method"], e["route"], e["status"]) for e in access] == [
        ("GET", "/abc", 200),
        ("GET", "<unmatched>", 404),
    ]
    assert access[0]["duration_ms"] >= 0
    assert access[0]["client"].startswith("127.0.0.1:")


def test_access_log_off_and_shutdown_steps_logged(start_service: StartService) -> None:
    service = start_service("--access-log", "off", "--drain-delay", "0")
    service.get("/abc")
    service.signal(signal.SIGTERM)
    assert service.process.wait(10) == 0
    entries = service.logs()
    assert not [e for e in entries if e["logger"] == "example_service.access"]
    assert [e["step"] for e in entries if "step" in e] == ["drain", "close", "in-flight", "exit"]


def test_log_level_warning_hides_info(start_service: StartService) -> None:
    service = start_service("--log-level", "warning")
    service.get("/abc")
    service.signal(signal.SIGTERM)
    service.process.wait(15)
    assert service.logs() == []


def pipelined(port: int, path: str, count: int, timeout: float = 10) -> int:
    """Send count requests on one connection without waiting; the responses that arrived."""
    request = f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()
    received = bytearray()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
            connection.sendall(request * count)
            while received.count(b"HTTP/1.1 ") < count:
                chunk = connection.recv(1 << 16)
                if not chunk:
                    break
                received += chunk
    except ConnectionError:
        pass
    return received.count(b"HTTP/1.1 200 ")


def test_every_answered_request_has_its_line_after_a_drain_under_load(
    start_service: StartService,
) -> None:
    service = start_service("--drain-delay", "0.5")
    answered: list[int] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                answered.append(pipelined(service.port, "/abc", 50))
            except OSError:  # the listener has closed
                return

    clients = [threading.Thread(target=load) for _ in range(4)]
    for client in clients:
        client.start()
    wait_for(lambda: sum(answered) > 2000, 30, "2,000 answered requests")
    service.signal(signal.SIGTERM)
    assert service.process.wait(15) == 0
    stop.set()
    for client in clients:
        client.join(15)
    entries = service.logs()
    lines = [e for e in entries if e["logger"] == "example_service.access" and e["route"] == "/abc"]
    assert len(lines) >= sum(answered) > 2000
    assert entries[-1]["message"] == "shutdown: complete"


def test_a_blocked_stdout_drops_lines_and_never_stalls_a_request() -> None:
    """The test's own pipe, unread for a while: a log collector that stopped reading."""
    port = free_port()
    process = spawn(port, subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        requests = 0

        def ready() -> bool:
            nonlocal requests
            status = httpx.get(f"{url}/readyz", timeout=1).status_code
            requests += 1  # answered, so logged
            return status == 200

        wait_for(ready, 10, "the service to be ready")

        def dropped() -> float:
            nonlocal requests
            requests += 1
            return dropped_on(httpx.get(f"{url}/metrics", timeout=5).text)

        # 64 kB of pipe, then 2 MiB of lines in memory (about 10,000), then drops.
        for _ in range(10):
            assert pipelined(port, "/healthz", 5000) == 5000
            requests += 5000
            if dropped():
                break
        else:
            raise AssertionError(f"{requests} lines held in memory, none dropped")
        before = dropped()
        # While stdout is blocked every request is still answered at once (the socket's
        # timeout fails the test otherwise), and every line is dropped: none waits in memory.
        assert pipelined(port, "/healthz", 2000, timeout=5) == 2000
        requests += 2000
        assert dropped() - before == 2000 + 1  # and the line of the scrape that read `before`

        # The collector reads again: the lines kept arrive whole, with one warning for all.
        assert process.stdout is not None
        output: list[bytes] = []
        reader = threading.Thread(target=lambda: output.extend(process.stdout or ()))
        reader.start()
        wait_for(lambda: any(DROP_WARNING.encode() in line for line in output), 10, "the warning")
        total_dropped = dropped()
        stop(process)
        reader.join(10)
    finally:
        kill_if_running(process)
    entries = [json.loads(line) for line in output]
    warnings = [e for e in entries if e["message"] == DROP_WARNING]
    assert [(e["level"], e["dropped"]) for e in warnings] == [("warning", total_dropped)]
    access = [e for e in entries if e["logger"] == "example_service.access"]
    # Every request has its line or is counted as dropped (the last scrape's line is written).
    assert len(access) + total_dropped == requests


def spawn(port: int, stdout: int) -> subprocess.Popen[bytes]:
    """The service with its stdout handed over: the test is its log collector."""
    return subprocess.Popen(
        [EXECUTABLE, "--host", "127.0.0.1", "--port", str(port), "--drain-delay", "0"],
        stdout=stdout,
        stderr=subprocess.DEVNULL,
        env=service_environment(),
    )


def dropped_on(page: str) -> float:
    """The count of dropped log lines on a /metrics page."""
    for line in page.splitlines():
        if line.startswith(f"{DROPPED} "):
            return float(line.split()[1])
    raise AssertionError(f"no {DROPPED} on /metrics")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM: the service writes what it kept and exits 0."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0


def kill_if_running(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


def whole(line: bytes) -> bool:
    try:
        entry = json.loads(line)
    except ValueError:
        return False
    return isinstance(entry, dict) and {"time", "level", "logger", "message"} <= set(entry)


class SlowReader:
    """A log collector's end of a pipe: reads a little at a time until told to catch up."""

    def __init__(self, fd: int, chunk: int = 1024, pause: float = 0.01) -> None:
        self.data = bytearray()
        self.catch_up = threading.Event()
        self._fd, self._chunk, self._pause = fd, chunk, pause
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while True:
            if not select.select([self._fd], [], [], 1)[0]:
                continue
            chunk = os.read(self._fd, 1 << 20 if self.catch_up.is_set() else self._chunk)
            if not chunk:  # every writer has closed: the service has exited
                return
            self.data += chunk
            if not self.catch_up.is_set():
                time.sleep(self._pause)  # the collector's pace, not a wait for anything

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stdout was never closed"


def test_a_non_blocking_stdout_gets_whole_lines_and_an_exact_count_of_drops() -> None:
    """stdout an O_NONBLOCK pipe of one page, drained slowly (some collectors hand one over):
    writes are partial and meet EAGAIN; every line still arrives whole or is counted."""
    port = free_port()
    read, write = os.pipe()
    fcntl.fcntl(write, F_SETPIPE_SZ, 4096)
    os.set_blocking(write, False)
    try:
        process = spawn(port, write)
    finally:
        os.close(write)
    reader = SlowReader(read)
    url = f"http://127.0.0.1:{port}"
    requests = 0

    def get(path: str) -> httpx.Response:
        nonlocal requests
        response = httpx.get(f"{url}{path}", timeout=5)
        requests += 1  # answered, so logged or counted
        return response

    def dropped() -> float:
        return dropped_on(get("/metrics").text)

    try:
        wait_for(lambda: get("/readyz").status_code == 200, 10, "the service to be ready")
        # A first scrape logs its warnings (a reading unavailable here, once) before the load:
        # every line dropped below is then an access line.
        assert dropped() == 0
        # Far more than the reader takes meanwhile and than the 2 MiB kept in memory.
        for _ in range(8):
            assert pipelined(port, "/healthz", 2500) == 2500
            requests += 2500
        assert dropped() > 0, "nothing dropped: the test no longer reaches the bound"
        reader.catch_up.set()
        # Caught up once a request's line arrives: nothing is dropped after that, so the
        # count read then is the last.
        wait_for(
            lambda: get("/info").status_code == 200 and b'"route": "/info"' in reader.data,
            10,
            "a line written after the load to arrive",
        )
        total_dropped = dropped()
        stop(process)
        reader.join(10)
    finally:
        kill_if_running(process)
        reader.catch_up.set()
        reader.join(10)
        os.close(read)
    lines = bytes(reader.data).split(b"\n")
    assert lines.pop() == b"", "the last line is not whole"
    # A torn line is not JSON, or is two lines' halves glued together.
    torn = [line for line in lines if not whole(line)]
    assert not torn, f"{len(torn)} torn lines of {len(lines)}, the first {torn[0]!r}"
    entries = [json.loads(line) for line in lines]
    access = [e for e in entries if e["logger"] == "example_service.access"]
    assert len(access) + total_dropped == requests
    # Every episode of drops is reported, the warning itself never dropped.
    warnings = [e["dropped"] for e in entries if e["message"] == DROP_WARNING]
    assert sum(warnings) == total_dropped
