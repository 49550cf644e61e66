"""The Alertmanager configuration: amtool accepts it, every route resolves as its test cases
say, every alert the rules can raise reaches the receiver of its severity, the commented
examples are valid once uncommented, and the inhibition works in a real Alertmanager.

amtool and the server are Debian's (package prometheus-alertmanager, 0.25).
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.binaries import require, run
from support.ports import free_port
from support.processes import running

from example_service.stack.processes import Component

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
ROUTE_CASES = REPO / "deploy" / "alertmanager" / "tests" / "routes.yml"
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
DEFAULT_WEBHOOK_URL = "http://127.0.0.1:5001/"


def route_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(ROUTE_CASES.read_text(encoding="utf-8"))
    return cases


@pytest.fixture(scope="session")
def amtool() -> str:
    return require("amtool", "prometheus-alertmanager")


def check_config(amtool: str, path: Path) -> None:
    result = run(amtool, "check-config", str(path))
    assert result.returncode == 0, f"amtool check-config {path}:\n{result.stdout}{result.stderr}"


def routes_test(amtool: str, labels: dict[str, str], receivers: list[str]) -> None:
    command = [
        amtool,
        "config",
        "routes",
        "test",
        f"--config.file={CONFIG}",
        f"--verify.receivers={','.join(receivers)}",
        *(f"{name}={value}" for name, value in labels.items()),
    ]
    result = run(*command)
    assert result.returncode == 0, (
        f"{labels} should route to {receivers}, amtool says: {result.stdout.strip()}\n"
        f"{result.stderr}"
    )


def test_amtool_check_config(amtool: str) -> None:
    check_config(amtool, CONFIG)


@pytest.mark.parametrize("case", route_cases(), ids=lambda case: case["name"])
def test_route(amtool: str, case: dict[str, Any]) -> None:
    routes_test(amtool, {k: str(v) for k, v in case["labels"].items()}, case["receivers"])


def walk_routes(route: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield route
    for child in route.get("routes", []):
        yield from walk_routes(child)


def test_every_route_has_a_case() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    in_tree = {route["receiver"] for route in walk_routes(config["route"]) if "receiver" in route}
    in_cases = {receiver for case in route_cases() for receiver in case["receivers"]}
    assert in_tree <= in_cases, f"routes without a test case: {sorted(in_tree - in_cases)}"


def alert_label_sets() -> Iterator[tuple[str, dict[str, str]]]:
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    yield rule["alert"], {"alertname": rule["alert"], **rule["labels"]}


@pytest.mark.parametrize(
    "labels", [labels for _, labels in alert_label_sets()], ids=[n for n, _ in alert_label_sets()]
)
def test_every_alert_reaches_its_severity_receiver(amtool: str, labels: dict[str, str]) -> None:
    # The receivers are named after the severities they serve; the heartbeat's is the dead
    # man's switch.
    receiver = "deadmansswitch" if labels["severity"] == "none" else labels["severity"]
    routes_test(amtool, {"job": "example-service", **labels}, [receiver])


def test_webhook_url_is_written_once() -> None:
    """The local stack and the end-to-end test point every receiver elsewhere by replacing
    one literal; YAML aliases carry it to the other receivers."""
    text = CONFIG.read_text(encoding="utf-8")
    assert text.count(DEFAULT_WEBHOOK_URL) == 1
    config = yaml.safe_load(text)
    urls = [
        webhook["url"]
        for receiver in config["receivers"]
        for webhook in receiver.get("webhook_configs", [])
    ]
    assert len(config["receivers"]) == len(urls), "every receiver has a webhook"
    assert set(urls) == {DEFAULT_WEBHOOK_URL}


def uncomment_examples(text: str) -> str:
    """Uncomment the lines between `# --- example-begin` and `# --- example-end` markers."""
    out, inside = [], False
    for line in text.splitlines():
        marker = line.strip()
        if marker.startswith("# --- example-begin"):
            inside = True
            continue
        if marker.startswith("# --- example-end"):
            inside = False
            continue
        out.append(re.sub(r"^(\s*)# ?", r"\1", line, count=1) if inside else line)
    assert not inside, "unterminated example block"
    return "\n".join(out) + "\n"


def test_commented_examples_are_valid(amtool: str, tmp_path: Path) -> None:
    text = uncomment_examples(CONFIG.read_text(encoding="utf-8"))
    config = yaml.safe_load(text)
    kinds = {key for receiver in config["receivers"] for key in receiver if key != "name"}
    assert {"email_configs", "slack_configs"} <= kinds, "examples should show email and Slack"
    path = tmp_path / "alertmanager-examples.yml"
    path.write_text(text, encoding="utf-8")
    check_config(amtool, path)


# --- the inhibition, in a real Alertmanager ---


def http_json(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = require("prometheus-alertmanager", "prometheus-alertmanager")
    address = f"127.0.0.1:{free_port()}"
    command = [
        binary,
        f"--config.file={CONFIG}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address={address}",
        # No gossip: a lone instance, and no port 9094 to collide with.
        "--cluster.listen-address=",
    ]
    server = Component(
        "alertmanager", command, f"http://{address}", "/-/ready", tmp_path / "alertmanager.log"
    )
    with running(server):
        yield server.url


def alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": severity, "job": "example-service", **labels},
        "annotations": {"summary": "inhibition test"},
        "generatorURL": "http://127.0.0.1:9090/graph",
    }


def test_inhibition(alertmanager: str) -> None:
    replica_a = {"instance": "127.0.0.1:5566", "node": "lab"}
    replica_b = {"instance": "127.0.0.1:5567", "node": "lab"}
    # (alert, whether the inhibition must suppress it)
    cases = [
        # Two levels of one symptom: the critical suppresses the warning.
        (alert("ExampleServiceErrorBudgetBurn", "critical", route="/abc"), False),
        (alert("ExampleServiceErrorBudgetBurn", "warning", route="/abc"), True),
        # Same alert, different replica: not the same thing, no suppression.
        (alert("ExampleServiceMemoryNearLimit", "critical", **replica_a), False),
        (alert("ExampleServiceMemoryNearLimit", "warning", **replica_b), False),
        # A warning without its critical twin stays.
        (alert("ExampleServiceLatencyBudgetBurn", "warning"), False),
        # Every replica gone: the per-replica alerts add nothing.
        (alert("ExampleServiceAllReplicasDown", "critical"), False),
        (alert("ExampleServiceReplicaDown", "warning", **replica_a), True),
        # Another service's replica is not covered by this one's AllReplicasDown.
        (alert("ExampleServiceReplicaDown", "warning", **replica_b, job="other"), False),
        # Per namespace: prod down silences prod's replica and capacity warnings, never
        # staging's.
        (alert("ExampleServiceAllReplicasDown", "critical", namespace="prod"), False),
        (alert("ExampleServiceReplicaDown", "warning", **replica_a, namespace="prod"), True),
        (alert("ExampleServiceReplicasBelowFloor", "warning", namespace="prod"), True),
        (alert("ExampleServiceCrashLooping", "warning", **replica_b, namespace="prod"), True),
        (alert("ExampleServiceReplicaDown", "warning", **replica_a, namespace="staging"), False),
        (alert("ExampleServiceReplicasBelowFloor", "warning", namespace="staging"), False),
        # Not a capacity alert of that deployment: stays.
        (alert("ExampleServiceOOMKills", "warning", **replica_a, namespace="prod"), False),
    ]
    http_json(f"{alertmanager}/api/v2/alerts", [a for a, _ in cases])

    def key(labels: dict[str, str]) -> str:
        return json.dumps(labels, sort_keys=True)

    expected = {key(a["labels"]): suppressed for a, suppressed in cases}
    seen: dict[str, bool] = {}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        seen = {
            key(a["labels"]): bool(a["status"]["inhibitedBy"])
            for a in http_json(f"{alertmanager}/api/v2/alerts")
        }
        if seen == expected:
            break
        time.sleep(0.2)
    wrong = {
        k: f"suppressed={seen.get(k)}, expected {v}"
        for k, v in expected.items()
        if seen.get(k) != v
    }
    assert not wrong, "inhibition:\n" + "\n".join(f"{k}: {v}" for k, v in wrong.items())
