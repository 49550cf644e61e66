"""`example-service stack` itself: what it starts, its table, and Ctrl-C stopping exactly that;
run from a directory that is not the repository, with the rules and the Alertmanager
configuration it ships as package data."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import httpx
import pytest
import yaml
from support.lab import ALERTMANAGER, REPO, RULES
from support.ports import free_ports
from support.service import EXECUTABLE
from support.waiting import wait_for

from example_service.stack.lab import BINARIES

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: it only waits for its parent to read its status.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def rule_groups() -> set[str]:
    return {
        group["name"]
        for path in RULES.glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
    }


def test_stack_starts_everything_and_ctrl_c_stops_exactly_that(tmp_path: Path) -> None:
    ports = free_ports(6)
    # Anywhere but the repository: the stack finds its rules and configuration by itself.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    bystander = subprocess.Popen(["sleep", "120"])
    stack = subprocess.Popen(
        [str(EXECUTABLE), "stack", "--first-port", str(ports[0]), "--replicas", "2",
         "--prometheus-port", str(ports[2]), "--alertmanager-port", str(ports[3]),
         "--pushgateway-port", str(ports[4]), "--federate",
         "--global-prometheus-port", str(ports[5]), "--data-dir", str(tmp_path / "data")],
        cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        assert stack.stdout is not None
        lines.extend(stack.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(
            lambda: (
                stack.poll() is not None
                or any("Ctrl-C stops everything." in line for line in lines)
            ),
            60,
            "the table",
        )
        assert stack.poll() is None and stack.stderr is not None, stack.stderr.read()
        rows = [line.split() for line in lines[1 : lines.index("\n")]]
        assert [row[0] for row in rows] == [
            "replica-1", "replica-2", "pushgateway", "alertmanager", "prometheus",
            "global-prometheus",
        ]  # fmt: skip
        pids = [int(row[1]) for row in rows]
        assert all(alive(pid) for pid in pids)
        for row in rows:
            assert httpx.get(row[2] + "/", timeout=5).status_code < 500
        assert any(f"http://127.0.0.1:{ports[2]}/graph" in line for line in lines)
        assert (tmp_path / "data" / "prometheus.yml").exists()
        prometheus, alertmanager = rows[4][2], rows[3][2]
        answer = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()
        assert {group["name"] for group in answer["data"]["groups"]} == rule_groups()
        status = httpx.get(f"{alertmanager}/api/v2/status", timeout=5).json()
        loaded = yaml.safe_load(status["config"]["original"])["receivers"]
        shipped = yaml.safe_load(ALERTMANAGER.read_text())["receivers"]
        assert [r["name"] for r in loaded] == [r["name"] for r in shipped]

        stack.send_signal(signal.SIGINT)
        assert stack.wait(60) == 0
        wait_for(lambda: not any(alive(pid) for pid in pids), 10, "every component to exit")
        assert bystander.poll() is None
    finally:
        if stack.poll() is None:
            stack.kill()
        bystander.kill()


def test_missing_binaries_give_one_line_with_the_install_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(EXECUTABLE), "stack", "--data-dir", str(tmp_path)],
        cwd=tmp_path, env={**os.environ, "PATH": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        "example-service stack: missing prometheus, prometheus-alertmanager, "
        "prometheus-pushgateway; install with: sudo apt-get install -y prometheus "
        "prometheus-alertmanager prometheus-pushgateway\n"
    )


def test_make_stack_installs_only_what_the_stack_runs() -> None:
    """`make stack` checks the stack's three packages, not the test suite's list."""
    dry_run = subprocess.run(
        ["make", "-n", "stack"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    [ensure] = [line for line in dry_run.splitlines() if "ensure-system-packages" in line]
    pairs = ensure.split()[1:]
    assert sorted(pairs) == sorted(f"{binary}={package}" for binary, package in BINARIES.items())
