"""The connection helpers against this process's own real sockets (the guard and the gauge
on the real service are in tests/integration/test_floods.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from example_service.connections import established, find_listener, listen_backlog, somaxconn


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server


def test_the_backlog_follows_the_limit_within_the_kernel_ceiling() -> None:
    assert listen_backlog(10_000, 4096) == 4096
    assert listen_backlog(100, 4096) == 100
    assert listen_backlog(100, None) == 100


def test_somaxconn_is_read_from_the_procfs_root(tmp_path: Path) -> None:
    (tmp_path / "sys/net/core").mkdir(parents=True)
    (tmp_path / "sys/net/core/somaxconn").write_text("4096\n")
    assert somaxconn(tmp_path) == 4096
    assert somaxconn(tmp_path / "missing") is None


def test_established_counts_the_connections_on_the_port_only(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    accepted = [listener.accept()[0] for _ in range(2)]  # the third waits in the queue
    try:
        # The clients' ends have ephemeral local ports: only the service's ends count.
        assert established(port, socket.AF_INET) == 3
        assert established(port, socket.AF_INET6) == 0
    finally:
        for connection in clients + accepted:
            connection.close()


def test_find_listener_returns_a_duplicate_of_the_listening_socket(
    listener: socket.socket,
) -> None:
    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port)):
        found = find_listener(port)
        assert found is not None
        try:
            assert found.fileno() != listener.fileno()
            assert found.getsockname() == listener.getsockname()
        finally:
            found.close()
    assert find_listener(1) is None
