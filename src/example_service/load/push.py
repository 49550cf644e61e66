"""The run summary, pushed to a Pushgateway as a batch job's last words.

PUT (prometheus-client's push_to_gateway) replaces every series of the group
{job, instance}: a second run's figures replace the first's instead of adding to them, and
an HTTP status code seen only in the first run disappears.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, push_to_gateway
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from example_service.load.stats import Outcome
from example_service.load.summary import Summary

DEFAULT_JOB = "example-service-load"
PREFIX = "example_service_load"
PUSH_TIMEOUT = 10.0


def default_instance() -> str:
    return socket.gethostname()


@dataclass(frozen=True)
class Gateway:
    url: str
    job: str = DEFAULT_JOB
    instance: str = ""  # empty: this machine's hostname

    @property
    def grouping_key(self) -> dict[str, str]:
        return {"instance": self.instance or default_instance()}


class PushError(Exception):
    pass


class SummaryCollector(Collector):
    """The summary's figures as metric families, built fresh for each collection.

    Families are built by hand rather than with Counter/Gauge objects so that no
    `_created` series is pushed: when the run happened is its own gauge.
    """

    def __init__(self, summary: Summary) -> None:
        self.summary = summary

    def collect(self) -> Iterator[Metric]:
        summary = self.summary
        requests = CounterMetricFamily(
            f"{PREFIX}_requests",
            "Requests the last load run sent, by how they ended.",
            labels=["outcome"],
        )
        # Every outcome, zeros included, so a query for one never finds it missing.
        for outcome in Outcome:
            requests.add_metric([str(outcome)], summary.outcomes[outcome])
        yield requests

        responses = CounterMetricFamily(
            f"{PREFIX}_responses",
            "HTTP answers the last load run received, by status code.",
            labels=["code"],
        )
        for code, count in summary.codes.items():
            responses.add_metric([str(code)], count)
        yield responses

        latency = summary.latency
        # A summary type: client-side quantiles with _sum and _count, which is what these
        # are (nearest-rank quantiles over every answer of the run, within 0.4 %).
        quantiles = Metric(
            f"{PREFIX}_latency_seconds",
            "Latency of the last load run's requests that got an HTTP answer.",
            "summary",
        )
        for q, value in latency.quantiles.items():
            quantiles.add_sample(f"{PREFIX}_latency_seconds", {"quantile": f"{q:g}"}, value)
        quantiles.add_sample(f"{PREFIX}_latency_seconds_sum", {}, latency.sum)
        quantiles.add_sample(f"{PREFIX}_latency_seconds_count", {}, latency.count)
        yield quantiles

        gauges = (
            ("duration_seconds", "Wall time of the last load run.", summary.times.elapsed),
            (
                "requests_per_second",
                "Requests the last load run finished per second of its wall time.",
                summary.requests_per_second,
            ),
            (
                "last_run_timestamp_seconds",
                "Unix time at which the last load run finished.",
                summary.times.finished_at,
            ),
            (
                "interrupted",
                "1 if the last load run was stopped by a signal before its limit, else 0.",
                float(summary.times.stopped_by == "interrupt"),
            ),
        )
        for name, help_text, value in gauges:
            yield GaugeMetricFamily(f"{PREFIX}_{name}", help_text, value=value)


def push(summary: Summary, gateway: Gateway) -> None:
    """PUT the summary to the gateway's group {job, instance}; PushError if that fails."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SummaryCollector(summary))
    try:
        push_to_gateway(
            gateway.url,
            job=gateway.job,
            registry=registry,
            grouping_key=gateway.grouping_key,
            timeout=PUSH_TIMEOUT,
        )
    # urllib raises URLError and HTTPError (OSErrors), and ValueError for a malformed URL.
    except (OSError, ValueError) as error:
        raise PushError(f"push to {gateway.url} failed: {error}") from error
