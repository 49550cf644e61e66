"""Fault injection on the real process: /abc only, counted as what it is, off by default."""

from __future__ import annotations

import time

from support.service import ServiceProcess, StartService
from support.waiting import wait_for


def test_error_ratio_one_fails_every_abc_and_counts_them(start_service: StartService) -> None:
    service = start_service("--fault-error-ratio", "1")
    for _ in range(5):
        response = service.get("/abc")
        assert response.status_code == 500
        assert response.text == "injected fault (FAULT_ERROR_RATIO is set)\n"
    assert service.get("/healthz").status_code == 200
    assert service.get("/readyz").status_code == 200
    assert service.get("/metrics").status_code == 200
    assert service.metric('http_requests_total{method="GET",route="/abc",status="500"}') == 5
    assert service.metric("request_total") == 5
    wait_for(
        lambda: any("fault injection is on" in e["message"] for e in service.logs()),
        5,
        "the warning that fault injection is on",
    )


def test_error_ratio_half_fails_some(start_service: StartService) -> None:
    service = start_service("--fault-error-ratio", "0.5", "--access-log", "off")
    statuses = [service.get("/abc").status_code for _ in range(200)]
    # Binomial(200, 0.5): outside 60..140 has a probability below 1e-8.
    assert 60 <= statuses.count(500) <= 140
    assert set(statuses) == {200, 500}


def test_fixed_latency_slows_abc_and_nothing_else(start_service: StartService) -> None:
    service = start_service("--fault-latency-ms", "300")
    started = time.monotonic()
    assert service.get("/abc").status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    service.get("/healthz")
    assert time.monotonic() - started < 0.3
    assert service.metric('request_latency_seconds_bucket{le="0.2"}') == 0
    assert service.metric('request_latency_seconds_bucket{le="0.5"}') == 1


def test_no_faults_by_default(service: ServiceProcess) -> None:
    assert all(service.get("/abc").status_code == 200 for _ in range(50))
