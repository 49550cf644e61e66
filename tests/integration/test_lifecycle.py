"""Readiness, the drain and the graceful shutdown, on the real process and real signals."""

from __future__ import annotations

import signal
import threading
import time

import httpx
from support.service import StartService
from support.waiting import wait_for


def test_sigterm_drains_serves_in_flight_and_exits_0(start_service: StartService) -> None:
    drain, timeout = 1.0, 5.0
    # A queueing budget as long as the deadline, for all 12 to be admitted, and one
    # computation timed first (until then only 4 may wait per worker): shedding is
    # tested in test_admission.py and test_floods.py.
    service = start_service(
        "--num", "40", "--workers", "2", "--max-queue-delay", "10",
        "--drain-delay", str(drain), "--shutdown-timeout", str(timeout),
    )  # fmt: skip
    assert service.get("/abc", timeout=30).status_code == 200
    # Requests still computing when the signal comes: each fib(40) takes about 0.35 s here,
    # and 12 of them on 2 workers outlast the drain delay. All 12 are in flight at once only
    # until the first answer, so they share one client: a client each (httpx.get) builds a TLS
    # context each, and on a busy machine the twelfth was sent after the first answer.
    statuses: list[int | str] = []
    http = httpx.Client(timeout=30, limits=httpx.Limits(max_connections=12))

    def call() -> None:
        try:
            statuses.append(http.get(f"{service.url}/abc").status_code)
        except httpx.HTTPError as error:
            statuses.append(repr(error))

    clients = [threading.Thread(target=call) for _ in range(12)]
    for client in clients:
        client.start()
    wait_for(
        lambda: service.in_flight() >= 13,
        10,
        "the 12 requests to be in flight",
    )
    signalled = time.monotonic()
    service.signal(signal.SIGTERM)
    wait_for(
        lambda: service.get("/readyz", timeout=1).status_code == 503,
        0.1,
        "/readyz to answer 503 within 100 ms of SIGTERM",
        interval=0.005,
    )
    readiness = service.get("/readyz")
    assert readiness.text == "not ready: draining\n"
    # Still serving during the drain delay, so late requests from load balancers succeed.
    assert service.get("/healthz").status_code == 200
    for client in clients:
        client.join(30)
    http.close()
    assert statuses == [200] * 12
    status = service.process.wait(drain + timeout + 2)
    assert status == 0
    assert time.monotonic() - signalled < drain + timeout
    logs = service.logs()
    served = [e for e in logs if e["message"] == "request" and e["route"] == "/abc"]
    assert [e["status"] for e in served] == [200] * (1 + 12)  # the first timed one too
    steps = [e["step"] for e in logs if "step" in e]
    assert steps == ["drain", "close", "in-flight", "exit"]


def test_in_flight_requests_finish_after_the_listener_closes(start_service: StartService) -> None:
    # fib(40) takes about 0.35 s compiled, so the three stay in flight together for that long,
    # sent through one client (see the test above): at 38 (0.15 s), each with its own, a busy
    # machine could start them too far apart for a scrape to see them.
    # Admitted all three, as in the test above.
    service = start_service(
        "--num", "40", "--workers", "1", "--max-queue-delay", "10",
        "--drain-delay", "0", "--shutdown-timeout", "10",
    )  # fmt: skip
    assert service.get("/abc", timeout=30).status_code == 200
    statuses: list[int] = []
    http = httpx.Client(timeout=30)
    clients = [
        threading.Thread(target=lambda: statuses.append(http.get(f"{service.url}/abc").status_code))
        for _ in range(3)
    ]
    for client in clients:
        client.start()
    wait_for(
        lambda: service.in_flight() >= 4,
        10,
        "3 requests in flight",
    )
    service.signal(signal.SIGTERM)
    wait_for(
        lambda: any(e.get("step") == "close" for e in service.logs()), 5, "the listener to close"
    )
    for client in clients:
        client.join(30)
    http.close()
    assert statuses == [200] * 3
    assert service.process.wait(15) == 0


def test_shutdown_timeout_abandons_what_is_left_and_stops_the_workers(
    start_service: StartService,
) -> None:
    service = start_service(
        "--num", "45", "--num-max", "45", "--request-timeout", "60",
        "--drain-delay", "0", "--shutdown-timeout", "0.5",
    )  # fmt: skip
    client = threading.Thread(
        target=lambda: httpx.get(f"{service.url}/abc", timeout=30), daemon=True
    )
    client.start()
    wait_for(lambda: service.in_flight() >= 2, 10, "in flight")
    started = time.monotonic()
    service.signal(signal.SIGTERM)
    assert service.process.wait(10) == 0
    assert time.monotonic() - started < 3
    abandoned = [e for e in service.logs() if e.get("step") == "in-flight"]
    assert abandoned[0]["abandoned"] == 1


def test_second_signal_exits_at_once(start_service: StartService) -> None:
    service = start_service("--drain-delay", "30")
    service.signal(signal.SIGTERM)
    wait_for(lambda: service.get("/readyz").status_code == 503, 5, "draining")
    started = time.monotonic()
    service.signal(signal.SIGINT)
    assert service.process.wait(5) == 128 + signal.SIGINT
    assert time.monotonic() - started < 2


def test_ready_from_the_first_answer(start_service: StartService) -> None:
    """No "starting" phase: the port refuses connections until granian serves, and granian runs
    the start-up hook before its workers accept one, so the very first answer says ready."""
    service = start_service("--access-log", "off", ready=False)
    first = wait_for(
        lambda: service.get("/readyz", timeout=1), 10, "a first answer", interval=0.001
    )
    assert (first.status_code, first.text) == (200, "ready\n")
