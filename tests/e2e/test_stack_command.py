"""`example-service stack` itself: what it starts, its table, and Ctrl-C stopping exactly that;
run from a directory that is not the repository, with the rules and the Alertmanager
configuration it ships as package data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from support.lab import ALERTMANAGER, REPO, RULES, StackCommand
from support.ports import free_ports
from support.service import EXECUTABLE
from support.waiting import wait_for

from example_service.stack.components import BINARIES
from example_service.stack.config import local_timings

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
    bystander = subprocess.Popen(["sleep", "120"])
    stack = StackCommand(tmp_path, "--federate", "--global-prometheus-port", str(free_ports(1)[0]))
    try:
        assert list(stack.rows) == [
            "replica-1", "replica-2", "pushgateway", "webhook-receiver", "alertmanager",
            "prometheus", "global-prometheus",
        ]  # fmt: skip
        pids = [stack.pid(name) for name in stack.rows]
        assert all(alive(pid) for pid in pids)
        for name in stack.rows:
            assert httpx.get(stack.url(name) + "/", timeout=5).status_code < 600
        prometheus, alertmanager = stack.url("prometheus"), stack.url("alertmanager")
        # The base URL, the runbook's $PROM, on a line of its own; the graph page beside it.
        assert f"Prometheus: {prometheus}  (the runbook's $PROM; graphs at {prometheus}/graph)" in (
            stack.lines
        )
        assert (stack.data_dir / "prometheus.yml").exists()
        answer = httpx.get(f"{prometheus}/api/v1/rules", timeout=5).json()
        assert {group["name"] for group in answer["data"]["groups"]} == rule_groups()
        status = httpx.get(f"{alertmanager}/api/v2/status", timeout=5).json()
        loaded = yaml.safe_load(status["config"]["original"])
        shipped = yaml.safe_load(ALERTMANAGER.read_text())
        assert [r["name"] for r in loaded["receivers"]] == [r["name"] for r in shipped["receivers"]]
        # The stack's receiver is where Alertmanager sends.
        receiver = stack.url("webhook-receiver")
        assert {
            config["url"] for r in loaded["receivers"] for config in r.get("webhook_configs", [])
        } == {receiver + "/"}

        stack.process.send_signal(signal.SIGINT)
        assert stack.process.wait(60) == 0
        wait_for(lambda: not any(alive(pid) for pid in pids), 10, "every component to exit")
        assert bystander.poll() is None
        assert not (stack.data_dir / "control.sock").exists()
    finally:
        stack.stop()
        bystander.kill()


def test_local_timings_replace_exactly_the_marked_values() -> None:
    """Each `# stack: VALUE` timing runs with VALUE, the cluster's beside it; every other line,
    an unmarked timing included (a Watchdog route's, say), is the file's own."""
    text = (
        ALERTMANAGER.read_text() + "  - matchers: [alertname=Watchdog]\n    repeat_interval: 1m\n"
    )
    timing = re.compile(
        r"\s*(group_wait|group_interval|repeat_interval):\s*(\S+)\s*# stack: (\S+)$"
    )
    local = local_timings(text).splitlines()
    assert len(local) == len(text.splitlines())
    marked = 0
    for line, rewritten in zip(text.splitlines(), local, strict=True):
        if match := timing.fullmatch(line):
            key, cluster, value = match.groups()
            indent = line[: line.index(key)]
            assert (
                rewritten == f"{indent}{key}: {value}  # the stack's value; in a cluster {cluster}"
            )
            marked += 1
        else:
            assert rewritten == line
    assert marked >= 3, "alertmanager.yml marks the route's three timings at least"


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


def test_a_data_dir_too_long_for_the_control_socket_is_refused_before_anything_starts(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 100)
    result = subprocess.run(
        [str(EXECUTABLE), "stack", "--data-dir", str(deep), "--first-port", "1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        f"example-service stack: {deep / 'control.sock'} is too long for a unix socket "
        "(107 bytes at most); give a shorter --data-dir\n"
    )
    assert not (deep / "logs").exists()
