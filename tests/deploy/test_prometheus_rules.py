"""The Prometheus rules: promtool accepts them, their unit tests pass, and they keep the
project's conventions (alert metadata, runbook links, recording rule names, test coverage).

promtool is Debian's (package prometheus); `make test` installs it when missing.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.binaries import require

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
RULE_TESTS_DIR = REPO / "deploy" / "prometheus" / "tests"
RUNBOOK = REPO / "docs" / "runbook.md"
MONITORING_DOC = REPO / "docs" / "monitoring.md"

RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TEST_FILES = sorted(RULE_TESTS_DIR.glob("*.yml"))
SEVERITIES = {"critical", "warning"}
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


@pytest.fixture(scope="session")
def promtool() -> str:
    return require("promtool", "prometheus")


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_rule_and_test_files_exist() -> None:
    assert RULE_FILES, f"no rule files in {RULES_DIR}"
    assert RULE_TEST_FILES, f"no rule unit tests in {RULE_TESTS_DIR}"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(promtool: str, path: Path) -> None:
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, f"promtool check rules {path}:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("path", RULE_TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(promtool: str, path: Path) -> None:
    result = run([promtool, "test", "rules", str(path)])
    assert result.returncode == 0, f"promtool test rules {path}:\n{result.stdout}{result.stderr}"


def test_every_alert_has_for_severity_and_annotations() -> None:
    problems = []
    for rule in alerting_rules():
        name = rule["alert"]
        if not rule.get("for") or seconds(rule["for"]) <= 0:
            problems.append(f"{name}: no `for`")
        if rule.get("labels", {}).get("severity") not in SEVERITIES:
            problems.append(f"{name}: severity must be one of {sorted(SEVERITIES)}")
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
        name, severity, hold = rule["alert"], rule["labels"]["severity"], seconds(rule["for"])
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
        for kind, covered in (("fires", fires), ("under", under), ("held back", held_back)):
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
