"""`podman kube play` of a rendered Deployment: the pod the manifests describe, on this host.

Whatever rendered the manifests (kustomize, helm), kube_played() takes the objects, plays the
named Deployment with the ConfigMaps and Secrets it reads, yields the running pod and takes
it down afterwards, failure or not.

Podman runs what the pod spec says: the image, the environment (envFrom included), the
security context (runAsUser, readOnlyRootFilesystem, capabilities, allowPrivilegeEscalation),
resource limits, emptyDir volumes and published ports. It is not a cluster: it ignores
readinessProbe, turns livenessProbe into a healthcheck that nothing runs without systemd,
and knows no Service, PodDisruptionBudget or HorizontalPodAutoscaler (those are checked
offline, in tests/deploy). So this module polls the pod's readiness itself.

Two things are fitted to one host, and only these: one replica (every replica would publish
the same host port), and the Deployment's port published on a free loopback port (podman
publishes a containerPort on the same port of every address otherwise).

kube_played_pods() plays several Deployments at once the way a cluster networks them: one
replica each, no port published, each pod reached at its IP on a bridge of their own (the
probes of support/probes.py go there, as a kubelet's go to the pod's IP).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import yaml

from support.podman import Podman
from support.ports import free_port
from support.waiting import wait_for

Manifest = dict[str, Any]


@dataclass(frozen=True)
class PlayedPod:
    url: str  # the published port, on loopback
    deployment: Manifest  # as played
    pid: int  # the application container's main process, as the host sees it


def for_one_host(
    manifests: list[Manifest], deployment: str, container: str, port: str, host_port: int
) -> list[Manifest]:
    """The Deployment and what it reads, fitted to one host (see the module's docstring)."""
    (played,) = (
        copy.deepcopy(m)
        for m in manifests
        if m["kind"] == "Deployment" and m["metadata"]["name"] == deployment
    )
    spec = played["spec"]["template"]["spec"]
    played["spec"]["replicas"] = 1
    (target,) = (c for c in spec["containers"] if c["name"] == container)
    (published,) = (p for p in target["ports"] if p.get("name") == port)
    published.update(hostPort=host_port, hostIP="127.0.0.1")
    read = referenced_configuration(spec)
    configuration = [m for m in manifests if (m["kind"], m["metadata"]["name"]) in read]
    return [*configuration, played]


def referenced_configuration(spec: Manifest) -> set[tuple[str, str]]:
    """(kind, name) of every ConfigMap and Secret a pod spec reads."""
    found: set[tuple[str, str]] = set()
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        for source in container.get("envFrom", []):
            for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if key in source:
                    found.add((kind, source[key]["name"]))
        for variable in container.get("env", []):
            origin = variable.get("valueFrom", {})
            for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                if key in origin:
                    found.add((kind, origin[key]["name"]))
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            found.add(("ConfigMap", volume["configMap"]["name"]))
        if "secret" in volume:
            found.add(("Secret", volume["secret"]["secretName"]))
    return found


@contextmanager
def kube_played(
    podman: Podman,
    manifests: list[Manifest],
    *,
    deployment: str = "example-service",
    container: str = "example-service",
    port: str = "http",
    ready_path: str = "/readyz",
    timeout: float = 90,
) -> Iterator[PlayedPod]:
    """The Deployment's pod, running and ready on its published port; removed afterwards."""
    host_port = free_port()
    objects = for_one_host(manifests, deployment, container, port, host_port)
    token = secrets.token_hex(4)
    play_file = podman.directory / f"kube-{deployment}-{token}.yaml"
    play_file.write_text(yaml.safe_dump_all(objects), encoding="utf-8")
    # A bridge of the session's own: the host's default podman network stays untouched.
    network = podman.create_network(f"example-service-{token}")
    # Podman names a Deployment's pod DEPLOYMENT-pod-0, and its containers POD-CONTAINER.
    pod = f"{deployment}-pod-0"
    name = f"{pod}-{container}"
    try:
        podman("kube", "play", "--network", network, str(play_file), timeout=180)
        url = f"http://127.0.0.1:{host_port}"

        def ready() -> bool:
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            if state in {"exited", "stopped"}:
                logs = podman("logs", name, check=False)
                raise AssertionError(f"{name} {state}:\n{logs.stdout}{logs.stderr}")
            return httpx.get(f"{url}{ready_path}", timeout=2).status_code == 200

        wait_for(ready, timeout, f"{url}{ready_path} of the played pod", interval=0.2)
        pid = int(podman("inspect", "--format", "{{.State.Pid}}", name).stdout)
        yield PlayedPod(url=url, deployment=objects[-1], pid=pid)
    finally:
        # Stopped at once: a graceful stop would only wait out the drain, which the image's
        # own tests check (podman stop).
        podman("pod", "stop", "--time", "0", pod, check=False)
        podman("kube", "down", str(play_file), check=False, timeout=180)
        podman.remove_network(network)


@dataclass(frozen=True)
class PlayedDeployment:
    deployment: Manifest  # as played
    pod: str  # podman's name of the pod
    ip: str  # the pod's address on the session's bridge, as a cluster's pod IP
    network: str  # that bridge: another pod played on it reaches this one at ip

    def container_name(self, container: str) -> str:
        return f"{self.pod}-{container}"

    def started_at(self, podman: Podman, container: str) -> float:
        """When the container started, on the wall clock (podman's StartedAt)."""
        started = podman(
            "inspect", "--format", "{{.State.StartedAt.Unix}}", self.container_name(container)
        ).stdout.strip()
        return float(started)


@contextmanager
def kube_played_pods(
    podman: Podman, manifests: list[Manifest], deployments: list[str]
) -> Iterator[dict[str, PlayedDeployment]]:
    """The named Deployments' pods, one replica each, on a bridge of their own and reached at
    their pods' IPs as in a cluster: nothing is published on the host. Removed afterwards.

    Podman is not told the containers' ports (podman 4.3 publishes every containerPort on the
    same port of every host address): the pods listen on them all the same, at their IPs.
    PlayedDeployment.deployment keeps them, for the probes that name them."""
    played = []
    read: set[tuple[str, str]] = set()
    for name in deployments:
        (deployment,) = (
            copy.deepcopy(m)
            for m in manifests
            if m["kind"] == "Deployment" and m["metadata"]["name"] == name
        )
        deployment["spec"]["replicas"] = 1
        played.append(deployment)
        read |= referenced_configuration(deployment["spec"]["template"]["spec"])
    configuration = [m for m in manifests if (m["kind"], m["metadata"]["name"]) in read]
    unpublished = copy.deepcopy(played)
    for deployment in unpublished:
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            container.pop("ports", None)
    token = secrets.token_hex(4)
    play_file = podman.directory / f"kube-pods-{token}.yaml"
    play_file.write_text(yaml.safe_dump_all([*configuration, *unpublished]), encoding="utf-8")
    network = podman.create_network(f"example-service-{token}")
    pods = {name: f"{name}-pod-0" for name in deployments}
    try:
        podman("kube", "play", "--network", network, str(play_file), timeout=180)
        found = {}
        for deployment in played:
            name = deployment["metadata"]["name"]
            address = podman(
                "pod",
                "inspect",
                "--format",
                "{{.InfraContainerID}}",
                pods[name],
            ).stdout.strip()
            ip = podman(
                "inspect",
                "--format",
                f'{{{{(index .NetworkSettings.Networks "{network}").IPAddress}}}}',
                address,
            ).stdout.strip()
            found[name] = PlayedDeployment(deployment, pods[name], ip, network)
        yield found
    finally:
        for pod in pods.values():
            podman("pod", "stop", "--time", "0", pod, check=False)
        podman("kube", "down", str(play_file), check=False, timeout=180)
        podman.remove_network(network)
