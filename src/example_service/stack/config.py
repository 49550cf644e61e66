"""The configuration files the stack generates for Prometheus and Alertmanager.

Prometheus' configuration is written as JSON, which is YAML too: no YAML library needed.
The rule files and the Alertmanager configuration are the repository's own, used in place.
"""

from __future__ import annotations

import json
import re
import socket
from dataclasses import dataclass
from pathlib import Path

SERVICE_JOB = "example-service"
# The one webhook URL of deploy/alertmanager/alertmanager.yml, written behind this anchor.
_WEBHOOK_ANCHOR = re.compile(r"(url:\s*&webhook_url\s+)(\S+)")
# A timing of Alertmanager's whose line ends in `# stack: VALUE` runs with VALUE on the local
# stack: the cluster's value and the local one side by side, in the one file. Only lines so
# marked change, so a route that sets its own timings on purpose keeps them.
_LOCAL_TIMING = re.compile(
    r"(?m)^(\s*(?:group_wait|group_interval|repeat_interval):\s*)(\S+)\s*#\s*stack:\s*(\S+).*$"
)


@dataclass(frozen=True)
class Intervals:
    scrape: str = "5s"
    evaluation: str = "5s"


# Every series this Prometheus sends on (alerts, federation) carries this label, so a global
# Prometheus or an Alertmanager fed by several can tell where a series comes from.
SOURCE_LABEL = "prometheus"
# What the global Prometheus federates: every recording rule (their names hold a colon) and
# the lab's four families.
FEDERATE_MATCH = (
    '{__name__=~".+:.+"}',
    '{__name__=~"request_total|request_latency_seconds_.*|cpu_temperature_celsius|hd_errors_total"}',
)


@dataclass(frozen=True)
class Addresses:
    """host:port of each component the lab's Prometheus talks to, itself included."""

    replicas: list[str]
    prometheus: str
    alertmanager: str
    pushgateway: str


def _static(job: str, targets: list[str], **extra: object) -> dict[str, object]:
    return {"job_name": job, "static_configs": [{"targets": targets}], **extra}


def prometheus_config(
    addresses: Addresses,
    rule_files: list[Path],
    intervals: Intervals,
    name: str = "lab",
    node: str | None = None,
) -> str:
    """Scrape the replicas (with a node label, as the in-cluster relabelling adds), itself,
    Alertmanager and the Pushgateway; evaluate the rules; send alerts to Alertmanager."""
    replicas = _static(SERVICE_JOB, addresses.replicas)
    replicas["static_configs"] = [
        {"targets": addresses.replicas, "labels": {"node": node or socket.gethostname()}}
    ]
    config = {
        "global": {
            "scrape_interval": intervals.scrape,
            "evaluation_interval": intervals.evaluation,
            "external_labels": {SOURCE_LABEL: name},
        },
        "rule_files": [str(path.resolve()) for path in rule_files],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [addresses.alertmanager]}]}]
        },
        "scrape_configs": [
            replicas,
            _static("prometheus", [addresses.prometheus]),
            _static("alertmanager", [addresses.alertmanager]),
            # Pushed series carry their own job and instance (the pushing batch job's).
            _static("pushgateway", [addresses.pushgateway], honor_labels=True),
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def federation_config(source: str, intervals: Intervals) -> str:
    """A global Prometheus that pulls the lab's aggregates from the lab's Prometheus."""
    config = {
        "global": {
            "scrape_interval": intervals.scrape,
            "external_labels": {SOURCE_LABEL: "global"},
        },
        "scrape_configs": [
            # honor_labels keeps the source's job, instance and external label as they are.
            _static(
                "federate",
                [source],
                honor_labels=True,
                metrics_path="/federate",
                params={"match[]": list(FEDERATE_MATCH)},
            )
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def webhook_url(source: Path) -> str | None:
    """The URL on the configuration's `&webhook_url` line, if it has one."""
    match = _WEBHOOK_ANCHOR.search(source.read_text())
    return match.group(2) if match else None


def local_timings(text: str) -> str:
    """The configuration with each timing marked `# stack: VALUE` set to VALUE."""
    return _LOCAL_TIMING.sub(
        lambda m: f"{m.group(1)}{m.group(3)}  # the stack's value; in a cluster {m.group(2)}", text
    )


def alertmanager_config(source: Path, webhook_url: str | None) -> str:
    """The repository's Alertmanager configuration with the stack's local timings, its
    webhook URL replaced if asked."""
    text = local_timings(source.read_text())
    if webhook_url is None:
        return text
    replaced, count = _WEBHOOK_ANCHOR.subn(lambda m: m.group(1) + webhook_url, text)
    if count != 1:
        raise ValueError(f"{source} has no single '&webhook_url' anchor to point elsewhere")
    return replaced
