"""deploy/alertmanager/webhook_log.py, the notifications' sink, run for real on a loopback port.

In a pod it listens on every address (its probes come to the pod's IP), so what a client
sends is bounded: a body over MAX_BODY is refused before it is read, a content-length that
is no byte count is a 400, a connection that sends nothing is closed after the sink's
timeout, and the sink keeps serving after each. Its probe path answers from the serving
loop. (tests/deploy/test_compose.py runs it as Compose does, tests/container/test_pod_probes.py
as the pod does.)
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from kustomize_render import REPO
from support.ports import free_port
from support.waiting import wait_for

WEBHOOK_LOG = REPO / "deploy" / "alertmanager" / "webhook_log.py"


def sink_namespace() -> dict[str, Any]:
    """The sink's module-level names, its script run as a module rather than as __main__."""
    namespace: dict[str, Any] = {}
    exec(compile(WEBHOOK_LOG.read_text("utf-8"), str(WEBHOOK_LOG), "exec"), namespace)  # noqa: S102
    return namespace


def max_body() -> int:
    value = sink_namespace()["MAX_BODY"]
    assert isinstance(value, int)
    return value


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The sink on a free loopback port, its stdout in a file: (url, stdout)."""
    port = free_port()
    stdout = tmp_path / "stdout"
    with stdout.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-u", str(WEBHOOK_LOG), "127.0.0.1", str(port)], stdout=output
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/healthz", timeout=2).status_code == 200, 20, url)
        yield url, stdout
    finally:
        process.terminate()
        process.wait(timeout=10)


def notification(size: int = 0) -> bytes:
    return json.dumps({"receiver": "default", "status": "firing", "pad": "x" * size}).encode()


def exchange(url: str, head: str) -> str:
    """A request head sent on a socket of its own, and the whole answer until the sink closes
    the connection."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(head.encode())
        chunks = []
        while chunk := raw.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def printed(stdout: Path) -> list[str]:
    return stdout.read_text("utf-8").splitlines()


def test_probe_path(sink: tuple[str, Path]) -> None:
    url, _ = sink
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{url}/metrics", timeout=5).status_code == 404


def test_a_body_over_the_limit_is_refused_unread(sink: tuple[str, Path]) -> None:
    url, stdout = sink
    limit = max_body()
    # Declared only: the sink must answer without waiting for 4 MiB that never come.
    answer = exchange(url, f"POST / HTTP/1.1\r\nHost: sink\r\nContent-Length: {limit + 1}\r\n\r\n")
    assert answer.startswith("HTTP/1.0 413"), answer
    assert f"over the {limit} accepted" in answer
    response = httpx.post(f"{url}/", content=notification(), timeout=5)
    assert response.status_code == 200, "the sink serves on"
    # Exactly at the limit is accepted and printed whole.
    at_limit = notification(limit - len(notification()))
    assert len(at_limit) == limit
    assert httpx.post(f"{url}/", content=at_limit, timeout=30).status_code == 200
    lines = wait_for(lambda: len(printed(stdout)) == 2 and printed(stdout), 10, "two lines")
    assert [len(line) for line in lines] == [len(notification()), limit]


def test_a_bad_content_length_is_a_400(sink: tuple[str, Path]) -> None:
    url, stdout = sink
    for declared in ("-1", "abc", "1e9"):
        answer = exchange(
            url, f"POST / HTTP/1.1\r\nHost: sink\r\nContent-Length: {declared}\r\n\r\n"
        )
        assert answer.startswith("HTTP/1.0 400"), (declared, answer)
        assert "is not a byte count" in answer
    assert httpx.post(f"{url}/", content=notification(), timeout=5).status_code == 200
    wait_for(lambda: len(printed(stdout)) == 1, 10, "the one notification printed")


def test_notifications_at_once_each_keep_a_line(sink: tuple[str, Path]) -> None:
    """Alertmanager sends each receiver's groups in parallel: lines never share a line."""
    url, stdout = sink
    count = 500

    def send(index: int) -> int:
        body = json.dumps({"receiver": "default", "index": index, "pad": "x" * 4000})
        return httpx.post(f"{url}/", content=body, timeout=10).status_code

    with ThreadPoolExecutor(32) as pool:
        assert set(pool.map(send, range(count))) == {200}
    lines = wait_for(lambda: len(printed(stdout)) >= count and printed(stdout), 10, "every line")
    assert sorted(json.loads(line)["index"] for line in lines) == list(range(count))


def test_a_body_on_several_lines_is_printed_on_one(sink: tuple[str, Path]) -> None:
    url, stdout = sink
    pretty = json.dumps({"receiver": "default", "status": "firing"}, indent=2)
    assert httpx.post(f"{url}/", content=pretty, timeout=5).status_code == 200
    assert httpx.post(f"{url}/", content="not\njson", timeout=5).status_code == 200
    lines = wait_for(lambda: len(printed(stdout)) == 2 and printed(stdout), 10, "two lines")
    assert json.loads(lines[0]) == {"receiver": "default", "status": "firing"}
    assert lines[1] == "not json"


def test_silent_connections_are_closed_after_the_timeout_and_hold_up_nobody(
    sink: tuple[str, Path],
) -> None:
    """A hundred clients that connect and never send (a port scan, a peer gone half-open)
    each hold a thread of the sink until its timeout, then are closed; a notification sent
    meanwhile is printed at once."""
    url, stdout = sink
    port = int(url.rsplit(":", 1)[1])
    timeout = sink_namespace()["Sink"].timeout
    assert isinstance(timeout, int | float)
    opened = time.monotonic()
    silent = [
        socket.create_connection(("127.0.0.1", port), timeout=timeout + 15) for _ in range(100)
    ]
    try:
        assert httpx.post(f"{url}/", content=notification(), timeout=5).status_code == 200
        wait_for(lambda: len(printed(stdout)) == 1, 10, "the notification printed")
        for connection in silent:
            assert connection.recv(1) == b"", "closed by the sink, not answered"
        waited = time.monotonic() - opened
    finally:
        for connection in silent:
            connection.close()
    assert timeout - 1 <= waited < timeout + 15
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
