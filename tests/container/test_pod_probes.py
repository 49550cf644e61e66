"""The pods podman can run here, played with `podman kube play` and probed as the kubelet
probes them, and an alert delivered inside Alertmanager's pod (docs/kubernetes.md, section 4).

Two renders, as users apply them: the kustomize `lab` overlay (through a kustomization of the
test's own that only retags the images, as a user retags for a registry) and the Helm chart's
defaults (only the image values changed, as a Helm user switches images; release "chart", so
both renders run side by side). Of each, the service's Deployment and Alertmanager's with its
webhook-log sidecar are played, one replica each, on a bridge of their own; Alertmanager's
image is Debian's package (support/base_image.py), run with the manifest's own arguments.
Prometheus' pod is not played: Debian's Prometheus is built without Kubernetes discovery, so
it would exit on the configuration (tests/deploy/test_prometheus_kubernetes_sd.py runs that
configuration with file-based discovery instead).

Every container's startup, liveness and readiness probes are then sent as the kubelet sends
them (support/probes.py): from this host to the pod's IP, with the probe's period, timeout
and thresholds. Each must become Ready within its startup budget and stay live and ready for
two liveness periods. An alert posted to Alertmanager's port on the pod's IP must come out
of the sidecar's log (`podman logs`, as `kubectl logs deploy/alertmanager -c webhook-log`
shows it), grouped and routed as alertmanager.yml says.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from helm_render import render_values
from kustomize_render import Manifest, render_on_top
from support.base_image import BaseImage
from support.kube_play import PlayedDeployment, kube_played_pods
from support.podman import Podman
from support.probes import Target, Verdict, attempt, setting, watch
from support.waiting import wait_for

pytestmark = [pytest.mark.container, pytest.mark.timeout(600)]

UPSTREAM_ALERTMANAGER = "quay.io/prometheus/alertmanager"
CHART_RELEASE = "chart"
# The Deployments played, by render: (the service's, Alertmanager's).
DEPLOYMENTS = {
    "lab": ("example-service", "alertmanager"),
    "chart": (f"{CHART_RELEASE}-example-service", f"{CHART_RELEASE}-example-service-alertmanager"),
}
# How long each container must stay live and ready once Ready: this many liveness periods.
OBSERVED_PERIODS = 2

Played = dict[str, dict[str, PlayedDeployment]]


def renders(image: str, alertmanager: BaseImage, directory: Path) -> dict[str, list[Manifest]]:
    name, _, tag = image.rpartition(":")
    alertmanager_name, _, alertmanager_tag = alertmanager.name.rpartition(":")
    images = [
        {"name": "example-service", "newName": name, "newTag": tag},
        {"name": UPSTREAM_ALERTMANAGER, "newName": alertmanager_name, "newTag": alertmanager_tag},
    ]
    chart_values = {
        "image": {"repository": name, "tag": tag},
        "monitoring": {
            "alertmanager": {"image": {"repository": alertmanager_name, "tag": alertmanager_tag}}
        },
    }
    return {
        "lab": render_on_top("lab", directory, images=images),
        "chart": render_values(chart_values, release=CHART_RELEASE),
    }


@pytest.fixture(scope="module")
def manifests(
    image: str, alertmanager: BaseImage, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[Manifest]]:
    return renders(image, alertmanager, tmp_path_factory.mktemp("lab"))


@pytest.fixture(scope="module")
def played(podman: Podman, manifests: dict[str, list[Manifest]]) -> Iterator[Played]:
    with ExitStack() as stack:
        yield {
            render: stack.enter_context(
                kube_played_pods(podman, manifests[render], list(DEPLOYMENTS[render]))
            )
            for render in DEPLOYMENTS
        }


def targets(podman: Podman, played: Played) -> list[tuple[str, Target]]:
    found = []
    for render, deployments in played.items():
        for pod in deployments.values():
            for container in pod.deployment["spec"]["template"]["spec"]["containers"]:
                target = Target(
                    container=container,
                    podman_name=pod.container_name(container["name"]),
                    pod_ip=pod.ip,
                    started_at=pod.started_at(podman, container["name"]),
                )
                found.append((f"{render}: {pod.pod}/{container['name']}", target))
    return found


def observed(target: Target) -> float:
    liveness = target.container.get("livenessProbe", {})
    return OBSERVED_PERIODS * setting(liveness, "periodSeconds")


def test_every_container_answers_its_probes_as_from_the_kubelet(
    podman: Podman, played: Played
) -> None:
    found = targets(podman, played)
    assert len(found) == 6, "each render: the service, Alertmanager and its sidecar"
    with ThreadPoolExecutor(len(found)) as pool:
        verdicts: list[tuple[str, Verdict]] = list(
            zip(
                (name for name, _ in found),
                pool.map(lambda item: watch(item[1], podman, observed(item[1])), found),
                strict=True,
            )
        )
    failures = [f"{name}: {verdict.failure}" for name, verdict in verdicts if verdict.failure]
    assert not failures, "\n".join(failures + logs(podman, played))
    for name, verdict in verdicts:
        # Ready, then probed again through the observation: liveness more than once.
        assert verdict.ready_after is not None, name
        assert verdict.probes_sent.get("livenessProbe", 0) >= OBSERVED_PERIODS, (name, verdict)


def test_the_prober_sends_every_kind_and_sees_each_fail(podman: Podman, played: Played) -> None:
    """The kinds the manifests do not use are sent as faithfully, and each kind fails where
    a kubelet's would: among them, a listener on the pod's loopback only, which a TCP probe
    to the pod's IP is refused and an exec probe inside the pod reaches."""
    pod = played["lab"]["alertmanager"]
    spec = pod.deployment["spec"]["template"]["spec"]
    (sidecar,) = [c for c in spec["containers"] if c["name"] == "webhook-log"]
    name = pod.container_name("webhook-log")
    target = Target(sidecar, name, pod.ip, started_at=0.0)
    listener = (
        "import socket, time; s = socket.socket(); s.bind(('127.0.0.1', 5003)); s.listen();"
        " time.sleep(600)"
    )
    podman("exec", "--detach", name, "python", "-c", listener)
    connect = "import socket; socket.create_connection(('127.0.0.1', 5003), timeout=1)"
    cases: list[tuple[dict[str, Any], bool]] = [
        ({"tcpSocket": {"port": "webhook"}}, True),
        ({"tcpSocket": {"port": 5002}}, False),
        ({"httpGet": {"path": "/healthz", "port": 5001}}, True),
        ({"httpGet": {"path": "/nowhere", "port": "webhook"}}, False),
        ({"exec": {"command": ["python", "-c", "pass"]}}, True),
        ({"exec": {"command": ["python", "-c", "raise SystemExit(3)"]}}, False),
        ({"exec": {"command": ["sleep", "5"]}, "timeoutSeconds": 1}, False),
        ({"exec": {"command": ["python", "-c", connect]}}, True),
    ]

    def listening() -> bool:
        ok, seen = attempt(target, cases[-1][0], 10, podman)
        if not ok:
            raise AssertionError(seen)  # wait_for names the last one if none succeeds
        return ok

    # The listener starts in its own time, and on a busy machine podman exec's own start-up
    # takes seconds: neither is under test here, so the exec probe waits for both.
    wait_for(listening, 60, "the loopback listener")
    cases.append(({"tcpSocket": {"port": 5003}}, False))
    for probe, expected in cases:
        # A second more than the probe's timeout: podman exec's own start-up, which here is
        # not what is under test (the sleep outlasts both).
        ok, seen = attempt(target, probe, setting(probe, "timeoutSeconds") + 1, podman)
        assert ok is expected, (probe, seen)


def test_the_helm_test_pod_passes_against_the_played_service(
    podman: Podman, played: Played, manifests: dict[str, list[Manifest]]
) -> None:
    """`helm test`'s pod, played beside the chart's service pod with the Service's address
    swapped for the pod's (podman has no Service), runs as its manifest says and exits 0."""
    (hook,) = [
        m
        for m in manifests["chart"]
        if m["kind"] == "Pod" and "helm.sh/hook" in m["metadata"].get("annotations", {})
    ]
    service = played["chart"][DEPLOYMENTS["chart"][0]]
    (container,) = hook["spec"]["containers"]
    for variable in container["env"]:
        if variable["name"] == "URL":
            assert variable["value"] == f"http://{DEPLOYMENTS['chart'][0]}:80/abc"
            variable["value"] = f"http://{service.ip}:5565/abc"
    play_file = podman.directory / "helm-test-pod.yaml"
    play_file.write_text(yaml.safe_dump(hook), encoding="utf-8")
    name = f"{hook['metadata']['name']}-{container['name']}"
    try:
        podman("kube", "play", "--network", service.network, str(play_file), timeout=180)

        def exited() -> str | None:
            state = podman("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", name)
            status, code = state.stdout.split()
            return code if status in {"exited", "stopped"} else None

        code = wait_for(exited, 60, f"{name} to exit", interval=0.2)
        output = podman("logs", name).stdout
        assert code == "0", output
        assert "200 'there is env NUM. Computation succeeded\\n'" in output
    finally:
        podman("kube", "down", str(play_file), check=False, timeout=180)


def logs(podman: Podman, played: Played) -> list[str]:
    """The containers' last log lines, for a failure's message."""
    lines = []
    for deployments in played.values():
        for pod in deployments.values():
            for container in pod.deployment["spec"]["template"]["spec"]["containers"]:
                name = pod.container_name(container["name"])
                output = podman("logs", "--tail", "15", name, check=False)
                lines.append(f"--- {name}:\n{output.stdout}{output.stderr}")
    return lines


# ---------------------------------------------------------------------------------------
# An alert delivered inside the pod

MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')


def matches(route: dict[str, Any], labels: dict[str, str]) -> bool:
    """A route's matchers (and its older match/match_re maps) against an alert's labels."""
    conditions = [MATCHER.fullmatch(m) for m in route.get("matchers", [])]
    assert all(conditions), f"a matcher not read here: {route.get('matchers')}"
    checks = [(c.group(1), c.group(2), c.group(3)) for c in conditions if c]
    checks += [(name, "=", value) for name, value in route.get("match", {}).items()]
    checks += [(name, "=~", value) for name, value in route.get("match_re", {}).items()]
    for name, operator, value in checks:
        actual = labels.get(name, "")
        equal = actual == value if operator in {"=", "!="} else bool(re.fullmatch(value, actual))
        if equal == operator.startswith("!"):
            return False
    return True


def routed(route: dict[str, Any], labels: dict[str, str], inherited: dict[str, Any]) -> dict:
    """The receiver, group_by and group_wait of the route an alert takes (the first matching
    child at each level, as without `continue`), each inherited where the route sets none."""
    effective = inherited | {
        key: route[key] for key in ("receiver", "group_by", "group_wait") if key in route
    }
    for child in route.get("routes", []):
        assert not child.get("continue"), "a continuing route: not read here"
        if matches(child, labels):
            return routed(child, labels, effective)
    return effective


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(
        float(number) * units[unit] for number, unit in re.findall(r"(\d+)(ms|s|m|h)", duration)
    )


def amtool_receiver(config: Path, labels: dict[str, str]) -> str:
    """The receiver amtool's own route test names for the labels."""
    completed = subprocess.run(
        [
            "amtool",
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            *(f"{name}={value}" for name, value in labels.items()),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return completed.stdout.strip()


def notifications(podman: Podman, container: str) -> list[dict[str, Any]]:
    output = podman("logs", container).stdout
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


# Two alerts of one group (one name, two instances) and one of another group.
COMMON = {"job": "example-service", "namespace": "lab", "severity": "critical"}
SENT = [
    COMMON | {"alertname": "PodProbeCheck", "instance": "10.0.0.1:5565"},
    COMMON | {"alertname": "PodProbeCheck", "instance": "10.0.0.2:5565"},
    COMMON | {"alertname": "PodProbeCheckOther", "instance": "10.0.0.1:5565"},
]


def alertmanager_config(pod: PlayedDeployment, manifests: list[Manifest]) -> str:
    """alertmanager.yml as the pod reads it: the ConfigMap behind its `config` volume."""
    volumes = pod.deployment["spec"]["template"]["spec"]["volumes"]
    name = next(v["configMap"]["name"] for v in volumes if v["name"] == "config")
    (config_map,) = [
        m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == name
    ]
    return str(config_map["data"]["alertmanager.yml"])


def post_alerts(pod: PlayedDeployment) -> None:
    url = f"http://{pod.ip}:9093"
    wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=2).status_code == 200, 60, url)
    body = [{"labels": labels, "annotations": {"summary": "sent by the test"}} for labels in SENT]
    response = httpx.post(f"{url}/api/v2/alerts", json=body, timeout=10)
    assert response.status_code == 200, response.text


def test_an_alert_posted_to_the_pod_ip_comes_out_in_the_sidecar_log(
    podman: Podman, played: Played, manifests: dict[str, list[Manifest]], tmp_path: Path
) -> None:
    """Both renders' Alertmanagers get the alerts first, then both logs are read: their
    group_waits run at once."""
    pods = {render: played[render][DEPLOYMENTS[render][1]] for render in DEPLOYMENTS}
    for pod in pods.values():
        post_alerts(pod)
    names = {labels["alertname"] for labels in SENT}
    for render, pod in pods.items():
        text = alertmanager_config(pod, manifests[render])
        (tmp_path / f"{render}.yml").write_text(text, encoding="utf-8")
        route = routed(yaml.safe_load(text)["route"], SENT[0], {})
        assert route["receiver"] == amtool_receiver(tmp_path / f"{render}.yml", SENT[0])
        sidecar = pod.container_name("webhook-log")

        def delivered(sidecar: str = sidecar) -> list[dict[str, Any]] | None:
            found = [
                n
                for n in notifications(podman, sidecar)
                if n["groupLabels"].get("alertname") in names
            ]
            return found if len(found) >= len(names) else None

        # Alertmanager holds a new group for group_wait before its first notification.
        wait = seconds(route.get("group_wait", "30s")) + 30
        found = wait_for(delivered, wait, f"{render}: the alerts in {sidecar}'s log")
        assert len(found) == len(names), found
        for notification in found:
            group = [
                labels
                for labels in SENT
                if labels["alertname"] == notification["groupLabels"]["alertname"]
            ]
            assert notification["receiver"] == route["receiver"], render
            assert notification["status"] == "firing"
            assert notification["groupLabels"] == {
                name: group[0][name] for name in route["group_by"] if name in group[0]
            }, render
            assert sorted(a["labels"]["instance"] for a in notification["alerts"]) == sorted(
                labels["instance"] for labels in group
            ), render
