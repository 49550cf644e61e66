"""The Prometheus rules: promtool accepts them, their unit tests pass, and they keep the
project's conventions (alert metadata, runbook links, recording rule names, test coverage).

promtool is Debian's (package prometheus); `make test` installs it when missing.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support.binaries import run
from support.service import StartService

from example_service.stack.config import Addresses, Intervals, prometheus_config

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
RULE_TESTS_DIR = REPO / "deploy" / "prometheus" / "tests"
RUNBOOK = REPO / "docs" / "runbook.md"
MONITORING_DOC = REPO / "docs" / "monitoring.md"

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.yml"))
SEVERITIES = {"critical", "warning"}
# The Watchdog's: always firing, routed to the dead man's switch, never to a person.
HEARTBEAT = "none"
DASHBOARD = REPO / "deploy" / "grafana" / "example-service.json"
DASHBOARD_URL = re.compile(r"^(https?://[^?]+/d/([\w-]+)/[\w-]+)\?viewPanel=(\d+)$")
# Being redefined with the shedding it reports (its rule, tests and runbook section move
# together); its panel is "/abc refused at once".
WITHOUT_DASHBOARD_URL: set[str] = set()
# level:metric:operations (https://prometheus.io/docs/practices/rules/).
RECORDING_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")
DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
DURATION_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}


def seconds(duration: str) -> float:
    """A Prometheus duration ("2m30s") in seconds."""
    parts = DURATION_PART.findall(duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(number) * DURATION_SECONDS[unit] for number, unit in parts)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rule_groups() -> Iterator[dict[str, Any]]:
    for path in RULE_FILES:
        yield from load_yaml(path)["groups"]


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "record" in rule]


def github_anchors(markdown: str) -> set[str]:
    """Anchors GitHub generates for the headings of a Markdown document."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_rule_and_test_files_exist() -> None:
    assert RULE_FILES, f"no rule files in {RULES_DIR}"
    assert RULE_TEST_FILES, f"no rule unit tests in {RULE_TESTS_DIR}"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(promtool: str, path: Path) -> None:
    result = run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, f"promtool check rules {path}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", RULE_TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(promtool: str, path: Path) -> None:
    result = run(promtool, "test", "rules", str(path))
    assert result.returncode == 0, f"promtool test rules {path}:\n{result.stdout}{result.stderr}"


def heartbeat(rule: dict[str, Any]) -> bool:
    return bool(rule.get("labels", {}).get("severity") == HEARTBEAT)


def test_every_alert_has_for_severity_and_annotations() -> None:
    problems = []
    for rule in alerting_rules():
        name = rule["alert"]
        if heartbeat(rule):
            if rule.get("for"):
                problems.append(f"{name}: a heartbeat fires from the first evaluation")
        elif not rule.get("for") or seconds(rule["for"]) <= 0:
            problems.append(f"{name}: no `for`")
        if rule.get("labels", {}).get("severity") not in SEVERITIES | {HEARTBEAT}:
            problems.append(f"{name}: severity must be one of {sorted(SEVERITIES)} or none")
        annotations = rule.get("annotations", {})
        problems.extend(
            f"{name}: no {key} annotation"
            for key in ("summary", "description", "runbook_url")
            if not annotations.get(key, "").strip()
        )
    assert not problems, "\n".join(problems)


def test_runbook_urls_point_at_runbook_sections() -> None:
    anchors = github_anchors(RUNBOOK.read_text(encoding="utf-8"))
    bases = set()
    problems = []
    for rule in alerting_rules():
        url = rule["annotations"]["runbook_url"]
        base, _, anchor = url.partition("#")
        bases.add(base)
        if not base.endswith("/docs/runbook.md"):
            problems.append(f"{rule['alert']}: {url} does not point at docs/runbook.md")
        if anchor != rule["alert"].lower():
            problems.append(f"{rule['alert']}: anchor should be #{rule['alert'].lower()}")
        if anchor not in anchors:
            problems.append(f"{rule['alert']}: docs/runbook.md has no section #{anchor}")
    # One base for all, so that moving the repository is one search and replace.
    if len(bases) > 1:
        problems.append(f"runbook_url bases differ: {sorted(bases)}")
    assert not problems, "\n".join(problems)


def test_exactly_one_heartbeat_expression_always_true() -> None:
    heartbeats = [rule for rule in alerting_rules() if heartbeat(rule)]
    assert [rule["alert"] for rule in heartbeats] == ["Watchdog"]
    assert heartbeats[0]["expr"].strip() == "vector(1)"


def test_dashboard_urls_open_an_existing_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = {panel["id"]: panel["title"] for panel in dashboard["panels"]}
    bases = set()
    problems = []
    for rule in alerting_rules():
        name, url = rule["alert"], rule["annotations"].get("dashboard_url", "")
        if name in WITHOUT_DASHBOARD_URL:
            continue
        match = DASHBOARD_URL.match(url)
        if not match:
            problems.append(f"{name}: {url!r} is not <grafana>/d/<uid>/<slug>?viewPanel=<id>")
            continue
        bases.add(match.group(1))
        if match.group(2) != dashboard["uid"]:
            problems.append(f"{name}: dashboard uid {match.group(2)} != {dashboard['uid']}")
        if int(match.group(3)) not in panels:
            problems.append(f"{name}: the dashboard has no panel {match.group(3)}")
    if len(bases) > 1:
        problems.append(f"dashboard_url bases differ: {sorted(bases)}")
    assert not problems, "\n".join(problems)


def runbook_sections() -> dict[str, str]:
    """The runbook's sections by heading (## <alert name>)."""
    parts = re.split(r"(?m)^## ", RUNBOOK.read_text(encoding="utf-8"))[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def test_every_runbook_section_tells_users_impact_the_fix_check_and_the_panel() -> None:
    sections = runbook_sections()
    problems = []
    for rule in alerting_rules():
        name = rule["alert"]
        if name in WITHOUT_DASHBOARD_URL:
            continue
        section = sections.get(name, "")
        parts = ("**What it means for users.**", "**How to confirm the fix.**")
        problems += [
            f"{name}: no {part} in its runbook section" for part in parts if part not in section
        ]
        if rule["annotations"]["dashboard_url"] not in section:
            problems.append(f"{name}: its runbook section does not link its dashboard_url")
    assert not problems, "\n".join(problems)


def test_every_prometheus_configuration_scrapes_what_the_monitoring_rules_read() -> None:
    """The monitoring group reads Prometheus' and Alertmanager's own metrics by job name:
    the in-cluster, Compose and local-stack configurations all scrape both under it."""
    monitoring = next(g for g in rule_groups() if g["name"] == "example-service.monitoring")
    jobs = {
        job for rule in monitoring["rules"] for job in re.findall(r'job="([^"]+)"', rule["expr"])
    }
    assert jobs == {"prometheus", "alertmanager"}
    addresses = Addresses(["127.0.0.1:5566"], "127.0.0.1:9090", "127.0.0.1:9093", "127.0.0.1:9091")
    configurations = {
        "kubernetes": load_yaml(REPO / "deploy/kubernetes/components/monitoring/prometheus.yml"),
        "compose": load_yaml(REPO / "deploy/compose/prometheus.yml"),
        "stack": json.loads(prometheus_config(addresses, [], Intervals())),
    }
    for name, configuration in configurations.items():
        scraped = {job["job_name"] for job in configuration["scrape_configs"]}
        assert jobs <= scraped, f"{name} does not scrape {sorted(jobs - scraped)}"


def test_two_level_alerts_differ_only_in_severity_threshold_and_for() -> None:
    """Alertmanager's inhibition matches critical to warning by alertname and labels."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in alerting_rules():
        by_name.setdefault(rule["alert"], []).append(rule)
    for name, rules in by_name.items():
        severities = [rule["labels"]["severity"] for rule in rules]
        assert len(severities) == len(set(severities)), f"{name}: severity repeated"
        other_labels = [
            {k: v for k, v in rule["labels"].items() if k != "severity"} for rule in rules
        ]
        assert all(labels == other_labels[0] for labels in other_labels), name
        assert all(rule["annotations"] == rules[0]["annotations"] for rule in rules), name


def test_recording_rule_names_follow_level_metric_operations() -> None:
    bad = [rule["record"] for rule in recording_rules() if not RECORDING_NAME.match(rule["record"])]
    assert not bad, f"not level:metric:operations: {bad}"


def test_every_rule_is_documented() -> None:
    doc = MONITORING_DOC.read_text(encoding="utf-8")
    names = {rule["alert"] for rule in alerting_rules()} | {r["record"] for r in recording_rules()}
    missing = sorted(name for name in names if name not in doc)
    assert not missing, f"docs/monitoring.md does not mention: {missing}"


# --- what the unit tests cover ---


def unit_tests() -> list[dict[str, Any]]:
    return [case for path in RULE_TEST_FILES for case in load_yaml(path)["tests"]]


def test_unit_tests_fix_the_group_order() -> None:
    """Prometheus runs groups concurrently and promtool in a random order unless told.

    Alerts on recorded series then see them one evaluation late or not, and the `for`
    boundaries the tests check become flaky. Each test file lists every group, recording
    rules first.
    """
    groups = [group["name"] for group in rule_groups()]
    recording = [g["name"] for g in rule_groups() if all("record" in r for r in g["rules"])]
    for path in RULE_TEST_FILES:
        order = load_yaml(path).get("group_eval_order", [])
        assert sorted(order) == sorted(groups), f"{path.name}: group_eval_order != {groups}"
        assert order[: len(recording)] == recording, f"{path.name}: recording groups first"


def test_every_alert_and_severity_is_unit_tested() -> None:
    """For each alert at each severity the unit tests hold three kinds of case.

    fires:     an evaluation expecting it, with its labels and annotations;
    under:     a test case that evaluates it longer than its `for` and never expects it
               (the condition is just under its threshold);
    held back: within one test case, an evaluation not expecting it followed by one
               expecting it (the condition is true for less than `for`, then fires).
    """
    cases = unit_tests()
    problems = []
    for rule in alerting_rules():
        name, severity = rule["alert"], rule["labels"]["severity"]
        hold = seconds(rule.get("for", "0s"))
        fires = under = held_back = False
        for case in cases:
            evaluations = sorted(
                (
                    (seconds(check["eval_time"]), check.get("exp_alerts") or [])
                    for check in case.get("alert_rule_test", [])
                    if check["alertname"] == name
                ),
                key=lambda item: item[0],
            )
            expected = [
                [a for a in alerts if a.get("exp_labels", {}).get("severity") == severity]
                for _, alerts in evaluations
            ]
            for alerts in expected:
                if any(a.get("exp_annotations") for a in alerts):
                    fires = True
            if evaluations and not any(expected) and evaluations[-1][0] > hold:
                under = True
            for earlier, later in itertools.pairwise(expected):
                if not earlier and later:
                    held_back = True
        kinds = (("fires", fires), ("under", under), ("held back", held_back))
        for kind, covered in kinds[:1] if severity == HEARTBEAT else kinds:
            if not covered:
                problems.append(f"{name} ({severity}): no '{kind}' case")
    assert not problems, "\n".join(problems)


def test_every_recording_rule_is_unit_tested() -> None:
    tested = {
        name
        for case in unit_tests()
        for check in case.get("promql_expr_test", [])
        for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", check["expr"])
    }
    untested = sorted({r["record"] for r in recording_rules() if r["record"] not in tested})
    assert not untested, f"recording rules without a promql_expr_test: {untested}"


# --- a healthy, idle pair of replicas on this machine ---

SCRAPE_INTERVAL = 15
# Rules every minute rather than every 15 s: a quarter of promtool's work, the same alerts
# (every `for` is a whole number of minutes).
EVALUATION_INTERVAL = 60
QUIET_HOURS = 6


def page_samples(text: str) -> list[tuple[str, dict[str, str], float, bool]]:
    """(name, labels, value, whether it only grows) for every sample of a /metrics page."""
    samples = []
    for family in text_string_to_metric_families(text):
        growing = family.type in {"counter", "histogram", "summary"}
        for sample in family.samples:
            grows = growing and not sample.name.endswith("_created")
            samples.append((sample.name, dict(sample.labels), sample.value, grows))
    return samples


def series_selector(name: str, labels: dict[str, str]) -> str:
    pairs = ", ".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()))
    return f"{name}{{{pairs}}}"


def quiet_series(
    first: str, second: str, seconds_between: float, labels: dict[str, str]
) -> list[dict[str, str]]:
    """Input series for QUIET_HOURS of 15 s scrapes of one replica, from two real scrapes of
    its page: gauges at their second value, counters growing at the pace seen between the
    two scrapes (the scrapes themselves, probes, the process's own CPU)."""
    before = {(n, json.dumps(lab, sort_keys=True)): v for n, lab, v, _ in page_samples(first)}
    steps = QUIET_HOURS * 3600 // SCRAPE_INTERVAL
    series = [{"series": series_selector("up", labels), "values": f"1+0x{steps}"}]
    for name, sample_labels, value, grows in page_samples(second):
        start = before.get((name, json.dumps(sample_labels, sort_keys=True)), value)
        step = (value - start) / seconds_between * SCRAPE_INTERVAL if grows else 0.0
        values = f"{value!r}+{max(step, 0.0)!r}x{steps}"
        selector = series_selector(name, {**sample_labels, **labels})
        series.append({"series": selector, "values": values})
    return series


def test_a_healthy_idle_pair_on_this_machine_raises_nothing(
    promtool: str, start_service: StartService, tmp_path: Path
) -> None:
    """Two real replicas, idle, scraped every 15 s for six hours as this machine's pages
    show them: no warning or critical alert fires, nor is pending at the end (a machine
    without a CPU sensor or ext4 is no fault). The Watchdog does fire: ALERTS is written."""
    replicas = [start_service("--access-log", "off") for _ in range(2)]
    firsts = [replica.get("/metrics").text for replica in replicas]
    started = time.monotonic()
    for replica in replicas:  # a probe between the scrapes, as the kubelet sends
        replica.get("/healthz")
        replica.get("/readyz")
    time.sleep(1)
    seconds_between = time.monotonic() - started
    seconds_between = max(seconds_between, 1.0)
    node = socket.gethostname()
    input_series = []
    for replica, first in zip(replicas, firsts, strict=True):
        second = replica.get("/metrics").text
        labels = {"job": "example-service", "instance": f"127.0.0.1:{replica.port}", "node": node}
        input_series += quiet_series(first, second, seconds_between, labels)
    end = f"{QUIET_HOURS}h"
    raised = f'count_over_time(ALERTS{{severity=~"warning|critical"}}[{end}])'
    watchdog = '{alertname="Watchdog", alertstate="firing", severity="none"}'
    test = {
        "rule_files": [str(path) for path in RULE_FILES],
        "evaluation_interval": f"{EVALUATION_INTERVAL}s",
        "group_eval_order": load_yaml(RULE_TEST_FILES[0])["group_eval_order"],
        "tests": [
            {
                "name": "healthy idle pair",
                "interval": f"{SCRAPE_INTERVAL}s",
                "input_series": input_series,
                "promql_expr_test": [
                    {"expr": raised, "eval_time": end, "exp_samples": []},
                    {
                        "expr": f'count_over_time(ALERTS{{alertname="Watchdog"}}[{end}]) > 0',
                        "eval_time": end,
                        "exp_samples": [
                            {
                                "labels": watchdog,
                                "value": QUIET_HOURS * 3600 // EVALUATION_INTERVAL + 1,
                            }
                        ],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "healthy-pair.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False), encoding="utf-8")
    result = run(promtool, "test", "rules", str(path))
    assert result.returncode == 0, f"{path}:\n{result.stdout}{result.stderr}"
