"""The lab's workflow for real: Prometheus pulls and stores, evaluates recording and alerting
rules, pushes alerts to Alertmanager, which notifies a webhook (docs/contract.md, The monitoring
workflow)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import yaml
from support.lab import RULES, Lab
from support.waiting import wait_for

pytestmark = pytest.mark.e2e


def test_both_replicas_are_scraped_and_up(lab: Lab) -> None:
    def both_up() -> bool:
        result = lab.prometheus.query('up{job="example-service"} == 1')
        return len(result) == 2

    wait_for(both_up, 30, "both replicas up in Prometheus")
    nodes = {s["metric"]["node"] for s in lab.prometheus.query('up{job="example-service"}')}
    assert len(nodes) == 1


def test_request_counts_arrive_exactly(lab: Lab) -> None:
    sent = 0
    for replica in lab.stack.replicas:
        for _ in range(13 if replica is lab.stack.replicas[0] else 8):
            assert httpx.get(f"{replica.url}/abc").status_code == 200
            sent += 1

    def totals() -> tuple[float | None, float | None]:
        return (
            lab.prometheus.value('sum(request_total{job="example-service"})'),
            lab.prometheus.value('sum(request_latency_seconds_count{job="example-service"})'),
        )

    try:
        wait_for(lambda: totals() == (sent, sent), 30, f"sum(request_total) == {sent}")
    except AssertionError:
        raise AssertionError(f"Prometheus says {totals()}, sent {sent}") from None


def test_demo_readings_are_stored(lab: Lab) -> None:
    wait_for(
        lambda: len(lab.prometheus.query("cpu_temperature_celsius == 65.3")) == 2,
        30,
        "the demo temperature from both replicas",
    )
    disks = lab.prometheus.query('hd_errors_total{device="/dev/sda"}')
    assert [float(s["value"][1]) for s in disks] == [1.0, 1.0]
    assert len(lab.prometheus.query("example_service_demo_readings == 1")) == 2


def recorded_names() -> set[str]:
    names = set()
    for path in RULES.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names |= {rule["record"] for rule in group["rules"] if "record" in rule}
    return names


def test_recording_rules_produce_their_series(lab: Lab) -> None:
    wait_for(lambda: len(lab.prometheus.query('up{job="example-service"} == 1')) == 2, 30, "up")
    for replica in lab.stack.replicas:
        httpx.get(f"{replica.url}/abc")
    names = recorded_names()
    assert names

    def missing() -> list[str]:
        return sorted(name for name in names if not lab.prometheus.query(name))

    try:
        wait_for(lambda: not missing(), 60, "every recording rule's series")
    except AssertionError:
        raise AssertionError(f"recording rules without series: {missing()}") from None


def test_replica_down_alert_fires_and_resolves_through_alertmanager(lab: Lab) -> None:
    victim = lab.stack.replicas[0]
    instance = victim.url.removeprefix("http://")
    wait_for(lambda: lab.prometheus.value(f'up{{instance="{instance}"}}') == 1, 30, "victim up")
    victim.kill()

    def fired() -> list[dict[str, object]]:
        return [
            a
            for a in lab.webhook.alerts("firing", "ExampleServiceReplicaDown")
            if a["labels"]["instance"] == instance
        ]

    try:
        alert = wait_for(fired, 60, "ReplicaDown to reach the webhook")[0]
    except AssertionError:
        raise AssertionError(
            "notifications so far: " + json.dumps(lab.webhook.notifications, indent=1)[-3000:]
        ) from None
    assert alert["labels"]["job"] == "example-service"
    assert alert["labels"]["severity"] == "warning"
    assert alert["annotations"]["summary"]
    assert "runbook_url" in alert["annotations"]

    victim.start()
    victim.wait_ready(30)

    def resolved() -> list[dict[str, object]]:
        return [
            a
            for a in lab.webhook.alerts("resolved", "ExampleServiceReplicaDown")
            if a["labels"]["instance"] == instance
        ]

    try:
        wait_for(resolved, 60, "the resolved notification")
    except AssertionError:
        raise AssertionError(
            "notifications so far: " + json.dumps(lab.webhook.notifications, indent=1)[-3000:]
        ) from None


def test_watchdog_reaches_the_dead_mans_switch_receiver_only(lab: Lab) -> None:
    """The always-firing Watchdog goes from the rules through Alertmanager to the webhook, on
    the deadmansswitch receiver, and never on a person's receiver."""

    def watchdog(notification: dict[str, Any]) -> bool:
        return any(
            alert["labels"].get("alertname") == "Watchdog" and alert["status"] == "firing"
            for alert in notification["alerts"]
        )

    def arrived() -> list[dict[str, Any]]:
        return [
            n
            for n in list(lab.webhook.notifications)
            if n["receiver"] == "deadmansswitch" and watchdog(n)
        ]

    try:
        notification = wait_for(arrived, 60, "the Watchdog at the deadmansswitch receiver")[0]
    except AssertionError:
        raise AssertionError(
            "notifications so far: " + json.dumps(lab.webhook.notifications, indent=1)[-3000:]
        ) from None
    assert notification["alerts"][0]["annotations"]["runbook_url"].endswith("#watchdog")
    elsewhere = [n["receiver"] for n in lab.webhook.notifications if watchdog(n)]
    assert set(elsewhere) == {"deadmansswitch"}
