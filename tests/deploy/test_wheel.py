"""The wheel, built as an index or the image would build it, carries what the package reads at
run time: the stack's rule files and Alertmanager configuration, equal to deploy/'s."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# In the wheel (package data) and in the repository (their one copy).
STACK_FILES = {
    "example_service/stack/assets/alertmanager.yml": "deploy/alertmanager/alertmanager.yml",
    **{
        f"example_service/stack/assets/rules/{rule.name}": f"deploy/prometheus/rules/{rule.name}"
        for rule in sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
    },
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", out, REPO],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [path] = out.glob("example_service-*.whl")
    return zipfile.ZipFile(path)


def test_wheel_holds_the_stack_files_as_in_deploy(wheel: zipfile.ZipFile) -> None:
    assert len(STACK_FILES) >= 3
    names = set(wheel.namelist())
    for packaged, source in STACK_FILES.items():
        assert packaged in names, f"{packaged} is missing from the wheel"
        assert wheel.read(packaged) == (REPO / source).read_bytes(), packaged


def test_wheel_holds_no_repository_files_besides(wheel: zipfile.ZipFile) -> None:
    """Only the package: no tests, bench or deploy tree shipped by accident."""
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"example_service"}
