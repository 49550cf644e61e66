"""Third-party scanners over what the project ships: checkov over every rendered kustomize
overlay, every Helm chart scenario and the Dockerfile, hadolint over the Dockerfile.

Each finding must be one deploy/scanner-skips.yaml keeps, with its reason; a new finding
fails, and so does a kept one that no longer occurs. checkov runs once over one directory
holding everything (its start-up costs more than its checks), offline: --skip-download keeps
it from fetching policies, guidelines or severities from its vendor's platform. A canary of
known-bad objects goes through the same runs, so a scanner that silently checks nothing
fails here too.

Beside them, a check of the project's own: no configuration file under deploy/ holds a
secret, real or placeholder, not even in its commented examples: secrets are read from
files (smtp_auth_password_file, slack_api_url_file, ...).
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_render import SCENARIOS
from helm_render import render as render_chart
from kustomize_render import OVERLAYS, REPO
from kustomize_render import render_text as render_kustomize

SKIPS = REPO / "deploy" / "scanner-skips.yaml"
DOCKERFILE = REPO / "deploy" / "container" / "Dockerfile"
SCANNERS = REPO / ".venv" / "scanners" / "bin"

# Objects and a Dockerfile each scanner must find fault with: a privileged container that may
# escalate, and an unpinned base image.
CANARY_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "canary"},
    "spec": {
        "containers": [
            {"name": "canary", "image": "busybox", "securityContext": {"privileged": True}}
        ]
    },
}
CANARY_DOCKERFILE = "FROM debian:latest\nRUN apt-get update\n"
CANARY_CHECKOV = {"CKV_K8S_16", "CKV_K8S_20"}  # privileged, allowPrivilegeEscalation
CANARY_HADOLINT = {"DL3007"}  # FROM ...:latest


@dataclass(frozen=True)
class Finding:
    tool: str
    check: str
    resource: str  # Kind/name for objects, the file for a Dockerfile
    where: str  # the scanned file

    def __str__(self) -> str:
        return f"{self.tool} {self.check} {self.resource} ({self.where})"


def scanner(name: str) -> str:
    path = SCANNERS / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: `make .venv/.scanners-installed` installs the scanners")
    return str(path)


def skips() -> dict[str, dict[str, dict[str, Any]]]:
    loaded: dict[str, dict[str, dict[str, Any]]] = yaml.safe_load(SKIPS.read_text("utf-8"))
    return loaded


def kept(finding: Finding, entries: dict[str, dict[str, Any]]) -> bool:
    entry = entries.get(finding.check)
    if entry is None:
        return False
    patterns = entry.get("resources")
    return patterns is None or any(fnmatch.fnmatchcase(finding.resource, p) for p in patterns)


def resource_name(resource: str) -> str:
    """checkov's Kind.namespace.name as Kind/name (namespace: "default" where none is set)."""
    kind, _, rest = resource.partition(".")
    return f"{kind}/{rest.partition('.')[2]}"


def json_documents(text: str) -> list[Any]:
    """checkov prints one JSON document per framework run, one after another."""
    decoder = json.JSONDecoder()
    documents, index = [], 0
    while index < len(text.rstrip()):
        while text[index].isspace():
            index += 1
        document, index = decoder.raw_decode(text, index)
        documents.append(document)
    return documents


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> list[Finding]:
    """Every finding of both scanners, canaries included."""
    directory = tmp_path_factory.mktemp("scanned")
    for overlay in OVERLAYS:
        (directory / f"kustomize-{overlay}.yaml").write_text(render_kustomize(overlay), "utf-8")
    for scenario in SCENARIOS:
        text = yaml.safe_dump_all(render_chart(scenario))
        (directory / f"chart-{scenario}.yaml").write_text(text, "utf-8")
    (directory / "Dockerfile").write_text(DOCKERFILE.read_text("utf-8"), "utf-8")
    canary = directory / "canary"
    canary.mkdir()
    (canary / "pod.yaml").write_text(yaml.safe_dump(CANARY_POD), "utf-8")
    (canary / "Dockerfile").write_text(CANARY_DOCKERFILE, "utf-8")

    completed = subprocess.run(
        [
            scanner("checkov"),
            "--directory",
            str(directory),
            "--framework",
            "kubernetes",
            "dockerfile",
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    # 1: findings; anything else: checkov itself failed.
    assert completed.returncode in {0, 1}, completed.stderr[-3000:]
    findings = []
    for document in json_documents(completed.stdout):
        for report in document if isinstance(document, list) else [document]:
            assert report["summary"]["parsing_errors"] == 0, report["summary"]
            for failed in report["results"]["failed_checks"]:
                dockerfile = report["check_type"] == "dockerfile"
                findings.append(
                    Finding(
                        "checkov",
                        failed["check_id"],
                        failed["file_path"] if dockerfile else resource_name(failed["resource"]),
                        failed["file_path"].lstrip("/"),
                    )
                )
    findings += hadolint([directory / "Dockerfile", canary / "Dockerfile"], directory)
    return findings


def hadolint(dockerfiles: list[Path], directory: Path) -> list[Finding]:
    completed = subprocess.run(
        [scanner("hadolint"), "--format", "json", "--no-fail", *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return [
        Finding(
            "hadolint",
            found["code"],
            found["file"],
            str(Path(found["file"]).relative_to(directory)),
        )
        for found in json.loads(completed.stdout)
    ]


def test_every_finding_is_kept_with_a_reason(scanned: list[Finding]) -> None:
    entries = skips()
    ours = [f for f in scanned if not f.where.startswith("canary/")]
    new = sorted({str(f) for f in ours if not kept(f, entries[f.tool])})
    assert not new, "findings not in deploy/scanner-skips.yaml:\n" + "\n".join(new)


def test_every_kept_finding_still_occurs(scanned: list[Finding]) -> None:
    ours = [f for f in scanned if not f.where.startswith("canary/")]
    stale = [
        f"{tool} {check}"
        for tool, entries in skips().items()
        for check in entries
        if not any(f.tool == tool and f.check == check and kept(f, entries) for f in ours)
    ]
    assert not stale, f"kept in deploy/scanner-skips.yaml but no longer found: {stale}"


def test_every_kept_finding_has_a_reason() -> None:
    for tool, entries in skips().items():
        assert tool in {"checkov", "hadolint"}
        for check, entry in entries.items():
            assert set(entry) <= {"reason", "resources"}, check
            assert len(entry.get("reason", "")) > 40, f"{tool} {check}: say why"


def test_the_scanners_see_the_canaries(scanned: list[Finding]) -> None:
    """What the comparison above rests on: both scanners ran over the files and report
    known faults (which no skip may hide: the skips name other checks)."""
    canary = {(f.tool, f.check) for f in scanned if f.where.startswith("canary/")}
    assert {("checkov", check) for check in CANARY_CHECKOV} <= canary
    assert {("hadolint", code) for code in CANARY_HADOLINT} <= canary
    scanned_files = {f.where for f in scanned}
    assert "Dockerfile" in scanned_files, "the project's Dockerfile was scanned"
    entries = skips()
    assert not CANARY_CHECKOV & set(entries["checkov"]), "a canary's check is skipped"
    assert not CANARY_HADOLINT & set(entries["hadolint"]), "a canary's check is skipped"


# ---------------------------------------------------------------------------------------
# No secret in a configuration file

# Keys that hold a secret in Alertmanager's, Prometheus' and Grafana's configurations; each
# has a *_file form (or a secret reference) that names where the secret is mounted instead.
SECRET_KEY = re.compile(
    r"(password|secret|token|api_key|apikey|credentials|routing_key|service_key|api_url|"
    r"webhook_url)$",
    re.IGNORECASE,
)
# Settings whose value is a location or a switch, not a secret.
NOT_SECRETS = {"url", "automountServiceAccountToken"}
# Inline secrets kept, by file and key, with the reason: none.
KEPT_SECRETS: set[tuple[str, str]] = set()


def uncomment_examples(text: str) -> str:
    """The file with its `# --- example-begin` ... `# --- example-end` blocks uncommented."""
    lines, inside = [], False
    for line in text.splitlines():
        marker = line.strip()
        if marker.startswith(("# --- example-begin", "# --- example-end")):
            inside = marker.startswith("# --- example-begin")
            continue
        lines.append(re.sub(r"^(\s*)# ?", r"\1", line, count=1) if inside else line)
    return "\n".join(lines) + "\n"


def secret_settings(value: Any, path: str = "") -> list[str]:
    """Paths of keys that name a secret and hold it inline."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            named = isinstance(key, str) and bool(SECRET_KEY.search(key))
            if named and key not in NOT_SECRETS and isinstance(item, str | int) and str(item):
                found.append(f"{where}: {item!r}")
            found += secret_settings(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += secret_settings(item, f"{path}[{index}]")
    return found


def configuration_files() -> list[Path]:
    return sorted(
        path
        for pattern in ("*.yml", "*.yaml")
        for path in (REPO / "deploy").rglob(pattern)
        if "templates" not in path.parts  # the chart's templates are not YAML until rendered
    )


def test_no_secret_in_a_configuration_file() -> None:
    files = configuration_files()
    assert REPO / "deploy" / "alertmanager" / "alertmanager.yml" in files
    found = []
    for path in files:
        for document in yaml.safe_load_all(uncomment_examples(path.read_text("utf-8"))):
            name = str(path.relative_to(REPO))
            found += [
                f"{name}: {setting}"
                for setting in secret_settings(document)
                if not any(
                    name == kept_file and setting.split(":")[0].endswith(f".{key}")
                    for kept_file, key in KEPT_SECRETS
                )
            ]
    assert not found, "secrets inline (read them from a file instead):\n" + "\n".join(found)


def test_the_secret_check_sees_an_inline_one() -> None:
    text = (REPO / "deploy" / "alertmanager" / "alertmanager.yml").read_text("utf-8")
    planted = text.replace("smtp_auth_password_file: ", "smtp_auth_password: ")
    assert planted != text
    found = secret_settings(yaml.safe_load(uncomment_examples(planted)))
    assert found == ["global.smtp_auth_password: '/etc/alertmanager/secrets/smtp-password'"]
