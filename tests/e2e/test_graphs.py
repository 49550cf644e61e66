"""The graphs: every dashboard query runs on the real Prometheus, and the lab's "view it in
Prometheus" step renders in headless Chromium."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.dashboard_queries import dashboard_queries, variable_queries
from support.lab import REPO, Lab
from support.waiting import wait_for

pytestmark = pytest.mark.e2e

SCREENSHOT_TOOL = REPO / "tools" / "prometheus_screenshot.py"


def send_traffic(lab: Lab) -> None:
    """Requests after a first scrape of both replicas: a rate needs the counter to move
    between two samples."""
    wait_for(
        lambda: len(lab.prometheus.query('up{job="example-service"} == 1')) == 2,
        30,
        "both replicas scraped",
    )
    for replica in lab.stack.replicas:
        for _ in range(5):
            httpx.get(f"{replica.url}/abc")


def test_every_dashboard_query_runs(lab: Lab) -> None:
    send_traffic(lab)
    wait_for(
        lambda: lab.prometheus.query('sum(rate(request_total{job="example-service"}[1m])) > 0'),
        30,
        "a request rate to compute",
    )
    queries = [*dashboard_queries(), *variable_queries()]
    assert len(queries) >= 8
    failures = []
    for query in queries:
        try:
            lab.prometheus.query(query.expr)
        except AssertionError as error:
            failures.append(f"{query.panel} ({query.ref_id}): {error}")
    assert not failures, "\n".join(failures)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_prometheus_graph_page_renders_the_request_rate(lab: Lab, tmp_path: Path) -> None:
    send_traffic(lab)
    wait_for(
        lambda: len(lab.prometheus.query("rate(request_total[1m]) > 0")) == 2,
        30,
        "a request rate for both replicas",
    )
    out = tmp_path / "graph.png"
    result = subprocess.run(
        [sys.executable, str(SCREENSHOT_TOOL), "--prometheus", lab.stack.prometheus.url,
         "--expr", "sum by (instance) (rate(request_total[1m]))", "--out", str(out)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 series" in result.stdout
    for replica in lab.stack.replicas:
        assert replica.url.removeprefix("http://") in result.stdout
    assert png_size(out) == (1280, 800)


def test_screenshot_tool_reports_a_query_without_data(lab: Lab, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SCREENSHOT_TOOL), "--prometheus", lab.stack.prometheus.url,
         "--expr", "no_such_metric_anywhere", "--out", str(tmp_path / "none.png")],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert not (tmp_path / "none.png").exists()
