"""The lab on loopback for end-to-end tests: replicas, Prometheus, Alertmanager, a webhook.

The rules and the Alertmanager configuration are the repository's, with their timings
shortened (every `for` and Alertmanager's grouping waits) so a test sees an alert fire and
resolve in seconds; the expressions, labels, routes and receivers are untouched.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from example_service.stack.components import Stack, StackOptions
from example_service.stack.config import Intervals
from support.ports import free_ports
from support.prometheus_api import PrometheusAPI
from support.service import EXECUTABLE
from support.webhook import WebhookReceiver

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "rules"
ALERTMANAGER = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
SHORT_FOR = "2s"
# Range windows too ([5m], [30m]): with a 1 s scrape a 15 s window holds enough samples, and
# an alert then resolves seconds after its cause ends rather than minutes.
SHORT_WINDOW = "[15s]"
_WINDOW = re.compile(r"\[[0-9]+[mh]\]")


def shortened_rules(target: Path) -> Path:
    target.mkdir()
    for source in sorted(RULES.glob("*.yml")):
        document = yaml.safe_load(source.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = SHORT_FOR
                rule["expr"] = _WINDOW.sub(SHORT_WINDOW, str(rule["expr"]))
        (target / source.name).write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def shortened_alertmanager(target: Path) -> Path:
    # A text edit keeps the YAML anchors the stack relies on to replace the webhook URL. The
    # whole line goes, the stack's `# stack:` value with it, so these 1 s timings stay.
    text = ALERTMANAGER.read_text()
    text = re.sub(r"(?m)^(\s*)group_wait: .*$", r"\1group_wait: 1s", text)
    text = re.sub(r"(?m)^(\s*)group_interval: .*$", r"\1group_interval: 1s", text)
    target.write_text(text)
    return target


@dataclass
class Lab:
    stack: Stack
    prometheus: PrometheusAPI
    global_prometheus: PrometheusAPI
    webhook: WebhookReceiver


def start_lab(base: Path) -> Lab:
    """Two demo-reading replicas, Prometheus and Alertmanager with 1 s intervals, started."""
    webhook = WebhookReceiver()
    ports = free_ports(6)
    stack = Stack(
        StackOptions(
            replica_ports=(ports[0], ports[1]),
            prometheus_port=ports[2],
            alertmanager_port=ports[3],
            pushgateway_port=ports[4],
            global_prometheus_port=ports[5],
            data_dir=base / "data",
            rules_dir=shortened_rules(base / "rules"),
            alertmanager_config=shortened_alertmanager(base / "alertmanager.yml"),
            webhook_url=webhook.url,
            intervals=Intervals(scrape="1s", evaluation="1s"),
            replica_args=("--demo-readings", "on"),
        )
    )
    try:
        stack.start()
    except BaseException:
        webhook.close()
        raise
    assert stack.global_prometheus is not None
    return Lab(
        stack,
        PrometheusAPI(stack.prometheus.url),
        PrometheusAPI(stack.global_prometheus.url),
        webhook,
    )


def stop_lab(lab: Lab) -> None:
    lab.stack.stop()
    lab.webhook.close()


def consecutive_free_ports(count: int, attempts: int = 100) -> int:
    """The first of count consecutive loopback ports nobody listens on."""
    for _ in range(attempts):
        with contextlib.ExitStack() as held:
            first = held.enter_context(socket.socket())
            first.bind(("127.0.0.1", 0))
            start = int(first.getsockname()[1])
            try:
                for port in range(start + 1, start + count):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
            return start
    raise AssertionError(f"no {count} consecutive free ports in {attempts} tries")


class StackCommand:
    """`example-service stack` run as a user runs it, on free ports, its console collected."""

    def __init__(self, base: Path, *extra: str, replicas: int = 2) -> None:
        # The replicas' ports follow --first-port: a run of them, all free.
        first = consecutive_free_ports(replicas)
        ports = [*range(first, first + replicas), *free_ports(4)]
        self.data_dir = base / "data"
        self.elsewhere = base / "elsewhere"
        self.elsewhere.mkdir()
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [str(EXECUTABLE), "stack", "--replicas", str(replicas),
             "--first-port", str(ports[0]), "--prometheus-port", str(ports[replicas]),
             "--alertmanager-port", str(ports[replicas + 1]),
             "--pushgateway-port", str(ports[replicas + 2]),
             "--webhook-port", str(ports[replicas + 3]), "--data-dir", str(self.data_dir),
             *extra],
            # Anywhere but the repository: the stack finds its rules and configuration itself.
            cwd=self.elsewhere, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.wait_line("Ctrl-C stops everything.", 60)
        except BaseException:
            self.stop()
            raise
        # The table: a header, a row per component, an empty line.
        end = self.lines.index("")
        self.rows = {row.split()[0]: row.split() for row in self.lines[1:end]}

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, text: str, timeout: float, after: int = 0) -> int:
        """The index of the first console line from `after` on that contains text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index in range(after, len(self.lines)):
                if text in self.lines[index]:
                    return index
            if self.process.poll() is not None:
                raise AssertionError("the stack exited:\n" + "\n".join(self.lines))
            time.sleep(0.05)
        raise AssertionError(
            f"no {text!r} on the stack's console after {timeout} s:\n" + "\n".join(self.lines)
        )

    def url(self, component: str) -> str:
        return self.rows[component][2]

    def pid(self, component: str) -> int:
        return int(self.rows[component][1])

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A second `example-service stack ...` against this one, as a user would type it."""
        return subprocess.run(
            [str(EXECUTABLE), "stack", *args, "--data-dir", str(self.data_dir)],
            cwd=self.elsewhere, capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip

    def stop(self) -> None:
        """SIGTERM, as Ctrl-C, so that the stack stops its components; SIGKILL would leave
        them running, each in its own session."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
