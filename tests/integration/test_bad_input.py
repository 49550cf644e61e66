"""Bad input from the network, sent over raw sockets: the right 4xx or a closed connection,
never a 500 or a crash, and request_total counts exactly the /abc requests that were served."""

from __future__ import annotations

import socket
import time

import pytest
from support.service import ServiceProcess, StartService
from support.waiting import wait_for


def exchange(service: ServiceProcess, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes and read until the server closes or the response is complete."""
    with socket.create_connection(("127.0.0.1", service.port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = [
                int(line.split(b":")[1])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            ]
            if length and len(body) >= length[0]:
                break
        return received


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.fixture
def served(start_service: StartService) -> ServiceProcess:
    return start_service("--header-timeout", "1", "--access-log", "off")


CASES = {
    "garbage request line": (b"GARBAGE\r\n\r\n", 400),
    "missing HTTP version": (b"GET /abc\r\n\r\n", 400),
    "unknown HTTP version": (b"GET /abc HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    "header without colon": (b"GET /abc HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
    "space before colon": (b"GET /abc HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    "oversized header": (
        b"GET /abc HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431
    ),
    "very long path": (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 431),
    "non-UTF-8 path": (b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    "non-UTF-8 query": (b"GET /abc?\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    "unsupported method": (b"BREW /abc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
    "method on unknown path": (b"DELETE /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    "long path under the limit": (
        b"GET /" + b"b" * 8000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        404,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_each_bad_request_gets_its_4xx(served: ServiceProcess, case: str) -> None:
    data, expected = CASES[case]
    response = exchange(served, data)
    assert status_of(response) == expected, response[:200]
    assert b"Traceback" not in response
    assert served.get("/healthz").status_code == 200


def test_half_a_request_then_stall_is_disconnected(served: ServiceProcess) -> None:
    started = time.monotonic()
    response = exchange(served, b"GET /abc HTTP/1.1\r\nHost: x\r\n", timeout=10)
    # The head never completes: after the header timeout the server answers 408 or just
    # closes; either way the connection is gone well before the client's own timeout.
    assert response == b"" or status_of(response) == 408
    assert time.monotonic() - started < 5
    assert served.get("/healthz").status_code == 200


def test_non_utf8_header_value_is_served(served: ServiceProcess) -> None:
    response = exchange(
        served, b"GET /abc HTTP/1.1\r\nHost: x\r\nX-Name: \xff\xfe\r\nConnection: close\r\n\r\n"
    )
    assert status_of(response) == 200


def test_request_total_counts_exactly_the_served_abc_requests(
    start_service: StartService,
) -> None:
    service = start_service("--num", "38", "--header-timeout", "1", "--access-log", "off")
    served = 0
    for data, _ in CASES.values():
        exchange(service, data)
    exchange(service, b"GET /abc HTTP/1.1\r\nHost: x\r\n", timeout=10)
    for _ in range(3):
        assert service.get("/abc").status_code == 200
        served += 1

    # A client that disconnects while its request is being computed: the service still
    # finishes and counts it (it was served; the client left), and stays healthy.
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.sendall(b"GET /abc HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(
            lambda: service.in_flight() >= 2,
            5,
            "the request to be in flight",
            interval=0.005,
        )
    served += 1
    wait_for(
        lambda: service.in_flight() == 1,
        10,
        "the abandoned request to finish",
    )
    assert service.metric("request_total") == served
    assert not [
        line
        for line in service.get("/metrics").text.splitlines()
        if line.startswith("http_requests_total") and 'status="5' in line
    ]
    assert service.process.poll() is None
