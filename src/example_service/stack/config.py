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


@dataclass(frozen=True)
class Intervals:
    scrape: str = "5s"
    evaluation: str = "5s"


def prometheus_config(
    replicas: list[str],
    alertmanager: str,
    rule_files: list[Path],
    intervals: Intervals,
    node: str | None = None,
) -> str:
    """Scrape the replicas (with a node label, as the in-cluster relabelling adds), itself
    and Alertmanager; evaluate the rules; send alerts to Alertmanager."""
    config = {
        "global": {
            "scrape_interval": intervals.scrape,
            "evaluation_interval": intervals.evaluation,
        },
        "rule_files": [str(path.resolve()) for path in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": SERVICE_JOB,
                "static_configs": [
                    {"targets": replicas, "labels": {"node": node or socket.gethostname()}}
                ],
            },
            {"job_name": "alertmanager", "static_configs": [{"targets": [alertmanager]}]},
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def alertmanager_config(source: Path, webhook_url: str | None) -> str:
    """The repository's Alertmanager configuration, its webhook URL replaced if asked."""
    text = source.read_text()
    if webhook_url is None:
        return text
    replaced, count = _WEBHOOK_ANCHOR.subn(lambda m: m.group(1) + webhook_url, text)
    if count != 1:
        raise ValueError(f"{source} has no single '&webhook_url' anchor to point elsewhere")
    return replaced
