"""Reads off the event loop: results in order, a read past its budget given up for while the
reads after it go on, never a second thread behind a blocked read, never the late result of
an earlier run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from example_service.system.offloop import Missed, OffLoop

BUDGET = 0.2


class Gated:
    """A read that counts its calls and blocks while the gate is closed."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self) -> int:
        self.calls += 1
        call = self.calls
        self.gate.wait()
        return call


@pytest.fixture
def gated() -> Iterator[Gated]:
    read = Gated()
    yield read
    read.gate.set()  # no test leaves a thread blocked


def threads(name: str) -> int:
    return sum(thread.name.startswith(f"read-{name}-") for thread in threading.enumerate())


def test_results_in_order_and_each_run_reads_anew(gated: Gated) -> None:
    async def main() -> list[list[object]]:
        reads = OffLoop("fresh", [gated, lambda: "second"])
        return [await reads.run(BUDGET) for _ in range(3)]

    assert asyncio.run(main()) == [[1, "second"], [2, "second"], [3, "second"]]
    assert threads("fresh") <= 1


def test_a_blocked_read_is_missed_the_rest_go_on_and_it_holds_one_thread(gated: Gated) -> None:
    async def main() -> None:
        reads = OffLoop("blocked", [lambda: "before", gated, lambda: "after"])
        gated.gate.clear()
        start = time.monotonic()
        assert await reads.run(BUDGET) == [
            "before",
            Missed(f"no reading within {BUDGET:g} s"),
            "after",
        ]
        assert BUDGET <= time.monotonic() - start < BUDGET + 0.5
        assert threads("blocked") == 2  # the blocked one, and the one that read "after"
        # Still blocked: later runs hear so at once, read the rest, and add no thread.
        for _ in range(5):
            start = time.monotonic()
            assert await reads.run(BUDGET) == [
                "before",
                Missed(f"a read from before has not returned in {BUDGET:g} s"),
                "after",
            ]
            assert time.monotonic() - start < BUDGET / 2
        assert threads("blocked") == 2
        assert gated.calls == 1
        # Unblocked: the late result goes to nobody; the next run reads anew.
        gated.gate.set()
        deadline = time.monotonic() + 5
        while isinstance((results := await reads.run(BUDGET))[1], Missed):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        assert results == ["before", 2, "after"]

    asyncio.run(main())


def test_callers_at_the_same_moment_share_one_run(gated: Gated) -> None:
    async def main() -> list[list[object]]:
        reads = OffLoop("shared", [gated])
        gated.gate.clear()
        waiting = [asyncio.ensure_future(reads.run(BUDGET * 5)) for _ in range(3)]
        await asyncio.sleep(0.01)
        gated.gate.set()
        return list(await asyncio.gather(*waiting))

    assert asyncio.run(main()) == [[1], [1], [1]]


def test_a_reads_exception_is_its_result() -> None:
    def broken() -> int:
        raise ValueError("a bug in a reader")

    async def main() -> list[object]:
        return await OffLoop("broken", [broken, lambda: 1]).run(BUDGET)

    error, one = asyncio.run(main())
    assert isinstance(error, ValueError)
    assert one == 1


def test_no_thread_until_the_first_run(gated: Gated) -> None:
    OffLoop("idle", [gated])
    assert threads("idle") == 0
