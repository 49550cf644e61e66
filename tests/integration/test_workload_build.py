"""The compiled module (the workload) in the real service, and the Python
fallback that a build without a C compiler installs: the package is built that way here and
the service run from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from support.compiler import c_compiler_present
from support.lab import REPO
from support.service import StartService
from support.waiting import wait_for
from support.workers import descendants

FALLBACK_WARNING = (
    "the compiled modules are not installed (built without a C compiler?): "
    "fib runs in Python, many times slower (docs/performance.md)"
)


@pytest.fixture(scope="module")
def python_only_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as `pip wheel` builds it where no C compiler exists, unpacked."""
    root = tmp_path_factory.mktemp("no-compiler")
    source = root / "source"
    # A copy, so the build writes nothing into the working tree, without its built extension.
    shutil.copytree(
        REPO / "src",
        source / "src",
        ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__", "*.egg-info"),
    )
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, source / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", root / "wheels", source],
        env={**os.environ, "CC": str(root / "no-such-compiler")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = (root / "wheels").glob("example_service-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "example_service/workload/fibonacci.py" in names
        assert not [name for name in names if name.endswith(".so")]
        assert "example_service/logs/access.py" in names
        archive.extractall(root / "site")
    return root / "site"


@pytest.mark.skipif(not c_compiler_present(), reason="no C compiler: the build installed Python")
def test_the_service_runs_the_compiled_workload(start_service: StartService) -> None:
    service = start_service("--num", "30")
    assert service.metric('example_service_build_info{fib="compiled",version="1.0.0"}') == 1
    assert service.get("/abc").status_code == 200
    wait_for(lambda: '"route": "/abc"' in "".join(service.lines()), 5, "the access line")
    assert FALLBACK_WARNING not in [e["message"] for e in service.logs()]


def test_without_a_compiler_it_runs_python_and_warns_once(
    start_service: StartService, python_only_package: Path
) -> None:
    service = start_service("--num", "22", env={"PYTHONPATH": str(python_only_package)})
    assert service.metric('example_service_build_info{fib="python",version="1.0.0"}') == 1
    assert service.get("/abc").text == "there is env NUM. Computation succeeded\n"
    # Once an access line is written, the warning before it is too.
    wait_for(lambda: '"route": "/abc"' in "".join(service.lines()), 5, "the access line")
    warnings = [e for e in service.logs() if e["message"] == FALLBACK_WARNING]
    assert [(e["level"], e["fib"]) for e in warnings] == [("warning", "python")]


def test_without_a_compiler_the_deadline_still_applies(
    start_service: StartService, python_only_package: Path
) -> None:
    service = start_service(
        "--num",
        "50",
        "--num-max",
        "50",
        "--request-timeout",
        "0.5",
        env={"PYTHONPATH": str(python_only_package)},
    )
    started = time.monotonic()
    response = service.get("/abc")
    assert response.status_code == 503
    assert 0.5 <= time.monotonic() - started < 2
    # Computed in a thread of the service, as compiled: no worker process.
    assert descendants(service.process.pid) == []
    assert service.get("/abc").status_code == 503
