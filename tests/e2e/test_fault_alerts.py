"""Fault injection makes the error budget's page fire through Alertmanager and the latency
recording rule rise; both settle once the faults are off."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator

import httpx
import pytest
from support.lab import Lab
from support.waiting import wait_for

pytestmark = pytest.mark.e2e

ERROR_BUDGET = "ExampleServiceErrorBudgetBurn"
P99 = 'job_quantile:request_latency_seconds:histogram_quantile_rate5m{quantile="0.99"}'


@pytest.fixture
def traffic(lab: Lab) -> Iterator[None]:
    """Steady /abc traffic to every replica from a few threads, until the test ends."""
    stop = threading.Event()

    def send() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                for replica in list(lab.stack.replicas):
                    # A replica being restarted refuses connections for a moment.
                    with contextlib.suppress(httpx.HTTPError):
                        client.get(f"{replica.url}/abc")

    threads = [threading.Thread(target=send, daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    yield
    stop.set()
    for thread in threads:
        thread.join(30)


def notified(lab: Lab, status: str) -> list[dict[str, object]]:
    return [
        a for a in lab.webhook.alerts(status, ERROR_BUDGET) if a["labels"]["severity"] == "critical"
    ]  # type: ignore[index]


def test_faults_fire_the_error_budget_page_and_raise_p99_then_resolve(
    lab: Lab, traffic: None
) -> None:
    lab.stack.restart_replica(0, ("--fault-error-ratio", "0.5", "--fault-latency-ms", "1500"))
    try:
        wait_for(lambda: notified(lab, "firing"), 90, "the error budget's page at the webhook")
    except AssertionError:
        raise AssertionError(json.dumps(lab.webhook.notifications, indent=1)[-3000:]) from None
    wait_for(lambda: (lab.prometheus.value(P99) or 0) > 1, 60, "the p99 recording rule above 1 s")
    # The inhibition: while the page fires, its ticket twin is not sent.
    warnings = [
        a
        for a in lab.webhook.alerts("firing", ERROR_BUDGET)
        if a["labels"]["severity"] == "warning"  # type: ignore[index]
    ]
    assert warnings == []

    lab.stack.restart_replica(0)
    wait_for(lambda: notified(lab, "resolved"), 90, "the resolved notification")
    wait_for(lambda: (lab.prometheus.value(P99) or 0) < 1, 60, "the p99 back under 1 s")
