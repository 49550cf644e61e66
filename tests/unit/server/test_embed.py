"""The server's settings derived from the environment: the listen queue and the open files."""

from __future__ import annotations

from pathlib import Path

from example_service.server.embed import listen_backlog, somaxconn


def test_the_backlog_follows_the_limit_within_the_kernel_ceiling() -> None:
    assert listen_backlog(10_000, 4096) == 4096
    assert listen_backlog(100, 4096) == 100
    assert listen_backlog(100, None) == 100


def test_somaxconn_is_read_from_the_procfs_root(tmp_path: Path) -> None:
    (tmp_path / "sys/net/core").mkdir(parents=True)
    (tmp_path / "sys/net/core/somaxconn").write_text("4096\n")
    assert somaxconn(tmp_path) == 4096
    assert somaxconn(tmp_path / "missing") is None
