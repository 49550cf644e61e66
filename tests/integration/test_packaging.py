"""How the package is started and what it needs installed, on the real interpreter."""

from __future__ import annotations

import sys
from pathlib import Path

from support.binaries import run
from support.blocked_imports import blocking
from support.distributions import installed, modules_only_from, required_by
from support.ports import free_port
from support.service import EXECUTABLE, ServiceProcess, StartService, service_environment
from support.waiting import wait_for

from example_service import __version__


def test_python_m_runs_the_command() -> None:
    result = run(sys.executable, "-m", "example_service", "--version", env=service_environment())
    assert (result.returncode, result.stdout) == (0, f"example-service {__version__}\n")


def test_importing_main_runs_nothing() -> None:
    # Were the command to run on import, this bad NUM would make it exit 2 with a message.
    result = run(
        sys.executable,
        "-c",
        "import example_service.__main__",
        env=service_environment({"NUM": "x"}),
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def uvloop_lines(service: ServiceProcess) -> list[tuple[str, str]]:
    return [(e["level"], e["message"]) for e in service.logs() if "uvloop" in e["message"]]


def test_without_uvloop_the_server_runs_on_asyncio_and_says_so(
    start_service: StartService, tmp_path: Path
) -> None:
    env = blocking(["uvloop"], tmp_path)
    service = start_service("--access-log", "off", "--drain-delay", "0", env=env)
    assert service.get("/abc").text == "there is no env NUM. Computation succeeded\n"
    assert service.get("/metrics").status_code == 200
    expected = [("warning", "uvloop is not installed: serving on asyncio's own event loop")]
    wait_for(lambda: uvloop_lines(service) == expected, 5, "the one line about uvloop")
    service.signal()
    assert service.process.wait(15) == 0


def test_with_uvloop_nothing_is_said_about_it(service: ServiceProcess) -> None:
    assert service.get("/abc").status_code == 200
    # Log lines reach stdout within 100 ms, in batches (docs/design.md, "Logs").
    wait_for(lambda: any(e["message"] == "started" for e in service.logs()), 5, "the start line")
    assert uvloop_lines(service) == []


def test_the_server_runs_on_its_own_dependencies_alone(
    start_service: StartService, tmp_path: Path
) -> None:
    # Every installed package the server's install would not bring is made unimportable:
    # the load extra's, the tests' and the tools'.
    blocked = modules_only_from(installed() - required_by("example-service"))
    assert "pytest" in blocked
    env = blocking(blocked, tmp_path)
    service = start_service("--drain-delay", "0", env=env)
    for path in ("/abc", "/metrics", "/info", "/healthz", "/readyz"):
        assert service.get(path).status_code == 200, path
    service.signal()
    assert service.process.wait(15) == 0


def test_load_without_its_extra_says_how_to_install_it(tmp_path: Path) -> None:
    only_for_load = required_by("example-service", ["load"]) - required_by("example-service")
    blocked = modules_only_from(only_for_load)
    assert blocked
    env = blocking(blocked, tmp_path)
    target = f"http://127.0.0.1:{free_port()}/abc"
    result = run(str(EXECUTABLE), "load", "--count", "1", target, env=service_environment(env))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("example-service load: ")
    assert result.stderr.endswith("needs the [load] extra: pip install 'example-service[load]'\n")
    assert run(str(EXECUTABLE), "load", "--help", env=service_environment(env)).returncode == 0
