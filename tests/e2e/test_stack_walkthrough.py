"""docs/stack.md's walkthrough on the real `example-service stack`: a replica killed comes back on
its own; a replica broken on purpose crash-loops, its alert reaches the stack's webhook
receiver, the replica comes back on `restore` and the resolved notification follows; faults
on /abc reach the replica; SIGTERM stops it all.

The stack runs its own Alertmanager configuration (the repository's, with the local timings
it marks) and its own receiver; only the rules' `for` and windows are shortened, as for the
other end-to-end tests, so the walk takes seconds rather than the rules' minute.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.lab import StackCommand, shortened_rules
from support.service import EXECUTABLE
from support.waiting import wait_for

pytestmark = pytest.mark.e2e


def notifications(stack: StackCommand) -> list[dict[str, Any]]:
    """What the stack's receiver wrote, one JSON notification per line."""
    log = stack.data_dir / "logs" / "notifications.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def alert(stack: StackCommand, status: str, alertname: str, instance: str) -> dict[str, Any]:
    for notification in notifications(stack):
        for each in notification["alerts"]:
            labels = each["labels"]
            if (each["status"], labels["alertname"], labels.get("instance")) == (
                status,
                alertname,
                instance,
            ):
                return each
    return {}


def exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"


@pytest.fixture
def stack(tmp_path: Path) -> Any:
    rules = shortened_rules(tmp_path / "rules")
    running = StackCommand(
        tmp_path, "--rules-dir", str(rules), "--scrape-interval", "1s",
        "--evaluation-interval", "1s",
    )  # fmt: skip
    try:
        yield running
    finally:
        running.stop()


def test_break_a_replica_see_the_alert_and_its_resolution(stack: StackCommand) -> None:
    # The banner says where notifications go, and the receiver is there.
    log = stack.data_dir.resolve() / "logs" / "notifications.log"
    assert any(line.startswith("Notifications: ") and str(log) in line for line in stack.lines)

    # A replica that exits is started again, and the console says so; the stack goes on.
    first = stack.pid("replica-1")
    os.kill(first, signal.SIGKILL)
    mark = stack.wait_line("replica-1 exited (killed by SIGKILL)", 10)
    assert "restarting in 1 s" in stack.lines[mark]
    stack.wait_line("replica-1 is back: ready at " + stack.url("replica-1"), 30, mark)
    assert httpx.get(stack.url("replica-1") + "/readyz", timeout=5).status_code == 200

    # Broken on purpose, replica 2 crash-loops with a growing back-off...
    broken = stack.run("break", "2", "--crash")
    assert broken.returncode == 0, broken.stderr
    assert "replica-2 restarted with --num 0" in broken.stdout
    start = len(stack.lines)
    stack.wait_line("replica-2 exited (exit status 2)", 10, start)
    stack.wait_line("restarting in 2 s (back-off, exit 2 in a row", 15, start)
    # ...its alert fires and reaches the receiver, and the console shows it.
    instance = stack.url("replica-2").removeprefix("http://")
    firing = wait_for(
        lambda: alert(stack, "firing", "ExampleServiceReplicaDown", instance),
        45,
        "the firing notification at the stack's receiver",
    )
    assert firing["labels"]["severity"] == "warning"
    stack.wait_line("notification to warning: FIRING ExampleServiceReplicaDown", 5, start)

    # Restored, it comes back at once; the resolved notification follows within the stack's
    # group_interval (seconds, where a cluster's is minutes).
    restored = stack.run("restore", "2")
    assert restored.returncode == 0, restored.stderr
    assert "replica-2 restarted as configured" in restored.stdout
    restore = stack.wait_line("replica-2 restarted as configured", 5, start)
    assert httpx.get(stack.url("replica-2") + "/readyz", timeout=5).status_code == 200
    wait_for(
        lambda: alert(stack, "resolved", "ExampleServiceReplicaDown", instance),
        30,
        "the resolved notification at the stack's receiver",
    )
    stack.wait_line("notification to warning: RESOLVED ExampleServiceReplicaDown", 5, start)
    # Once restored it stays up: no exit after the restore.
    assert not [line for line in stack.lines[restore:] if "replica-2 exited" in line]

    # SIGTERM, as Ctrl-C: everything stops, status 0.
    pids = [stack.pid(name) for name in stack.rows if name != "replica-1"]
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(60) == 0
    wait_for(lambda: all(exited(pid) for pid in pids), 10, "every component to exit")


def test_faults_reach_the_replica_and_restore_removes_them(stack: StackCommand) -> None:
    url = stack.url("replica-1") + "/abc"
    with httpx.Client(timeout=10) as client:
        assert {client.get(url).status_code for _ in range(20)} == {200}
        broken = stack.run("break", "1", "--error-ratio", "0.5", "--latency", "100")
        assert broken.returncode == 0, broken.stderr
        assert "--fault-error-ratio 0.5 --fault-latency-ms 100" in broken.stdout
        started = time.monotonic()
        statuses = [client.get(url).status_code for _ in range(30)]
        # Each request waits its 100 ms at least: the fault's floor, not a measured speed.
        assert time.monotonic() - started >= 30 * 0.1
        # At 0.5, thirty answers without a 500 (or without a 200) come once in 10^9 runs.
        assert set(statuses) == {200, 500}

        restored = stack.run("restore", "1")
        assert restored.returncode == 0, restored.stderr
        assert {client.get(url).status_code for _ in range(20)} == {200}


def test_bad_requests_get_a_clear_answer_and_change_nothing(stack: StackCommand) -> None:
    pid = stack.pid("replica-2")
    for args, error in [
        (["break", "3", "--crash"], "no replica 3: the stack runs 1 to 2"),
        (["break", "0", "--crash"], "no replica 0"),
        (["break", "2"], "say how to break it"),
        (["break", "2", "--error-ratio", "1.5"], "'1.5' is not a share above 0 and at most 1"),
        (["break", "2", "--latency", "fast"], "'fast' is not milliseconds"),
    ]:
        result = stack.run(*args)
        assert result.returncode != 0 and error in result.stderr, (args, result.stderr)
    # Only the stack's own user may connect.
    assert (stack.data_dir / "control.sock").stat().st_mode & 0o777 == 0o600
    # A client that speaks nonsense, or too much of it, on the socket gets one line back.
    for sent in [b"not json\n", b"[1, 2]\n", b"{" + b" " * 10_000 + b"}\n"]:
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(stack.data_dir / "control.sock"))
            raw.sendall(sent)
            reply = json.loads(raw.makefile("rb").readline())
        assert reply == {"ok": False, "message": "not a JSON object on one line"}
    for body, error in [
        ({"command": "break", "replica": True, "crash": True}, "no replica True"),
        ({"command": "break", "replica": 2, "error_ratio": "NaN"}, "error_ratio must be"),
        ({"command": "break", "replica": 2, "latency": "-5"}, "latency must be milliseconds"),
        ({"command": "reboot", "replica": 2}, "the stack knows `break` and `restore`"),
    ]:
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(stack.data_dir / "control.sock"))
            raw.sendall(json.dumps(body).encode() + b"\n")
            reply = json.loads(raw.makefile("rb").readline())
        assert not reply["ok"] and error in reply["message"], (body, reply)
    assert stack.pid("replica-2") == pid and not exited(pid)
    # Requests at once are carried out one by one, each answered; a client that connects and
    # says nothing is let go without holding anything up.
    with socket.socket(socket.AF_UNIX) as silent:
        silent.connect(str(stack.data_dir / "control.sock"))
        command = [str(EXECUTABLE), "stack", "break", "--error-ratio", "0.5"]
        command += ["--data-dir", str(stack.data_dir)]
        breaks = [
            subprocess.Popen([*command, str(n)], stdout=subprocess.PIPE, text=True)
            for n in (1, 2, 1, 2)
        ]
        for each in breaks:
            out, _ = each.communicate(timeout=90)
            assert each.returncode == 0 and "restarted with --fault-error-ratio 0.5" in out
        silent.settimeout(30)
        assert silent.recv(1) == b""
    # A second stack on the same data directory is refused before it starts anything.
    second = stack.run()
    assert second.returncode == 1
    assert "a stack already runs with the data directory" in second.stderr
    # With no stack running, the client says so and how to start one.
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(60) == 0
    gone = stack.run("restore", "1")
    assert gone.returncode == 1 and "no stack is running with the data directory" in gone.stderr
