"""The batched log output on a real pipe: written promptly, in order, bounded when blocked."""

from __future__ import annotations

import fcntl
import logging
import os
import select
import threading
import time
from collections.abc import Iterator

import pytest
from support.waiting import wait_for

from example_service.logs.writer import LogOutput

F_SETPIPE_SZ = 1031  # from <linux/fcntl.h>


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    for fd in (read, write):
        os.close(fd)


def read_lines(fd: int, count: int, timeout: float = 5.0) -> list[str]:
    data = b""
    deadline = time.monotonic() + timeout
    while data.count(b"\n") < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{len(data.splitlines())} of {count} lines arrived"
        if select.select([fd], [], [], remaining)[0]:
            data += os.read(fd, 1 << 20)
    return data.decode().splitlines()


def test_a_line_is_written_within_the_flush_interval(pipe: tuple[int, int]) -> None:
    read, write = pipe
    output = LogOutput(write)
    started = time.monotonic()
    output.write(b"one\n")
    assert read_lines(read, 1) == ["one"]
    assert time.monotonic() - started < 0.5  # 0.1 s at most, with room for a loaded machine
    output.close()


def test_close_writes_every_pending_line_in_order(pipe: tuple[int, int]) -> None:
    read, write = pipe
    output = LogOutput(write, flush_interval=60)
    lines = [f"line {i}" for i in range(2000)]
    for line in lines:
        output.write(line.encode() + b"\n")
    closer = threading.Thread(target=output.close)
    closer.start()
    assert read_lines(read, len(lines)) == lines
    closer.join(5)
    assert output.dropped == 0


def test_a_blocked_reader_costs_drops_not_memory_and_one_warning(
    pipe: tuple[int, int], caplog: pytest.LogCaptureFixture
) -> None:
    read, write = pipe
    fcntl.fcntl(write, F_SETPIPE_SZ, 4096)
    output = LogOutput(write, flush_interval=0.01, capacity_bytes=10_000)
    line = b"x" * 99 + b"\n"
    written = 0

    def fill() -> bool:
        nonlocal written
        output.write(line)
        written += 1
        return output.dropped > 0

    # The pipe (4 kB) and then the capacity (100 lines) fill up while nobody reads.
    wait_for(fill, 10, "the output to drop a line", interval=0.001)
    before = output.dropped
    for _ in range(5000):
        output.write(line)
    written += 5000
    # Full means full: every further line is dropped, none waits in memory.
    assert output.dropped - before == 5000

    with caplog.at_level(logging.WARNING, logger="example_service.logs.writer"):
        arrived = read_lines(read, written - output.dropped, timeout=10)
        wait_for(lambda: caplog.records, 5, "the episode's warning")
        output.write(b"after\n")
        assert read_lines(read, 1) == ["after"]
    assert arrived == ["x" * 99] * len(arrived)
    assert [(r.getMessage(), r.__dict__["dropped"]) for r in caplog.records] == [
        ("stdout did not take log lines in time: lines dropped", output.dropped)
    ]
    output.close()


def test_a_reader_that_is_gone_costs_drops_not_an_error() -> None:
    read, write = os.pipe()
    os.close(read)
    output = LogOutput(write)
    output.write(b"lost\n")
    output.close()
    os.close(write)
    assert output.dropped == 1


def test_a_non_blocking_pipe_gets_whole_lines_and_an_exact_count_of_drops(
    pipe: tuple[int, int],
) -> None:
    """A full O_NONBLOCK pipe answers EAGAIN, often after taking part of a write: the writer
    finishes the write once the pipe has room, and drops only whole lines, counted."""
    read, write = pipe
    fcntl.fcntl(write, F_SETPIPE_SZ, 4096)
    os.set_blocking(write, False)
    output = LogOutput(write, flush_interval=0.01, capacity_bytes=50_000)
    received = bytearray()
    catch_up = threading.Event()

    def slow_reader() -> None:
        while not received.endswith(b"last\n"):
            if select.select([read], [], [], 5)[0]:
                received.extend(os.read(read, 1 << 20 if catch_up.is_set() else 512))
                if not catch_up.is_set():
                    time.sleep(0.001)  # the collector's pace

    reader = threading.Thread(target=slow_reader)
    reader.start()
    # Faster than the reader, across many flushes: the pipe is found full again and again.
    lines = [f"line {i:05d} ".encode() + b"x" * 80 + b"\n" for i in range(20_000)]
    for i, line in enumerate(lines):
        output.write(line)
        if i % 100 == 0:
            time.sleep(0.001)  # the service's pace
    assert output.dropped, "nothing dropped: the test no longer reaches the bound"
    catch_up.set()
    output.write(b"last\n")
    reader.join(10)
    output.close()
    arrived = bytes(received).splitlines(keepends=True)
    torn = [line for line in arrived if line not in {*lines, b"last\n"}]
    assert not torn, f"{len(torn)} torn lines, the first {torn[0]!r}"
    assert arrived.pop() == b"last\n"
    assert arrived == sorted(arrived), "lines out of order"
    assert len(arrived) + output.dropped == len(lines)
