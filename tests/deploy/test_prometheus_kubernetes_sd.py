"""The in-cluster Prometheus configuration, run on the real Prometheus.

The monitoring component's prometheus.yml discovers pods with kubernetes_sd_configs, which
Debian's Prometheus is built without. Its relabelling is what decides which pods get scraped
and with which labels, so it is tested for real anyway: a copy of the rendered configuration
gets file_sd_configs in place of each kubernetes_sd_configs, whose targets carry the
__meta_kubernetes_* labels Kubernetes pod discovery would attach to pods made from the
rendered Deployment's pod template. The pods live on loopback addresses (127.0.0.2, ...), each
served by a small /metrics endpoint, so the scrapes are real too. Besides the two replicas
there are pods that must be dropped: one in phase Pending, one without the scrape annotation,
one of another application, and an init container declaring a port.

The prometheus-adapter rule of the hpa-requests overlay is run on the same Prometheus, its
templates filled in as the adapter would fill them, to show that the series it needs carry
the namespace and pod labels it maps to Kubernetes objects.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
import yaml
from generate_prometheusrules import RULES_DIR
from kustomize_render import Manifest, find, find_generated, render
from support.binaries import require
from support.ports import free_port
from support.processes import running
from support.waiting import wait_for

from example_service.stack.processes import Component

NAMESPACE = "lab"
JOB = "example-service"
DEADLINE_SECONDS = 60.0

T = TypeVar("T")


# ---------------------------------------------------------------------------------------
# Pods on loopback, each with a /metrics endpoint


class MetricsHandler(BaseHTTPRequestHandler):
    """A pod's /metrics: the lab's request counter, growing so that rate() sees traffic."""

    counters: ClassVar[dict[tuple[str, int], int]] = {}
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_GET(self) -> None:
        if urllib.parse.urlsplit(self.path).path != "/metrics":
            self.send_error(404)
            return
        key = self.server.server_address[:2]
        with self.lock:
            value = self.counters[key] = self.counters.get(key, 0) + 5
        body = (
            "# HELP request_total Number of request processed by this service.\n"
            "# TYPE request_total counter\n"
            f"request_total {value}\n"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the scrapes are not the test's output


class V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@contextlib.contextmanager
def metrics_servers(addresses: list[str]) -> Iterator[int]:
    """Serve /metrics on every address, all on one port (as pods share a containerPort)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind((addresses[0], 0))
            port = int(probe.getsockname()[1])
        servers: list[ThreadingHTTPServer] = []
        try:
            for address in addresses:
                server_class = V6Server if ":" in address else ThreadingHTTPServer
                servers.append(server_class((address, port), MetricsHandler))
        except OSError:
            for server in servers:
                server.server_close()
            continue  # the port was taken on one of the addresses meanwhile: another one
        threads = [threading.Thread(target=server.serve_forever, daemon=True) for server in servers]
        for thread in threads:
            thread.start()
        try:
            yield port
        finally:
            for server in servers:
                server.shutdown()
                server.server_close()
        return
    pytest.fail(f"no port free on all of {addresses}")


# ---------------------------------------------------------------------------------------
# What Kubernetes pod discovery would produce


@dataclass
class FakePod:
    """A pod as the API server would show it, made from the rendered pod template."""

    name: str
    ip: str
    node: str
    phase: str
    template: Manifest
    expect_scraped: bool
    extra_init_containers: list[Manifest] = field(default_factory=list)


def sanitize(name: str) -> str:
    """Prometheus' label-name sanitising of Kubernetes label and annotation keys."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def discovery_targets(pod: FakePod) -> list[dict[str, Any]]:
    """The targets kubernetes_sd_configs (role: pod) yields for a pod, with their labels."""
    metadata = pod.template["metadata"]
    spec = pod.template["spec"]
    replica_set = f"{JOB}-5d8f7c9b6"
    uid = f"00000000-0000-4000-8000-{zlib.crc32(pod.name.encode()):012x}"
    pod_labels: dict[str, str] = {
        "__meta_kubernetes_namespace": NAMESPACE,
        "__meta_kubernetes_pod_name": pod.name,
        "__meta_kubernetes_pod_ip": pod.ip,
        "__meta_kubernetes_pod_node_name": pod.node,
        "__meta_kubernetes_pod_host_ip": "192.0.2.10",
        "__meta_kubernetes_pod_phase": pod.phase,
        "__meta_kubernetes_pod_ready": "true" if pod.phase == "Running" else "false",
        "__meta_kubernetes_pod_uid": uid,
        "__meta_kubernetes_pod_controller_kind": "ReplicaSet",
        "__meta_kubernetes_pod_controller_name": replica_set,
    }
    labels = {**metadata.get("labels", {}), "pod-template-hash": "5d8f7c9b6"}
    for key, value in labels.items():
        pod_labels[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = value
        pod_labels[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
    for key, value in (metadata.get("annotations") or {}).items():
        pod_labels[f"__meta_kubernetes_pod_annotation_{sanitize(key)}"] = value
        pod_labels[f"__meta_kubernetes_pod_annotationpresent_{sanitize(key)}"] = "true"

    # One target per declared port of every container; a container without ports gets one
    # port-less target.
    host = f"[{pod.ip}]" if ":" in pod.ip else pod.ip
    targets = []
    containers = [(c, "false") for c in spec["containers"]]
    containers += [
        (c, "true") for c in [*spec.get("initContainers", []), *pod.extra_init_containers]
    ]
    for container, init in containers:
        container_labels = {
            **pod_labels,
            "__meta_kubernetes_pod_container_name": container["name"],
            "__meta_kubernetes_pod_container_image": container["image"],
            "__meta_kubernetes_pod_container_init": init,
        }
        ports = container.get("ports") or [None]
        for port in ports:
            if port is None:
                targets.append({"targets": [host], "labels": container_labels})
                continue
            targets.append(
                {
                    "targets": [f"{host}:{port['containerPort']}"],
                    "labels": {
                        **container_labels,
                        "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                        "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                        "__meta_kubernetes_pod_container_port_protocol": port.get(
                            "protocol", "TCP"
                        ),
                    },
                }
            )
    return targets


def template_on_port(template: Manifest, port: int) -> Manifest:
    """The pod template with the service's port moved to a free one on this machine.

    Pods in a cluster each have their own IP, so they all listen on 5565; here, 5565 may be
    taken on 0.0.0.0 by a developer's running service, so the pods share another free port.
    The annotation and the containerPort move together, as they are equal in the manifest.
    """
    moved = copy.deepcopy(template)
    (container,) = moved["spec"]["containers"]
    (http,) = [p for p in container["ports"] if p["name"] == "http"]
    annotations = moved["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(http["containerPort"])
    http["containerPort"] = port
    annotations["prometheus.io/port"] = str(port)
    return moved


def make_pods(template: Manifest, with_ipv6: bool) -> list[FakePod]:
    unannotated = copy.deepcopy(template)
    unannotated["metadata"].pop("annotations")
    other_app = copy.deepcopy(template)
    other_app["metadata"]["labels"]["app.kubernetes.io/name"] = "other-app"
    # An init container that declares a port of the same name (as a sidecar-style init
    # container may): the relabelling must not take it for the service.
    init_container = {
        "name": "warm-up",
        "image": "busybox:1.36.1",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
    }
    pods = [
        FakePod(
            f"{JOB}-5d8f7c9b6-ab12c",
            "127.0.0.2",
            "node-a",
            "Running",
            template,
            expect_scraped=True,
            extra_init_containers=[init_container],
        ),
        FakePod(f"{JOB}-5d8f7c9b6-de34f", "127.0.0.3", "node-b", "Running", template, True),
        # Scheduled, IP assigned, but not started: it must not become an `up == 0` series.
        FakePod(f"{JOB}-5d8f7c9b6-gh56i", "127.0.0.4", "node-a", "Pending", template, False),
        FakePod(f"{JOB}-debug-jk78l", "127.0.0.5", "node-b", "Running", unannotated, False),
        FakePod("other-app-7c9b6d5f8-mn90p", "127.0.0.6", "node-a", "Running", other_app, False),
    ]
    if with_ipv6:
        pods.append(FakePod(f"{JOB}-5d8f7c9b6-qr12s", "::1", "node-c", "Running", template, True))
    return pods


# ---------------------------------------------------------------------------------------
# The derived configuration and the real Prometheus


def file_sd_config(config: dict[str, Any], sd_file: Path, rule_files: list[str]) -> dict[str, Any]:
    """The rendered configuration with pod discovery read from a file instead of the API."""
    derived = copy.deepcopy(config)
    replaced = 0
    for job in derived["scrape_configs"]:
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["file_sd_configs"] = [{"files": [str(sd_file)], "refresh_interval": "1s"}]
            replaced += 1
    assert replaced, "the configuration has no kubernetes_sd_configs to stand in for"
    # Quicker than in the cluster, so that the test waits seconds, not minutes. Nothing in
    # the relabelling depends on the intervals.
    derived["global"].update(
        {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    )
    # The rules from where the ConfigMap takes them (in the pod: /etc/prometheus/rules).
    derived["rule_files"] = rule_files
    return derived


@dataclass
class RunningPrometheus:
    url: str
    pods: list[FakePod]

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=5) as response:
            return json.load(response)

    def query(self, expression: str) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/query", query=expression)
        assert answer["status"] == "success", answer
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    binary = require("prometheus", "prometheus")
    workdir = tmp_path_factory.mktemp("prometheus-kubernetes-sd")
    manifests = render("lab")
    config = yaml.safe_load(
        find_generated(manifests, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"]
    )
    template = find(manifests, "Deployment", JOB)["spec"]["template"]

    with_ipv6 = ipv6_loopback_available()
    addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6"]
    if with_ipv6:
        addresses.append("::1")
    with metrics_servers(addresses) as pod_port:
        pods = make_pods(template_on_port(template, pod_port), with_ipv6)
        sd_file = workdir / "pods.json"
        targets = [target for pod in pods for target in discovery_targets(pod)]
        sd_file.write_text(json.dumps(targets, indent=2), encoding="utf-8")
        rule_files = [str(path) for path in sorted(RULES_DIR.glob("*.yml"))]
        config_file = workdir / "prometheus.yml"
        config_file.write_text(
            yaml.safe_dump(file_sd_config(config, sd_file, rule_files), sort_keys=False),
            encoding="utf-8",
        )
        checked = subprocess.run(
            ["promtool", "check", "config", str(config_file)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr

        address = f"127.0.0.1:{free_port()}"
        command = [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address={address}",
        ]
        server = Component(
            "prometheus", command, f"http://{address}", "/-/ready", workdir / "prometheus.log"
        )
        with running(server, timeout=DEADLINE_SECONDS):
            yield RunningPrometheus(server.url, pods)


def job_targets(prometheus: RunningPrometheus) -> dict[str, Any]:
    data: dict[str, Any] = prometheus.get("/api/v1/targets", state="any")["data"]
    return data


def healthy_active_targets(prometheus: RunningPrometheus) -> list[dict[str, Any]] | None:
    active = [t for t in job_targets(prometheus)["activeTargets"] if t["scrapePool"] == JOB]
    expected = [pod for pod in prometheus.pods if pod.expect_scraped]
    if len(active) == len(expected) and all(t["health"] == "up" for t in active):
        return active
    return None


# ---------------------------------------------------------------------------------------
# The tests


def test_sd_keeps_the_running_annotated_service_pods_with_their_labels(
    prometheus: RunningPrometheus,
) -> None:
    active = wait_for(
        lambda: healthy_active_targets(prometheus),
        DEADLINE_SECONDS,
        "both replicas to be scraped successfully",
    )
    by_pod = {target["labels"]["pod"]: target for target in active}
    expected = {pod.name: pod for pod in prometheus.pods if pod.expect_scraped}
    assert set(by_pod) == set(expected)
    for name, pod in expected.items():
        target = by_pod[name]
        (http,) = [p for p in pod.template["spec"]["containers"][0]["ports"]]
        host = f"[{pod.ip}]" if ":" in pod.ip else pod.ip
        instance = f"{host}:{http['containerPort']}"
        # Exactly these labels: the rules aggregate away instance, pod and node, so any
        # other target label would leak into every job-level series.
        assert target["labels"] == {
            "instance": instance,
            "job": JOB,
            "namespace": NAMESPACE,
            "pod": name,
            "node": pod.node,
        }
        assert target["scrapeUrl"] == f"http://{instance}/metrics"
        assert target["lastError"] == ""


def test_sd_drops_pending_unannotated_other_app_and_init_container_targets(
    prometheus: RunningPrometheus,
) -> None:
    wait_for(
        lambda: healthy_active_targets(prometheus), DEADLINE_SECONDS, "the targets to be discovered"
    )
    targets = job_targets(prometheus)
    dropped = [
        t["discoveredLabels"]
        for t in targets["droppedTargets"]
        if t["discoveredLabels"].get("job") == JOB
    ]
    dropped_pods = {labels["__meta_kubernetes_pod_name"] for labels in dropped}
    must_drop = {pod.name for pod in prometheus.pods if not pod.expect_scraped}
    assert must_drop <= dropped_pods
    active_pods = {t["labels"]["pod"] for t in targets["activeTargets"] if t["scrapePool"] == JOB}
    assert not must_drop & active_pods
    # The init container's port is dropped even though it is named like the service's.
    assert any(
        labels["__meta_kubernetes_pod_container_init"] == "true"
        and labels["__meta_kubernetes_pod_container_port_name"] == "http"
        for labels in dropped
    )


def test_sd_series_carry_namespace_pod_and_node(prometheus: RunningPrometheus) -> None:
    expected = {(pod.name, pod.node) for pod in prometheus.pods if pod.expect_scraped}

    def up_series() -> set[tuple[str, str]] | None:
        result = prometheus.query(f'up{{job="{JOB}", namespace="{NAMESPACE}"}} == 1')
        found = {(s["metric"]["pod"], s["metric"]["node"]) for s in result}
        return found if found == expected else None

    wait_for(up_series, DEADLINE_SECONDS, "up == 1 for each replica")


def test_sd_feeds_the_prometheus_adapter_rule(prometheus: RunningPrometheus) -> None:
    """The hpa-requests overlay's adapter rule finds per-pod series and computes a rate."""
    manifests = render("hpa-requests")
    # Same monitoring component: the configuration tested above is the one this overlay runs.
    assert (
        find_generated(manifests, "ConfigMap", "prometheus-config")["data"]
        == (find_generated(render("lab"), "ConfigMap", "prometheus-config")["data"])
    )
    config_map = find(manifests, "ConfigMap", "prometheus-adapter-rules")
    (rule,) = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    pods = [pod.name for pod in prometheus.pods if pod.expect_scraped]

    # Discovery: the adapter lists series with seriesQuery and needs both resource labels.
    def discovered() -> list[dict[str, str]] | None:
        answer = prometheus.get("/api/v1/series", **{"match[]": rule["seriesQuery"]})
        series: list[dict[str, str]] = answer["data"]
        return series if {s.get("pod") for s in series} >= set(pods) else None

    for series in wait_for(discovered, DEADLINE_SECONDS, "the adapter's series"):
        assert series["namespace"] == NAMESPACE
        assert re.fullmatch(rule["name"]["matches"], series["__name__"])

    # The value for the HPA's pods, with the templates as the adapter fills them for
    # GET .../namespaces/lab/pods/*/<metric>.
    query = (
        rule["metricsQuery"]
        .replace("<<.Series>>", "request_total")
        .replace("<<.LabelMatchers>>", f'namespace="{NAMESPACE}",pod=~"{"|".join(pods)}"')
        .replace("<<.GroupBy>>", "pod")
    )

    def per_pod_rates() -> dict[str, float] | None:
        result = {s["metric"].get("pod", ""): float(s["value"][1]) for s in prometheus.query(query)}
        return result if set(result) == set(pods) and all(result.values()) else None

    rates = wait_for(per_pod_rates, DEADLINE_SECONDS, "a request rate for every pod")
    assert all(rate > 0 for rate in rates.values())
