"""The Grafana dashboard: its structure, its datasource variable, and every PromQL expression
in it, parsed by promtool and checked against the metric names the service exposes.

The end-to-end test runs the same expressions (dashboard_queries) against a real Prometheus.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.dashboard_queries import (
    DASHBOARD,
    DashboardQuery,
    dashboard_queries,
    iter_panels,
    load_dashboard,
    variable_queries,
)
from support.metric_names import PROCESS_SERIES

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# The series the service exposes (README, Metrics), as PromQL names them, plus
# Prometheus' own. Recorded series come from the rule files.
SERVICE_SERIES = {
    "request_total",
    "request_latency_seconds_bucket",
    "request_latency_seconds_count",
    "request_latency_seconds_sum",
    "cpu_temperature_celsius",
    "hd_errors_total",
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_count",
    "http_request_duration_seconds_sum",
    "example_service_sensor_temperature_celsius",
    "example_service_ext4_errors_total",
    "example_service_source_up",
    "example_service_demo_readings",
    "example_service_cgroup_info",
    "example_service_cgroup_cpu_quota_cores",
    "example_service_cgroup_cpu_period_seconds",
    "example_service_cgroup_cpu_usage_seconds_total",
    "example_service_cgroup_cpu_periods_total",
    "example_service_cgroup_cpu_throttled_periods_total",
    "example_service_cgroup_cpu_throttled_seconds_total",
    "example_service_cgroup_memory_limit_bytes",
    "example_service_cgroup_memory_usage_bytes",
    "example_service_cgroup_memory_working_set_bytes",
    "example_service_cgroup_oom_kills_total",
    "example_service_build_info",
    *PROCESS_SERIES,
    "example_service_requests_shed_total",
}
PROMETHEUS_SERIES = {
    "up",
    "ALERTS",
    "ALERTS_FOR_STATE",
    "prometheus_rule_evaluation_failures_total",
    "prometheus_notifications_alertmanagers_discovered",
    "alertmanager_notifications_failed_total",
}
# A name directly before a selector's brace: the metric a selector reads.
SELECTOR_NAME = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")

QUERIES = dashboard_queries() + variable_queries()


def recorded_series() -> set[str]:
    names = set()
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


def content_panels() -> list[dict[str, Any]]:
    return [p for p in iter_panels(load_dashboard()) if p.get("type") != "row"]


def test_dashboard_is_json_with_identity() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "example-service"
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    # Provisioned dashboards must not carry a database id.
    assert dashboard.get("id") is None


def test_datasource_is_a_prometheus_variable() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def test_no_datasource_is_hard_coded() -> None:
    dashboard = load_dashboard()
    # The built-in annotation query runs on Grafana's own datasource, not on Prometheus.
    dashboard.pop("annotations", None)
    hard_coded = [
        f"{path} = {value!r}"
        for path, value in walk(dashboard)
        if path.endswith(".datasource") and value not in (DATASOURCE, "${datasource}")
    ]
    assert not hard_coded, "\n".join(hard_coded)


def test_every_panel_queries_through_the_variable() -> None:
    problems = []
    for panel in content_panels():
        title = panel.get("title", f"panel {panel.get('id')}")
        if panel.get("datasource") != DATASOURCE:
            problems.append(f"{title}: panel datasource is {panel.get('datasource')!r}")
        targets = panel.get("targets", [])
        if not targets:
            problems.append(f"{title}: no target")
        ref_ids = [target.get("refId") for target in targets]
        if len(set(ref_ids)) != len(ref_ids) or not all(ref_ids):
            problems.append(f"{title}: refIds missing or repeated: {ref_ids}")
        for target in targets:
            if not target.get("expr", "").strip():
                problems.append(f"{title}/{target.get('refId')}: empty expr")
            if target.get("datasource") != DATASOURCE:
                problems.append(f"{title}/{target.get('refId')}: target datasource differs")
    assert not problems, "\n".join(problems)


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = list(iter_panels(load_dashboard()))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), f"repeated panel ids: {ids}"
    taken: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the grid"
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                other = taken.setdefault((x, y), panel["title"])
                assert other == panel["title"], f"{panel['title']} overlaps {other}"


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    panels = content_panels()
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needle in (
        "rate(request_total",  # request rate
        'status=~"5.."',  # error ratio
        "histogram_quantile(0.99, sum by (le) (rate(request_latency_seconds_bucket",
        "cpu_temperature_celsius",
        "hd_errors_total",
        "example_service_cgroup_cpu_throttled_periods_total",
        "example_service_cgroup_memory_working_set_bytes",
        # what the runbook relies on: refusals, restarts, burn rate, replicas, the pipeline
        "example_service_requests_shed_total",
        "changes(process_start_time_seconds",
        "job_route:http_requests_5xx_per_requests:ratio_rate1h",
        "job:request_slower_than_1s_per_requests:ratio_rate1h",
        "job_namespace:replicas:floor",
        'ALERTS{alertname="Watchdog"',
    ):
        assert needle in exprs, f"no panel queries {needle!r}"
    heatmaps = [p for p in panels if p["type"] == "heatmap"]
    assert heatmaps, "no latency heatmap"
    for heatmap in heatmaps:
        # Prometheus buckets are cumulative; Grafana de-accumulates them only in this format.
        assert all(t.get("format") == "heatmap" for t in heatmap["targets"]), heatmap["title"]
        assert "_bucket" in heatmap["targets"][0]["expr"]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.panel}/{q.ref_id}")
def test_expression_parses(promtool: str, query: DashboardQuery, tmp_path: Path) -> None:
    # promtool has no bare "parse this expression" command in 2.42; a recording rule's
    # expression goes through the same PromQL parser.
    rule = {"record": "dashboard:query:check", "expr": query.expr}
    rules = {"groups": [{"name": "dashboard", "rules": [rule]}]}
    path = tmp_path / "dashboard-query.yml"
    path.write_text(yaml.safe_dump(rules), encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (
        f"{query.panel}/{query.ref_id}: {query.expr}\n{result.stdout}{result.stderr}"
    )


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: f"{q.panel}/{q.ref_id}")
def test_expression_reads_known_series(query: DashboardQuery) -> None:
    """A misspelt metric name parses and runs, returning nothing: catch it here."""
    known = SERVICE_SERIES | PROMETHEUS_SERIES | recorded_series()
    unknown = sorted(set(SELECTOR_NAME.findall(query.expr)) - known)
    # Keywords such as `by` and `without` are followed by "(", never "{".
    assert not unknown, f"{query.panel}/{query.ref_id}: unknown series {unknown}"


def test_queries_have_no_grafana_syntax_left() -> None:
    leftovers = [q for q in QUERIES if "$" in q.expr or "[[" in q.expr]
    assert not leftovers, leftovers
