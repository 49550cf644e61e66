"""Render the Helm chart with Helm's own engine (helm-python-sdk: Helm v4 as a library), offline.

Every documented scenario is in SCENARIOS with its values file and the kustomize overlay it
must equal, if any; the tests render each one as `helm install -f FILE` would and look at the
objects. `render("default")` is the chart as `helm install example-service
deploy/helm/example-service` applies it, e.g. for `podman kube play` of its Deployment:

    deployment = find(render("default"), "Deployment", "example-service")
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import yaml
from kustomize_render import REPO, Manifest

CHART_DIR = REPO / "deploy" / "helm" / "example-service"
VALUES_DIR = REPO / "deploy" / "helm" / "values"
# The release name of the docs' walkthrough: the service's objects get the names the
# kustomize manifests use.
RELEASE = "example-service"


@dataclass(frozen=True)
class Scenario:
    # None: the chart's defaults.
    values_file: Path | None
    # The kustomize overlay that renders the same objects; None: no overlay does.
    overlay: str | None


SCENARIOS: dict[str, Scenario] = {
    # Prometheus' UI inside the cluster only; the lab overlay puts it on a node port, as
    # lab.yaml does.
    "default": Scenario(None, None),
    "lab": Scenario(VALUES_DIR / "lab.yaml", "lab"),
    "monitoring-off": Scenario(VALUES_DIR / "monitoring-off.yaml", "base"),
    "hpa-requests": Scenario(VALUES_DIR / "hpa-requests.yaml", "hpa-requests"),
    "host-sysfs": Scenario(VALUES_DIR / "host-sysfs.yaml", "host-sysfs"),
}


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART_DIR)


def scenario_values(scenario: str) -> dict[str, Any]:
    """The values of a scenario, parsed by Helm's own YAML reader, as `-f FILE` is."""
    values_file = SCENARIOS[scenario].values_file
    if values_file is None:
        return {}
    return helm_python.values_from_yaml(values_file.read_text(encoding="utf-8"))


def render_values(
    values: dict[str, Any] | None = None,
    *,
    release: str = RELEASE,
    source: helm_python.Chart | None = None,
) -> list[Manifest]:
    """The objects `helm template RELEASE CHART` renders with these values (fresh copies).

    source is a loaded chart (a packaged one, say); the chart directory by default.
    """
    loaded = chart() if source is None else source
    rendered = loaded.render(values=values, name=release, namespace="default")
    manifests: list[Manifest] = []
    for path in sorted(rendered):
        if not path.endswith(".yaml"):
            continue  # NOTES.txt: text for the user, not objects
        manifests.extend(doc for doc in yaml.safe_load_all(rendered[path]) if doc)
    return manifests


@functools.cache
def _render_text(scenario: str) -> str:
    return yaml.safe_dump_all(render_values(scenario_values(scenario)))


def render(scenario: str) -> list[Manifest]:
    """The objects of one documented scenario (fresh copies: tests may modify them)."""
    return [doc for doc in yaml.safe_load_all(_render_text(scenario)) if doc]
