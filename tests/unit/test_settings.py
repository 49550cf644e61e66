from __future__ import annotations

from pathlib import Path

import pytest

from example_service.settings import ConfigError, Settings, resolve

NO_FLAGS: dict[str, str | None] = {}


def test_defaults() -> None:
    settings = resolve(NO_FLAGS, {})
    assert settings == Settings()
    assert (settings.host, settings.port, settings.num, settings.fib_n) == (
        "0.0.0.0",
        5565,
        None,
        10,
    )
    assert settings.sysfs_root == Path("/sys")
    assert settings.cgroup_root == Path("/sys/fs/cgroup")


@pytest.mark.parametrize(("raw", "expected"), [("12", 12), (" 12 ", 12), ("\t7\n", 7), ("35", 35)])
def test_num_accepted(raw: str, expected: int) -> None:
    assert resolve(NO_FLAGS, {"NUM": raw}).num == expected


@pytest.mark.parametrize("raw", ["", "   "])
def test_empty_num_is_unset(raw: str) -> None:
    settings = resolve(NO_FLAGS, {"NUM": raw})
    assert settings.num is None
    assert settings.fib_n == 10


@pytest.mark.parametrize("raw", ["abc", "-1", "0", "1e3", "99999", "36", "1 2", "+3", "٣"])
def test_num_rejected(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid NUM .*expected an integer from 1 to 35"):
        resolve(NO_FLAGS, {"NUM": raw})


def test_num_max_moves_the_bound_in_either_order_of_sources() -> None:
    assert resolve({"num_max": "40"}, {"NUM": "40"}).num == 40
    with pytest.raises(ConfigError, match="from 1 to 20"):
        resolve(NO_FLAGS, {"NUM": "21", "NUM_MAX": "20"})


def test_flag_wins_over_environment_and_names_itself() -> None:
    assert resolve({"port": "8080"}, {"PORT": "9090"}).port == 8080
    with pytest.raises(ConfigError) as caught:
        resolve({"port": "x"}, {"PORT": "9090"})
    assert str(caught.value) == "invalid --port 'x': expected an integer from 1 to 65535"


@pytest.mark.parametrize(
    ("raw", "expected"), [("on", True), ("OFF", False), ("1", True), ("no", False)]
)
def test_switches(raw: str, expected: bool) -> None:
    assert resolve(NO_FLAGS, {"ACCESS_LOG": raw}).access_log is expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("::1", "::1"), ("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1")]
)
def test_hosts(raw: str, expected: str) -> None:
    assert resolve(NO_FLAGS, {"HOST": raw}).host == expected


@pytest.mark.parametrize("raw", ["0", "-0.5", "nan", "inf", "1e9", "soon"])
def test_bad_durations(raw: str) -> None:
    with pytest.raises(ConfigError, match="REQUEST_TIMEOUT"):
        resolve(NO_FLAGS, {"REQUEST_TIMEOUT": raw})
