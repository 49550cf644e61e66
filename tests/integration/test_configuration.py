"""Invalid configuration stops the real process before it binds: status 2, one clear line."""

from __future__ import annotations

import subprocess

import pytest
from support.binaries import run
from support.ports import free_port
from support.service import EXECUTABLE, StartService, service_environment


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The service started with args and env, to its exit."""
    environment = service_environment(env)
    # A free port unless the case is about the port, so a valid case would not bind 5565.
    port = () if "--port" in args or "PORT" in environment else ("--port", str(free_port()))
    return run(str(EXECUTABLE), *port, *args, env=environment, timeout=30)


@pytest.mark.parametrize("num", ["abc", "-1", "0", "1e3", "99999", "12.5", "+5", "0x10", "٣"])
def test_bad_num_exits_2_with_one_line_naming_it(num: str) -> None:
    result = serve(env={"NUM": num})
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr == (
        f"example-service: invalid NUM {num!r}: expected an integer from 1 to 40 "
        "(NUM_MAX raises the maximum)\n"
    )


def test_bad_num_from_the_flag_names_the_flag() -> None:
    result = serve("--num", "0")
    assert result.returncode == 2
    assert result.stderr.startswith("example-service: invalid --num '0'")


def test_num_max_raises_the_limit_and_is_checked_itself(start_service: StartService) -> None:
    assert serve(env={"NUM": "41"}).returncode == 2
    service = start_service(env={"NUM": "41", "NUM_MAX": "41", "REQUEST_TIMEOUT": "0.01"})
    assert service.get("/readyz").status_code == 200
    result = serve(env={"NUM_MAX": "61"})
    assert result.returncode == 2
    assert "invalid NUM_MAX '61': expected an integer from 1 to 60" in result.stderr


def test_num_with_surrounding_spaces_is_trimmed(start_service: StartService) -> None:
    service = start_service(env={"NUM": " 12 "})
    assert service.get("/abc").text == "there is env NUM. Computation succeeded\n"


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {"PORT": "0"}, "invalid PORT '0': expected an integer from 1 to 65535"),
        (("--port", "65536"), {}, "invalid --port '65536': expected an integer from 1 to 65535"),
        (("--port", "http"), {}, "invalid --port 'http'"),
        (("--host", "example.com"), {}, "invalid --host 'example.com': expected an IPv4"),
        (("--workers", "0"), {}, "invalid --workers '0': expected an integer from 1 to 256"),
        (("--request-timeout", "nan"), {}, "invalid --request-timeout 'nan': expected seconds"),
        (("--drain-delay", "-1"), {}, "invalid --drain-delay '-1'"),
        (("--shutdown-timeout", "inf"), {}, "invalid --shutdown-timeout 'inf'"),
        (("--header-timeout", "0"), {}, "invalid --header-timeout '0'"),
        (("--access-log", "maybe"), {}, "invalid --access-log 'maybe': expected on or off"),
        ((), {"LOG_LEVEL": "loud"}, "invalid LOG_LEVEL 'loud': expected one of debug, info"),
        ((), {"SYSFS_ROOT": ""}, "invalid SYSFS_ROOT '': expected a directory path"),
        ((), {"DEMO_READINGS": "2"}, "invalid DEMO_READINGS '2': expected on or off"),
        ((), {"FAULT_ERROR_RATIO": "1.5"}, "invalid FAULT_ERROR_RATIO '1.5': expected a number"),
        ((), {"FAULT_ERROR_RATIO": "nan"}, "invalid FAULT_ERROR_RATIO 'nan'"),
        ((), {"FAULT_LATENCY_MS": "900-100"}, "invalid FAULT_LATENCY_MS '900-100'"),
        (("--fault-latency-ms", "fast"), {}, "invalid --fault-latency-ms 'fast'"),
    ],
)
def test_every_setting_is_validated(
    args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    result = serve(*args, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert expected in result.stderr


def test_flag_wins_over_environment(start_service: StartService) -> None:
    service = start_service("--num", "11", env={"NUM": "99999"})
    assert service.get("/abc").status_code == 200


def test_port_in_use_exits_1_with_one_line(start_service: StartService) -> None:
    first = start_service("--access-log", "off")
    result = serve("--host", "127.0.0.1", "--port", str(first.port))
    assert result.returncode == 1
    assert result.stderr == (
        f"example-service: cannot listen on 127.0.0.1:{first.port}: Address already in use\n"
    )
