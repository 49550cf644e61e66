"""Logs: one JSON object per line on stdout, start-up, access lines, and their switches."""

from __future__ import annotations

import signal

from support.service import StartService
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
