"""The lab's other two paths into Prometheus: metrics pushed through a Pushgateway by a
batch job, and metrics pulled from another Prometheus by federation (docs/contract.md, The
monitoring workflow)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx
import pytest
from support.lab import Lab
from support.service import EXECUTABLE
from support.waiting import wait_for

pytestmark = pytest.mark.e2e

LOAD_JOB = "example-service-load"


def run_load(lab: Lab, count: int) -> dict[str, object]:
    urls = [f"{replica.url}/abc" for replica in lab.stack.replicas]
    result = subprocess.run(
        [str(EXECUTABLE), "load", *urls, "--count", str(count), "--concurrency", "2",
         "--pushgateway", lab.stack.pushgateway.url, "--json", "--no-progress"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def pushed_successes(lab: Lab) -> list[float]:
    series = lab.prometheus.query(
        f'example_service_load_requests_total{{job="{LOAD_JOB}",outcome="success"}}'
    )
    return [float(s["value"][1]) for s in series]


def test_a_load_run_is_pushed_and_a_second_run_replaces_it(lab: Lab) -> None:
    first = run_load(lab, 12)
    assert first["succeeded"] == 12
    wait_for(lambda: pushed_successes(lab) == [12.0], 30, "the first run in Prometheus")
    series = lab.prometheus.query(f'example_service_load_requests_total{{job="{LOAD_JOB}"}}')
    assert {s["metric"]["job"] for s in series} == {LOAD_JOB}
    assert len({s["metric"]["instance"] for s in series}) == 1

    second = run_load(lab, 5)
    assert second["succeeded"] == 5
    try:
        wait_for(lambda: pushed_successes(lab) == [5.0], 30, "the second run to replace it")
    except AssertionError:
        raise AssertionError(f"Prometheus holds {pushed_successes(lab)}") from None


def test_federation_brings_the_lab_series_with_their_source(lab: Lab) -> None:
    wait_for(lambda: len(lab.prometheus.query('up{job="example-service"} == 1')) == 2, 30, "up")
    for replica in lab.stack.replicas:
        for _ in range(3):
            httpx.get(f"{replica.url}/abc")

    def federated(expr: str) -> list[dict[str, Any]]:
        return lab.global_prometheus.query(expr)

    requests = wait_for(
        lambda: (
            len(federated('request_total{prometheus="lab"}')) == 2
            and federated('request_total{prometheus="lab"}')
        ),
        60,
        "request_total from both replicas in the global Prometheus",
    )
    for series in requests:
        labels = series["metric"]
        assert labels["job"] == "example-service"
        assert labels["instance"] in {r.url.removeprefix("http://") for r in lab.stack.replicas}
        assert labels["node"]
    recorded = wait_for(
        lambda: federated('job:request:rate5m{prometheus="lab"}'),
        60,
        "a recording rule's series in the global Prometheus",
    )
    assert recorded[0]["metric"]["job"] == "example-service"
