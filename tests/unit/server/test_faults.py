from __future__ import annotations

import asyncio
import time

import pytest

from example_service.server.faults import MAX_LATENCY_MS, DelayRange, Faults


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("250", 250, 250),
        ("0", 0, 0),
        ("100-900", 100, 900),
        ("5-5", 5, 5),
        ("0-1", 0, 1),
        (str(MAX_LATENCY_MS), MAX_LATENCY_MS, MAX_LATENCY_MS),
        ("007", 7, 7),
    ],
)
def test_latency_parses_a_fixed_delay_or_a_range(text: str, low: int, high: int) -> None:
    assert DelayRange.parse(text) == DelayRange(low, high)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-5",
        "900-100",
        str(MAX_LATENCY_MS + 1),
        f"0-{MAX_LATENCY_MS + 1}",
        "1.5",
        " 5",
        "5-",
        "-",
        "1-2-3",
        "250ms",
        "٣",  # a digit, but not an ASCII one
    ],
)
def test_latency_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        DelayRange.parse(text)


@pytest.mark.parametrize(("text", "shown"), [("250", "250"), ("100-900", "100-900"), ("7-7", "7")])
def test_latency_prints_as_it_parses(text: str, shown: str) -> None:
    assert str(DelayRange.parse(text)) == shown
    assert DelayRange.parse(shown) == DelayRange.parse(text)


@pytest.mark.parametrize(
    ("error_ratio", "latency", "enabled"),
    [
        (0.0, DelayRange(), False),
        (0.0, DelayRange(0, 0), False),
        (0.01, DelayRange(), True),
        (0.0, DelayRange(0, 1), True),
        (0.0, DelayRange(50, 50), True),
    ],
)
def test_enabled_when_either_fault_is_set(
    error_ratio: float, latency: DelayRange, enabled: bool
) -> None:
    assert Faults(error_ratio, latency).enabled is enabled


def test_off_by_default() -> None:
    assert not Faults().enabled
    assert not any(Faults().should_fail() for _ in range(1000))


def test_ratio_one_always_fails() -> None:
    assert all(Faults(error_ratio=1.0).should_fail() for _ in range(1000))


@pytest.mark.parametrize("ratio", [0.05, 0.5, 0.9])
def test_should_fail_at_about_the_ratio(ratio: float) -> None:
    draws = 20_000
    failures = sum(Faults(error_ratio=ratio).should_fail() for _ in range(draws))
    # Eight standard deviations either way: a false alarm is never seen in practice.
    spread = 8 * (draws * ratio * (1 - ratio)) ** 0.5
    assert abs(failures - draws * ratio) < spread


class Sleeps:
    """Stands in for asyncio.sleep, keeping what was asked of it."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    recorder = Sleeps()
    # asyncio.run itself never sleeps, so only the faults' delay meets the stand-in.
    monkeypatch.setattr(asyncio, "sleep", recorder)
    return recorder


async def delays(fault: Faults, times: int) -> None:
    for _ in range(times):
        await fault.delay()


def test_no_delay_without_latency(sleeps: Sleeps) -> None:
    asyncio.run(delays(Faults(error_ratio=0.5), 10))
    assert sleeps.seconds == []


def test_a_fixed_latency_always_waits_that_long(sleeps: Sleeps) -> None:
    asyncio.run(delays(Faults(latency=DelayRange(250, 250)), 10))
    assert sleeps.seconds == [0.25] * 10


def test_a_latency_range_is_drawn_across_the_range(sleeps: Sleeps) -> None:
    asyncio.run(delays(Faults(latency=DelayRange(100, 900)), 2000))
    assert all(0.1 <= seconds <= 0.9 for seconds in sleeps.seconds)
    # Uniform: both tenths at the ends of the range are reached.
    assert min(sleeps.seconds) < 0.18
    assert max(sleeps.seconds) > 0.82


def test_the_delay_really_waits() -> None:
    start = time.monotonic()
    asyncio.run(Faults(latency=DelayRange(30, 30)).delay())
    assert time.monotonic() - start >= 0.03
