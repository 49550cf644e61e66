from __future__ import annotations

import argparse
import itertools
import string
from pathlib import Path

import pytest

from example_service.server.faults import DelayRange
from example_service.settings import (
    ENVIRONMENT_VARIABLES,
    SETTINGS,
    ConfigError,
    Settings,
    add_arguments,
    parse_settings,
)

NO_FLAGS: dict[str, str | None] = {}
README = Path(__file__).resolve().parents[2] / "README.md"


def test_defaults() -> None:
    settings = parse_settings(NO_FLAGS, {})
    assert settings == Settings()
    assert (settings.host, settings.port, settings.num, settings.fib_n) == (
        "0.0.0.0",
        5565,
        None,
        10,
    )
    assert settings.sysfs_root == Path("/sys")
    assert settings.cgroup_root == Path("/sys/fs/cgroup")


@pytest.mark.parametrize(("raw", "expected"), [("12", 12), (" 12 ", 12), ("\t7\n", 7), ("40", 40)])
def test_num_accepted(raw: str, expected: int) -> None:
    assert parse_settings(NO_FLAGS, {"NUM": raw}).num == expected


@pytest.mark.parametrize("raw", ["", "   "])
def test_empty_num_is_unset(raw: str) -> None:
    settings = parse_settings(NO_FLAGS, {"NUM": raw})
    assert settings.num is None
    assert settings.fib_n == 10


@pytest.mark.parametrize("raw", ["abc", "-1", "0", "1e3", "99999", "41", "1 2", "+3", "٣"])
def test_num_rejected(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"invalid NUM .*expected an integer from 1 to 40"):
        parse_settings(NO_FLAGS, {"NUM": raw})


def test_num_max_moves_the_bound_in_either_order_of_sources() -> None:
    assert parse_settings({"num_max": "45"}, {"NUM": "45"}).num == 45
    with pytest.raises(ConfigError, match="from 1 to 20"):
        parse_settings(NO_FLAGS, {"NUM": "21", "NUM_MAX": "20"})


def test_flag_wins_over_environment_and_names_itself() -> None:
    assert parse_settings({"port": "8080"}, {"PORT": "9090"}).port == 8080
    with pytest.raises(ConfigError) as caught:
        parse_settings({"port": "x"}, {"PORT": "9090"})
    assert str(caught.value) == "invalid --port 'x': expected an integer from 1 to 65535"


@pytest.mark.parametrize(
    ("raw", "expected"), [("on", True), ("OFF", False), ("1", True), ("no", False)]
)
def test_switches(raw: str, expected: bool) -> None:
    assert parse_settings(NO_FLAGS, {"ACCESS_LOG": raw}).access_log is expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("::1", "::1"), ("127.0.0.1", "127.0.0.1"), ("localhost", "127.0.0.1")]
)
def test_hosts(raw: str, expected: str) -> None:
    assert parse_settings(NO_FLAGS, {"HOST": raw}).host == expected


@pytest.mark.parametrize("raw", ["0", "-0.5", "nan", "inf", "1e9", "soon"])
def test_bad_durations(raw: str) -> None:
    with pytest.raises(ConfigError, match="REQUEST_TIMEOUT"):
        parse_settings(NO_FLAGS, {"REQUEST_TIMEOUT": raw})


def test_num_max_declared_before_num_fills_its_message() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(NO_FLAGS, {"NUM": "abc", "NUM_MAX": "20"})
    assert str(caught.value) == (
        "invalid NUM 'abc': expected an integer from 1 to 20 (NUM_MAX raises the maximum)"
    )
    with pytest.raises(ConfigError, match="invalid NUM_MAX '61'"):
        parse_settings(NO_FLAGS, {"NUM": "abc", "NUM_MAX": "61"})


def test_every_variable_is_read_and_checked() -> None:
    # No setting accepts a NUL byte, so each refusal shows that its variable was read.
    for variable in ENVIRONMENT_VARIABLES:
        with pytest.raises(ConfigError) as caught:
            parse_settings(NO_FLAGS, {variable: "\0"})
        assert caught.value.setting == variable
    assert set(ENVIRONMENT_VARIABLES) >= {"NUM", "PORT", "HOST", "NUM_MAX", "FAULT_LATENCY_MS"}


def test_every_flag_reaches_its_field() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = vars(parser.parse_args(["--fault-latency-ms", "5-9", "--num-max", "40"]))
    settings = parse_settings(flags, {})
    assert (settings.fault_latency, settings.num_max) == (DelayRange(5, 9), 40)
    for item in SETTINGS:
        with pytest.raises(ConfigError) as caught:
            parse_settings(vars(parser.parse_args([item.flag, "\0"])), {})
        assert caught.value.setting == item.flag


def test_each_default_as_shown_parses_back_to_itself() -> None:
    for item in SETTINGS:
        if item.default is not None:
            assert item.parse(item.default_text) == item.default, item.field


def test_accepted_texts_name_only_settings_declared_above() -> None:
    for index, item in enumerate(SETTINGS):
        named = {name for _, name, _, _ in string.Formatter().parse(item.accepted) if name}
        assert named <= {above.field for above in SETTINGS[:index]}, item.field


def test_help_gives_each_setting_its_variable_default_and_accepted_values() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    text = " ".join(parser.format_help().split())
    for item in SETTINGS:
        assert f"{item.flag} {item.variable}" in text
        assert f"(default: {item.default_text}, env {item.variable})" in text
    assert "an integer from 1 to NUM_MAX (NUM_MAX raises the maximum)" in text


def readme_configuration_rows() -> list[tuple[str, str, str]]:
    """(flag, variable, default) of each row of the first table in the README's Configuration."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    table = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    assert [cell.strip() for cell in table[0].strip("|").split("|")][:3] == [
        "flag",
        "variable",
        "default",
    ]
    rows = []
    for line in table[2:]:  # after the header and its rule
        cells = [cell.strip().replace("`", "") for cell in line.strip("|").split("|")]
        rows.append((cells[0], cells[1], cells[2]))
    return rows


def test_readme_configuration_table_matches_the_declarations() -> None:
    declared = [(item.flag, item.variable, item.default_text) for item in SETTINGS]
    assert readme_configuration_rows() == declared
