"""The connection helpers against this process's own real sockets (the guard and the gauge
on the real service are in tests/integration/test_floods.py)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from example_service.connections import Connections, find_listener, listen_backlog, somaxconn
from example_service.system.files import KEPT_DESCRIPTORS, OpenFiles


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as server:
        # As granian binds it, so that a socket bound to the port beside it may be made.
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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


def kernel_count(port: int) -> int:
    """The kernel's own count of what the service counts: TCP sockets on 127.0.0.1 whose
    local port is port, established or closed by the peer only (what `ss` would list)."""
    local = f"0100007F:{port:04X}"
    with open("/proc/self/net/tcp") as table:
        next(table)
        return sum(
            1 for line in table if line.split()[1] == local and line.split()[3] in ("01", "08")
        )


def test_connections_counts_those_held_and_those_queued_exactly(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    connections = Connections(port)
    assert (connections.held(), connections.queued()) == (0, 0)
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(7)]
    accepted = [listener.accept()[0] for _ in range(5)]  # two wait in the queue
    # Sockets that are not connections to the port: the clients' ends (ephemeral ports), a
    # socket bound to the port that neither listens nor connects (granian keeps one), a UDP
    # socket on the same port number, a socket pair; and a connection's second descriptor,
    # which is still one connection.
    bound = socket.socket()
    bound.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    bound.bind(("127.0.0.1", port))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", port))
    others = [bound, udp, *socket.socketpair(), socket.socket(fileno=os.dup(accepted[0].fileno()))]
    try:
        assert (connections.held(), connections.queued()) == (5, 2)
        assert connections.held() + connections.queued() == kernel_count(port) == 7
        accepted.pop().close()
        assert (connections.held(), kernel_count(port)) == (4, 6)
        # Closed by the client only: still open on the server's side, still counted.
        clients[0].close()
        assert (connections.held(), kernel_count(port)) == (4, 6)
        listener.accept()[0].close()
        assert (connections.held(), connections.queued(), kernel_count(port)) == (4, 1, 5)
    finally:
        for sock in clients + accepted + others:
            sock.close()
    assert connections.held() == 0


def test_connections_stops_looking_at_the_listener_once_closed(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    connections = Connections(port)
    found = connections.listener()
    assert found is not None and found.getsockname() == listener.getsockname()
    connections.close()
    assert found.fileno() == -1
    assert connections.listener() is None
    assert connections.queued() == 0


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


def test_the_files_the_readers_keep_open_are_not_looked_at(
    listener: socket.socket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = tmp_path / "value"
    value.write_text("1\n")
    kept = OpenFiles()
    kept.read(str(value), str(value), None)
    (descriptor,) = [
        fd for fd in KEPT_DESCRIPTORS if os.readlink(f"/proc/self/fd/{fd}") == str(value)
    ]
    looked: list[int] = []
    fstat = os.fstat

    def recording(fd: int) -> os.stat_result:
        looked.append(fd)
        return fstat(fd)

    port = listener.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port)), listener.accept()[0]:
        monkeypatch.setattr(os, "fstat", recording)
        assert Connections(port).held() == 1
        monkeypatch.undo()
    assert looked
    assert descriptor not in looked
    kept.reading_done()
    kept.reading_done()  # not read since: closed, and no longer kept
    assert descriptor not in KEPT_DESCRIPTORS
