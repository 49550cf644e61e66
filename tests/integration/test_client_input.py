"""Nothing the service keeps is keyed by what a client sends: thousands of distinct Accept
headers on /metrics, paths, methods, query strings and header names leave the resident
memory and the page's series where they were."""

from __future__ import annotations

import socket
from pathlib import Path

from support.service import ServiceProcess

DISTINCT = 3_000
# Room for the allocator's and the page's own wobble, far below what keeping anything per
# distinct request would add over DISTINCT of them.
GROWTH_BYTES = 16 * 1024 * 1024

Request = tuple[str, ...]  # method, target, header lines
Answer = tuple[int, str, bytes]  # status, content type, body


class Connection:
    """One keep-alive HTTP/1.1 connection, requests sent in a batch, then their answers read
    in order: a few microseconds of the test's own per request, where an HTTP library's
    would outweigh the service's."""

    def __init__(self, port: int) -> None:
        self._socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self._buffer = b""

    def close(self) -> None:
        self._socket.close()

    def exchange(self, *requests: Request) -> list[Answer]:
        """Each request's status, content type and body."""
        sent = []
        for method, target, *headers in requests:
            lines = (f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers)
            sent.append("".join(f"{line}\r\n" for line in lines) + "\r\n")
        self._socket.sendall("".join(sent).encode())
        return [self._answer() for _ in requests]

    def _answer(self) -> Answer:
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        raw, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        status_line, *fields = raw.decode("latin-1").split("\r\n")
        values = dict(field.lower().split(": ", 1) for field in fields)
        length = int(values.get("content-length", "0"))
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        return int(status_line.split()[1]), values.get("content-type", ""), body

    def _receive(self) -> None:
        data = self._socket.recv(65536)
        assert data, "the service closed the connection"
        self._buffer += data


def resident_bytes(service: ServiceProcess) -> int:
    for line in Path(f"/proc/{service.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in the service's /proc status")


def series(connection: Connection) -> set[str]:
    """The page's series: every sample line's name and labels, without its value."""
    [(status, _, page)] = connection.exchange(("GET", "/metrics"))
    assert status == 200
    lines = page.decode().splitlines()
    return {line.rpartition(" ")[0] for line in lines if not line.startswith("#")}


# Accept headers that prometheus-client's negotiation tells apart: OpenMetrics in a version,
# with an escaping, and the classic text. {i} makes each distinct.
ACCEPTS = (
    ("application/openmetrics-text; version=1.0.{i}", "application/openmetrics-text"),
    (
        "application/openmetrics-text; version=1.0.{i}; escaping=allow-utf-8",
        "application/openmetrics-text",
    ),
    ("text/plain; version=1.0.{i}; escaping=allow-utf-8", "text/plain"),
)


def send_distinct(connection: Connection, i: int) -> None:
    """The i-th of each kind of distinct request, each answered as usual: a scrape gets the
    format its Accept header asks for."""
    accept, content_type = ACCEPTS[i % len(ACCEPTS)]
    scrape, *answers = connection.exchange(
        ("GET", "/metrics", f"Accept: {accept.format(i=i)}"),
        ("GET", f"/nowhere/{i}"),
        (f"METHOD{i}", "/healthz"),
        ("GET", f"/healthz?q{i}={i}"),
        ("GET", "/healthz", f"X-Header-{i}: 1"),
    )
    assert scrape[0] == 200
    assert scrape[1].startswith(content_type), scrape[1]
    assert scrape[2].endswith(b"# EOF\n") == (content_type != "text/plain")
    assert [status for status, _, _ in answers] == [404, 405, 200, 200]


def test_distinct_client_input_grows_neither_memory_nor_series(service: ServiceProcess) -> None:
    connection = Connection(service.port)
    try:
        # A few of each first: every series these requests may create exists before the
        # count, and the allocator has its pools.
        for i in range(50):
            send_distinct(connection, i)
        before_series = series(connection)
        before_bytes = resident_bytes(service)
        for i in range(50, 50 + DISTINCT):
            send_distinct(connection, i)
        grown = resident_bytes(service) - before_bytes
        after_series = series(connection)
    finally:
        connection.close()
    assert grown <= GROWTH_BYTES, f"resident memory grew by {grown / 2**20:.1f} MiB"
    assert after_series == before_series
