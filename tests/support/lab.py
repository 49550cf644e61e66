"""The lab on loopback for end-to-end tests: replicas, Prometheus, Alertmanager, a webhook.

The rules and the Alertmanager configuration are the repository's, with their timings
shortened (every `for` and Alertmanager's grouping waits) so a test sees an alert fire and
resolve in seconds; the expressions, labels, routes and receivers are untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from example_service.stack.config import Intervals
from example_service.stack.lab import Stack, StackOptions
from support.ports import free_ports
from support.prometheus_api import PrometheusAPI
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
    # A text edit keeps the YAML anchors the stack relies on to replace the webhook URL.
    text = ALERTMANAGER.read_text()
    text = re.sub(r"(?m)^(\s*)group_wait: \S+", r"\1group_wait: 1s", text)
    text = re.sub(r"(?m)^(\s*)group_interval: \S+", r"\1group_interval: 1s", text)
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
