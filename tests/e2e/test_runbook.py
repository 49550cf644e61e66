"""Every command in docs/runbook.md's shell blocks runs against the local stack's Prometheus
and Alertmanager, as written: a command that curl, the shell or Prometheus rejects fails."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from support import binaries
from support.lab import REPO, Lab

pytestmark = pytest.mark.e2e

RUNBOOK = REPO / "docs" / "runbook.md"
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
VARIABLES = ("$PROM", "$ALERTMANAGER")


def runbook_commands() -> list[str]:
    text = RUNBOOK.read_text(encoding="utf-8")
    lines = [
        line.strip()
        for block in SHELL_BLOCK.findall(text)
        for line in block.replace("\\\n", " ").splitlines()
    ]
    return [line for line in lines if line and not line.startswith("#")]


def run(lab: Lab, command: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "PROM": lab.stack.prometheus.url,
        "ALERTMANAGER": lab.stack.alertmanager.url,
    }
    return binaries.run("bash", "-o", "pipefail", "-c", command, env=environment, timeout=30)


def test_every_command_against_prometheus_is_in_a_tested_block() -> None:
    """Commands to $PROM or $ALERTMANAGER written inline would escape the test below."""
    text = SHELL_BLOCK.sub("", RUNBOOK.read_text(encoding="utf-8"))
    # A variable named on its own is prose; with anything else it is a command.
    inline = [
        code
        for code in INLINE_CODE.findall(text)
        if any(v in code for v in VARIABLES) and code not in VARIABLES
    ]
    assert not inline, f"commands outside a ```sh block: {inline}"
    commands = runbook_commands()
    assert len(commands) >= 20
    assert all(any(v in command for v in VARIABLES) for command in commands), commands


@pytest.mark.parametrize("command", runbook_commands())
def test_runbook_command_runs(lab: Lab, command: str) -> None:
    result = run(lab, command)
    assert result.returncode == 0, f"{command}\nexit {result.returncode}: {result.stderr}"
    answer = json.loads(result.stdout)
    if isinstance(answer, dict) and "status" in answer:
        assert answer["status"] == "success", f"{command}\n{result.stdout[:2000]}"


def test_the_harness_catches_a_query_curl_mangles(lab: Lab) -> None:
    """The kind of command issue 23 found: curl reads the braces as a URL pattern, and
    Prometheus gets a query it rejects. Run the same way, it fails."""
    broken = 'curl -fsS "$PROM/api/v1/query?query=up{job=\\"example-service\\"}"'
    assert run(lab, broken).returncode != 0
