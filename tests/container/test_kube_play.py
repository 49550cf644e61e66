"""The `lab` overlay's Deployment, and the Helm chart's, run by `podman kube play`
(docs/kubernetes.md, "kube play").

The overlay is rendered as users apply it, through a kustomization of the test's own on top
of it that points the image at the one this session built (kustomize's `images:`, as a user
retags for a registry): the repository's manifests stay as users get them. The chart is
rendered with its default values but for the image (image.repository and image.tag, as a
Helm user switches images) and one replica. The pod must answer on its published port and
run as its manifest says: the manifest's user, a read-only root, no capabilities, no
privilege escalation, the CPU and memory limits as its cgroup shows them, and NUM from the
manifest's environment.

Every test plays a pod named after the Deployment, so each plays and takes down its own.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from helm_render import render_values
from kustomize_render import Manifest, find, render_on_top
from support.kube_play import PlayedPod, kube_played
from support.podman import Podman, process_status, root_mount_options
from support.service_container import sample

pytestmark = [pytest.mark.container, pytest.mark.timeout(900)]

ENV_REPLY = "there is env NUM. Computation succeeded\n"
# Kubernetes resource quantities, as the manifests write them.
BINARY_SUFFIXES = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


def test_the_lab_overlay_pod_serves_and_runs_as_its_manifest_says(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    manifests = lab(image, tmp_path)
    with kube_played(podman, manifests) as pod:
        assert_serves_the_lab(pod, manifests)
        assert_runs_as_its_manifest_says(pod)


def test_num_set_through_the_manifests_environment(
    podman: Podman, image: str, tmp_path: Path
) -> None:
    """A user's overlay changes NUM the way the docs say: merged into the generated
    ConfigMap, whose new hashed name the Deployment then reads."""
    num = 27
    merge = {"name": "example-service", "behavior": "merge", "literals": [f"NUM={num}"]}
    manifests = lab(image, tmp_path, configMapGenerator=[merge])
    with kube_played(podman, manifests) as pod:
        assert configured_num(pod, manifests) == num
        assert_serves_the_lab(pod, manifests)


def test_the_helm_charts_pod_serves_and_runs_as_its_manifest_says(
    podman: Podman, image: str
) -> None:
    repository, _, tag = image.rpartition(":")
    manifests = render_values(
        {
            "image": {"repository": repository, "tag": tag},
            "replicaCount": 1,
            "autoscaling": {"enabled": False},
        }
    )
    deployment = find(manifests, "Deployment", "example-service")
    assert deployment["spec"]["replicas"] == 1, "replicaCount sets the Deployment's replicas"
    with kube_played(podman, manifests) as pod:
        (container,) = pod.deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == image, "image.repository and image.tag name the image"
        assert_serves_the_lab(pod, manifests)
        assert_runs_as_its_manifest_says(pod)


def lab(image: str, directory: Path, **kustomization: object) -> list[Manifest]:
    """The lab overlay with the image switched to this session's (and what else is given)."""
    name, _, tag = image.rpartition(":")
    images = [{"name": "example-service", "newName": name, "newTag": tag}]
    return render_on_top("lab", directory, images=images, **kustomization)


def assert_serves_the_lab(pod: PlayedPod, manifests: list[Manifest]) -> None:
    response = httpx.get(f"{pod.url}/abc", timeout=30)
    assert response.status_code == 200
    assert response.text == ENV_REPLY, "NUM comes from the manifest's environment"
    metrics = httpx.get(f"{pod.url}/metrics", timeout=10).text.splitlines()
    assert "# HELP request_total Number of request processed by this service." in metrics
    assert "# HELP request_latency_seconds Time spent in this service." in metrics
    assert sample(metrics, "request_total") == 1
    info = httpx.get(f"{pod.url}/info", timeout=10).json()
    assert info["num"] == configured_num(pod, manifests)


def assert_runs_as_its_manifest_says(pod: PlayedPod) -> None:
    spec = pod.deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    context = container["securityContext"]
    status = process_status(pod.pid)
    assert status["Uid"].split()[0] == str(spec["securityContext"]["runAsUser"])
    assert status["Gid"].split()[0] == str(spec["securityContext"]["runAsGroup"])
    assert context["readOnlyRootFilesystem"] is True
    assert "ro" in root_mount_options(pod.pid)
    assert context["capabilities"]["drop"] == ["ALL"]
    assert int(status["CapEff"], 16) == 0
    assert context["allowPrivilegeEscalation"] is False
    assert status["NoNewPrivs"] == "1"
    # The limits, as the service reads them from its cgroup.
    limits = container["resources"]["limits"]
    metrics = httpx.get(f"{pod.url}/metrics", timeout=10).text.splitlines()
    assert sample(metrics, "example_service_cgroup_cpu_quota_cores") == cores(limits["cpu"])
    memory = sample(metrics, "example_service_cgroup_memory_limit_bytes")
    assert memory == quantity_bytes(limits["memory"])


def configured_num(pod: PlayedPod, manifests: list[Manifest]) -> int:
    """NUM as the pod's manifest sets it: in the ConfigMap it reads (envFrom), by the name the
    Deployment gives (kustomize's generated one carries a hash)."""
    (container,) = pod.deployment["spec"]["template"]["spec"]["containers"]
    (source,) = container["envFrom"]
    name = source["configMapRef"]["name"]
    (config_map,) = (
        m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == name
    )
    return int(config_map["data"]["NUM"])


def cores(quantity: str) -> float:
    """A CPU quantity ("1", "1.5", "500m") in cores."""
    return int(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def quantity_bytes(quantity: str) -> int:
    """A memory quantity with a binary suffix ("256Mi") in bytes."""
    return int(quantity[:-2]) * BINARY_SUFFIXES[quantity[-2:]]
