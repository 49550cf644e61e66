"""Logs: one JSON object per line on stdout, start-up, access lines, their switches, and the
access log under load and behind a blocked stdout."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading

import httpx
from support.ports import free_port
from support.service import EXECUTABLE, StartService, service_environment
from support.waiting import wait_for


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
    process = subprocess.Popen(
        [EXECUTABLE, "--host", "127.0.0.1", "--port", str(port), "--drain-delay", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=service_environment(),
    )
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
            for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
                if line.startswith("example_service_log_lines_dropped_total "):
                    return float(line.split()[1])
            raise AssertionError("no example_service_log_lines_dropped_total on /metrics")

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
        warning = "stdout did not take log lines in time: lines dropped"
        wait_for(lambda: any(warning.encode() in line for line in output), 10, "the warning")
        total_dropped = dropped()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    entries = [json.loads(line) for line in output]
    warnings = [e for e in entries if e["message"] == warning]
    assert [(e["level"], e["dropped"]) for e in warnings] == [("warning", total_dropped)]
    access = [e for e in entries if e["logger"] == "example_service.access"]
    # Every request has its line or is counted as dropped (the last scrape's line is written).
    assert len(access) + total_dropped == requests
