"""The Kubernetes manifests, checked offline as far as this machine allows.

There is no cluster here, so: every overlay renders with the real kustomize (kubectl's); the
output validates strictly (unknown fields fail) against the OpenAPI schemas of several
Kubernetes versions (kubernetes-validate carries them, no network); prometheus-operator's
objects, whose CRD schemas are not available offline, are checked against the subset of
their API the overlay uses (unknown fields fail there too) and their rules with promtool;
and the project's own policies are checked on every object.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from generate_prometheusrules import OUTPUT as PROMETHEUSRULES_FILE
from generate_prometheusrules import RULES_DIR
from generate_prometheusrules import render as render_prometheusrules
from kubernetes_validate.utils import SchemaNotFoundError
from kustomize_render import (
    MONITORING_OVERLAYS,
    OVERLAYS,
    REPO,
    Manifest,
    containers,
    find,
    find_generated,
    render,
    workloads,
)

from example_service.settings import Settings

# The oldest Kubernetes the chart declares (recursiveReadOnly needs 1.30), the oldest minor
# still in upstream support when this was written, and newer ones up to the newest schema the
# installed kubernetes-validate carries.
KUBERNETES_VERSIONS = ("1.30.0", "1.33.0", "1.36.0", "1.37.0")
# Objects whose schema is a CRD: kubernetes-validate has none of these.
OPERATOR_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}

SERVICE_NAME = "example-service"
# The service's own defaults, for when the ConfigMap does not set them.
DEFAULT_DRAIN_DELAY = Settings().drain_delay
DEFAULT_SHUTDOWN_TIMEOUT = Settings().shutdown_timeout


def all_objects() -> list[tuple[str, Manifest]]:
    return [(overlay, manifest) for overlay in OVERLAYS for manifest in render(overlay)]


def object_id(value: object) -> str:
    if isinstance(value, dict) and "kind" in value:
        return f"{value['kind']}/{value['metadata']['name']}"
    return str(value)


# ---------------------------------------------------------------------------------------
# Rendering and schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders(overlay: str) -> None:
    manifests = render(overlay)
    assert manifests, f"{overlay} renders nothing"
    ids = [(m["apiVersion"], m["kind"], m["metadata"]["name"]) for m in manifests]
    assert len(ids) == len(set(ids)), f"{overlay}: duplicate objects in {ids}"
    for manifest in manifests:
        # Applied with -n: a namespace baked into one object would split the application.
        assert "namespace" not in manifest["metadata"], object_id(manifest)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_carries_the_recommended_labels(overlay: str) -> None:
    """What it is and what it belongs to, on every object and pod: `kubectl get all -l
    app.kubernetes.io/part-of=example-service` finds the whole application."""
    for manifest in render(overlay):
        labels = manifest["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == SERVICE_NAME, object_id(manifest)
        assert labels.get("app.kubernetes.io/name"), object_id(manifest)
    for manifest, _ in workloads(render(overlay)):
        template = manifest["spec"]["template"]["metadata"]["labels"]
        assert template.get("app.kubernetes.io/part-of") == SERVICE_NAME, object_id(manifest)
        assert template.get("app.kubernetes.io/component"), object_id(manifest)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_strictly(overlay: str, version: str) -> None:
    failures = []
    for manifest in render(overlay):
        if manifest["kind"] in OPERATOR_KINDS:
            continue  # test_operator_objects_match_their_api
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            failures.append(f"{object_id(manifest)}: {path}: {error.message}")
        except SchemaNotFoundError as error:
            failures.append(f"{object_id(manifest)}: {error.message}")
    assert not failures, f"{overlay} against Kubernetes {version}:\n" + "\n".join(failures)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_validation_is_strict(version: str) -> None:
    """The validator really rejects what a typo would produce, so a pass above means it."""
    deployment = find(render("base"), "Deployment", SERVICE_NAME)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, version, strict=True)
    service = find(render("base"), "Service", SERVICE_NAME)
    service["spec"]["ports"][0]["port"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, version, strict=True)


# ---------------------------------------------------------------------------------------
# Policies on every container and every object


def containers_of_all_overlays() -> list[Any]:
    return [
        pytest.param(spec, container, id=f"{overlay}:{object_id(manifest)}:{container['name']}")
        for overlay, manifest in all_objects()
        for spec in [manifest_pod_spec(manifest)]
        if spec is not None
        for container in containers(spec)
    ]


def manifest_pod_spec(manifest: Manifest) -> Manifest | None:
    found = list(workloads([manifest]))
    return found[0][1] if found else None


@pytest.mark.parametrize(("spec", "container"), containers_of_all_overlays())
def test_container_policy(spec: Manifest, container: Manifest) -> None:
    for probe in ("livenessProbe", "readinessProbe"):
        assert probe in container, f"no {probe}"
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            assert resource in resources.get(kind, {}), f"no {resource} {kind}"

    pod_security = spec.get("securityContext", {})
    security = container.get("securityContext", {})
    assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True
    run_as_user = security.get("runAsUser", pod_security.get("runAsUser"))
    assert run_as_user is not None, "a numeric user, so runAsNonRoot can be verified"
    assert run_as_user != 0
    assert security.get("readOnlyRootFilesystem") is True
    assert security.get("allowPrivilegeEscalation") is False
    assert security.get("capabilities", {}).get("drop") == ["ALL"]
    assert not security.get("capabilities", {}).get("add")
    assert not security.get("privileged", False)
    seccomp = security.get("seccompProfile", pod_security.get("seccompProfile", {}))
    assert seccomp.get("type") == "RuntimeDefault"

    # With a read-only root, every path the container writes is a volume: each mount must
    # name one that the pod declares.
    volumes = {volume["name"] for volume in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        assert mount["name"] in volumes, f"{mount['mountPath']}: no volume {mount['name']}"


@pytest.mark.parametrize(("spec", "container"), containers_of_all_overlays())
def test_image_is_pinned(spec: Manifest, container: Manifest) -> None:
    image = container["image"]
    assert "@sha256:" in image or re.search(r":[\w][\w.-]*$", image.rsplit("/", 1)[-1]), (
        f"{image}: no tag or digest"
    )
    tag = image.rsplit("/", 1)[-1].partition("@")[0].partition(":")[2]
    assert tag not in {"latest", "main", "master", "stable", "edge"}, image
    # A version tag (1.0.0, v2.55.1): something that names one build.
    assert "@sha256:" in image or re.fullmatch(r"v?\d+\.\d+\.\d+([.-][\w.]+)?", tag), image
    assert container.get("imagePullPolicy") in {"IfNotPresent", None}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_pods_and_named_ports_exist(overlay: str) -> None:
    manifests = render(overlay)
    templates = [
        (manifest["spec"]["template"]["metadata"].get("labels", {}), spec)
        for manifest, spec in workloads(manifests)
        if manifest["kind"] != "Pod"
    ]
    for service in (m for m in manifests if m["kind"] == "Service"):
        selector = service["spec"]["selector"]
        selected = [
            spec
            for labels, spec in templates
            if selector.items() <= labels.items()  # every selector pair is on the pod
        ]
        assert selected, f"{overlay}: Service {service['metadata']['name']} selects no pod"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for spec in selected:
                declared = [p for c in spec["containers"] for p in c.get("ports", [])]
                key = "name" if isinstance(target, str) else "containerPort"
                assert any(p.get(key) == target for p in declared), (
                    f"{overlay}: Service {service['metadata']['name']} port {target} "
                    f"is not declared by the pods it selects"
                )
    # Probes that name a port name one the container declares.
    for _, spec in workloads(manifests):
        for container in containers(spec):
            names = {p["name"] for p in container.get("ports", []) if "name" in p}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if isinstance(port, str):
                    assert port in names, f"{overlay}: {container['name']} {probe} port {port}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_references_resolve(overlay: str) -> None:
    """ConfigMaps, ServiceAccounts and scale targets that objects name exist in the render."""
    manifests = render(overlay)
    names: dict[str, set[str]] = {}
    for manifest in manifests:
        names.setdefault(manifest["kind"], set()).add(manifest["metadata"]["name"])
    for manifest, spec in workloads(manifests):
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in names.get("ConfigMap", set()), volume
        for container in containers(spec):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in names.get("ConfigMap", set())
        account = spec.get("serviceAccountName")
        if account:
            assert account in names.get("ServiceAccount", set()), object_id(manifest)
    for manifest in manifests:
        if manifest["kind"] == "HorizontalPodAutoscaler":
            ref = manifest["spec"]["scaleTargetRef"]
            assert ref["name"] in names.get(ref["kind"], set()), ref
        if manifest["kind"] == "PodDisruptionBudget":
            selector = manifest["spec"]["selector"]["matchLabels"]
            assert any(
                selector.items() <= m["spec"]["template"]["metadata"]["labels"].items()
                for m, _ in workloads(manifests)
            ), f"{overlay}: PodDisruptionBudget selects no pod"
        if manifest["kind"] == "RoleBinding":
            assert manifest["roleRef"]["name"] in names.get(manifest["roleRef"]["kind"], set())
            for subject in manifest["subjects"]:
                assert subject["name"] in names.get(subject["kind"], set()), subject


# ---------------------------------------------------------------------------------------
# The service's Deployment


def service_settings(manifests: list[Manifest]) -> dict[str, str]:
    """The environment the example-service container gets from its ConfigMap and env."""
    deployment = find(manifests, "Deployment", SERVICE_NAME)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    settings: dict[str, str] = {}
    for source in container.get("envFrom", []):
        config_map = find(manifests, "ConfigMap", source["configMapRef"]["name"])
        settings.update(config_map["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            settings[variable["name"]] = variable["value"]
    return settings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_deployment(overlay: str) -> None:
    manifests = render(overlay)
    deployment = find(manifests, "Deployment", SERVICE_NAME)
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]

    # The autoscaler owns the count (its floor is the lab's two replicas, tested with it): a
    # count here would reset a scaled-out Deployment at every apply.
    assert "replicas" not in spec
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    http = [p for p in container["ports"] if p.get("name") == "http"]
    assert http == [{"name": "http", "containerPort": 5565, "protocol": "TCP"}]
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    # Kubernetes would inject EXAMPLE_SERVICE_PORT=tcp://... for the Service of that name.
    assert pod["enableServiceLinks"] is False
    assert any(
        c["topologyKey"] == "kubernetes.io/hostname" for c in pod["topologySpreadConstraints"]
    )

    settings = service_settings(manifests)
    assert int(settings["NUM"]) >= 1
    assert settings.get("PORT", "5565") == "5565"
    drain = float(settings.get("DRAIN_DELAY", DEFAULT_DRAIN_DELAY))
    shutdown = float(settings.get("SHUTDOWN_TIMEOUT", DEFAULT_SHUTDOWN_TIMEOUT))
    grace = pod["terminationGracePeriodSeconds"]
    assert grace >= 15
    assert grace >= drain + shutdown + 3, "the drain and the shutdown, with a margin"

    if overlay != "operator":
        annotations = spec["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(http[0]["containerPort"])
        assert annotations["prometheus.io/path"] == "/metrics"

    service = find(manifests, "Service", SERVICE_NAME)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert find(manifests, "PodDisruptionBudget", SERVICE_NAME)
    hpa = find(manifests, "HorizontalPodAutoscaler", SERVICE_NAME)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] >= 2


def test_host_sysfs_overlay_mounts_sys_read_only() -> None:
    manifests = render("host-sysfs")
    pod = find(manifests, "Deployment", SERVICE_NAME)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (volume,) = [v for v in pod["volumes"] if "hostPath" in v]
    assert volume["hostPath"] == {"path": "/sys", "type": "Directory"}
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True
    assert service_settings(manifests)["SYSFS_ROOT"] == mount["mountPath"]
    # The cgroup readings stay the container's own.
    assert "CGROUP_ROOT" not in service_settings(manifests)
    # Only this overlay reaches into the node.
    for overlay in set(OVERLAYS) - {"host-sysfs"}:
        for _, spec in workloads(render(overlay)):
            assert not any("hostPath" in v for v in spec.get("volumes", [])), overlay


# ---------------------------------------------------------------------------------------
# The monitoring component


@pytest.mark.parametrize("overlay", MONITORING_OVERLAYS)
def test_prometheus_node_port_only_in_the_lab(overlay: str) -> None:
    """The lab's UI on node port 30177; elsewhere the unauthenticated API stays inside the
    cluster (kubectl port-forward)."""
    service = find(render(overlay), "Service", "prometheus")
    (port,) = service["spec"]["ports"]
    if overlay == "lab":
        assert service["spec"]["type"] == "NodePort"
        assert (port["port"], port["nodePort"]) == (9090, 30177)
    else:
        assert service["spec"]["type"] == "ClusterIP"
        assert "nodePort" not in port


@pytest.mark.parametrize("overlay", MONITORING_OVERLAYS)
def test_prometheus_rbac_is_least_privilege(overlay: str) -> None:
    manifests = render(overlay)
    assert not [m for m in manifests if m["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    roles = [m for m in manifests if m["kind"] == "Role"]
    for role in roles:
        for rule in role["rules"]:
            assert rule["apiGroups"] == [""]
            assert rule["resources"] == ["pods"]
            assert set(rule["verbs"]) <= {"get", "list", "watch"}
    pod = find(manifests, "Deployment", "prometheus")["spec"]["template"]["spec"]
    binding = find(manifests, "RoleBinding", "prometheus-pod-discovery")
    assert {"kind": "ServiceAccount", "name": pod["serviceAccountName"]} in binding["subjects"]
    # Every other pod goes without an API token.
    for manifest, spec in workloads(manifests):
        if manifest["metadata"]["name"] != "prometheus":
            assert spec.get("automountServiceAccountToken") is False, object_id(manifest)

    # The Role covers only Prometheus' own namespace, and so must its discovery.
    config = prometheus_config(manifests)
    for job in config["scrape_configs"]:
        for discovery in job.get("kubernetes_sd_configs", []):
            assert discovery["role"] == "pod"
            assert discovery["namespaces"] == {"own_namespace": True}


def prometheus_config(manifests: list[Manifest]) -> dict[str, Any]:
    config_map = find_generated(manifests, "ConfigMap", "prometheus-config")
    config: dict[str, Any] = yaml.safe_load(config_map["data"]["prometheus.yml"])
    return config


@pytest.mark.parametrize("overlay", MONITORING_OVERLAYS)
def test_prometheus_config_and_mounts_agree(overlay: str) -> None:
    manifests = render(overlay)
    config = prometheus_config(manifests)
    pod = find(manifests, "Deployment", "prometheus")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    config_flag = next(a for a in container["args"] if a.startswith("--config.file="))
    config_path = config_flag.split("=", 1)[1]
    assert mounts[config_path]["subPath"] == "prometheus.yml"
    (rules_glob,) = config["rule_files"]
    rules_mount = mounts[str(Path(rules_glob).parent)]
    rules_volume = volumes[rules_mount["name"]]["configMap"]["name"]
    rules = find(manifests, "ConfigMap", rules_volume)
    assert rules["metadata"]["name"].startswith("prometheus-rules-")

    (alertmanagers,) = config["alerting"]["alertmanagers"]
    (target,) = alertmanagers["static_configs"][0]["targets"]
    host, port = target.split(":")
    alertmanager = find(manifests, "Service", host)
    assert alertmanager["spec"]["ports"][0]["port"] == int(port)

    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == SERVICE_NAME]
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"namespace", "pod", "node", "__address__", "__metrics_path__"} <= targets


@pytest.mark.parametrize("overlay", MONITORING_OVERLAYS)
def test_rule_and_alertmanager_configmaps_are_the_repository_files(overlay: str) -> None:
    """The ConfigMaps hold the files themselves: every rule file, byte for byte."""
    manifests = render(overlay)
    rules = find_generated(manifests, "ConfigMap", "prometheus-rules")["data"]
    files = {path.name: path.read_text(encoding="utf-8") for path in RULES_DIR.glob("*.yml")}
    assert files, "no rule files in deploy/prometheus/rules"
    assert rules == files, "deploy/prometheus/kustomization.yaml must list every rule file"
    alertmanager = find_generated(manifests, "ConfigMap", "alertmanager-config")["data"]
    source = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
    assert alertmanager == {"alertmanager.yml": source.read_text(encoding="utf-8")}

    pod = find(manifests, "Deployment", "alertmanager")["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "alertmanager")
    config_flag = next(a for a in container["args"] if a.startswith("--config.file="))
    mount = next(
        m
        for m in container["volumeMounts"]
        if config_flag.split("=", 1)[1] == f"{m['mountPath']}/alertmanager.yml"
    )
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"].startswith("alertmanager-config-")

    # The notifications' receiver: the sidecar runs webhook_log.py, the file itself, on the
    # port of alertmanager.yml's loopback webhook URL.
    script = REPO / "deploy" / "alertmanager" / "webhook_log.py"
    sink_files = find_generated(manifests, "ConfigMap", "alertmanager-webhook-log")["data"]
    assert sink_files == {"webhook_log.py": script.read_text(encoding="utf-8")}
    sink = next(c for c in pod["containers"] if c["name"] == "webhook-log")
    (sink_mount,) = sink["volumeMounts"]
    assert sink["command"][-1] == f"{sink_mount['mountPath']}/webhook_log.py"
    sink_volume = next(v for v in pod["volumes"] if v["name"] == sink_mount["name"])
    assert sink_volume["configMap"]["name"].startswith("alertmanager-webhook-log-")
    webhook = re.search(r"url:\s*&webhook_url\s+(\S+)", source.read_text(encoding="utf-8"))
    assert webhook is not None
    assert webhook.group(1).startswith("http://127.0.0.1:")
    assert [p["containerPort"] for p in sink["ports"]] == [
        int(webhook.group(1).split(":")[2].strip("/"))
    ]


def test_rendered_rules_and_alertmanager_config_load(tmp_path: Path) -> None:
    """What the pods will read passes the same checks Prometheus and Alertmanager make."""
    manifests = render("lab")
    rules = find_generated(manifests, "ConfigMap", "prometheus-rules")["data"]
    for name, text in rules.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    run_checked(["promtool", "check", "rules", *sorted(str(tmp_path / n) for n in rules)])
    alertmanager = find_generated(manifests, "ConfigMap", "alertmanager-config")["data"]
    (tmp_path / "alertmanager.yml").write_text(alertmanager["alertmanager.yml"], "utf-8")
    run_checked(["amtool", "check-config", str(tmp_path / "alertmanager.yml")])


def run_checked(command: list[str]) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0, f"{' '.join(command)}:\n{completed.stdout}{completed.stderr}"


# ---------------------------------------------------------------------------------------
# The operator overlay
#
# No CRD schema for monitoring.coreos.com is available offline here (kubernetes-validate
# carries only built-in kinds, and nothing installable from this machine's registries ships
# the CRDs as schemas). So the objects are checked against the part of prometheus-operator's
# documented API (v1) that the overlay uses, with unknown fields rejected, and the rules they
# carry with promtool.

# prometheus-operator's Duration: 0, or units from years down to milliseconds, in order.
_DURATION_UNITS = ("y", "w", "d", "h", "m", "s", "ms")
_DURATION = {
    "type": "string",
    "pattern": "^(0|" + "".join(f"(([0-9]+){unit})?" for unit in _DURATION_UNITS) + ")$",
}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_LABEL_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"matchLabels": _STRING_MAP, "matchExpressions": {"type": "array"}},
}
_RELABEL_CONFIG = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sourceLabels": {"type": "array", "items": {"type": "string"}},
        "separator": {"type": "string"},
        "targetLabel": {"type": "string"},
        "regex": {"type": "string"},
        "modulus": {"type": "integer"},
        "replacement": {"type": "string"},
        "action": {
            "enum": [
                "replace",
                "keep",
                "drop",
                "hashmod",
                "labelmap",
                "labeldrop",
                "labelkeep",
                "lowercase",
                "uppercase",
                "keepequal",
                "dropequal",
            ]
        },
    },
}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "labels": _STRING_MAP, "annotations": _STRING_MAP},
}
OPERATOR_SCHEMAS: dict[str, dict[str, Any]] = {
    "PodMonitor": {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "PodMonitor"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["selector", "podMetricsEndpoints"],
                "properties": {
                    "jobLabel": {"type": "string"},
                    "podTargetLabels": {"type": "array", "items": {"type": "string"}},
                    "selector": _LABEL_SELECTOR,
                    "namespaceSelector": {"type": "object"},
                    "sampleLimit": {"type": "integer"},
                    "podMetricsEndpoints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {
                                "port": {"type": "string"},
                                "path": {"type": "string"},
                                "scheme": {"enum": ["http", "https"]},
                                "interval": _DURATION,
                                "scrapeTimeout": _DURATION,
                                "honorLabels": {"type": "boolean"},
                                "relabelings": {"type": "array", "items": _RELABEL_CONFIG},
                                "metricRelabelings": {
                                    "type": "array",
                                    "items": _RELABEL_CONFIG,
                                },
                            },
                        },
                    },
                },
            },
        },
    },
    "PrometheusRule": {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "monitoring.coreos.com/v1"},
            "kind": {"const": "PrometheusRule"},
            "metadata": _METADATA,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "groups": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name", "rules"],
                            "properties": {
                                "name": {"type": "string", "minLength": 1},
                                "interval": _DURATION,
                                "query_offset": _DURATION,
                                "limit": {"type": "integer"},
                                "partial_response_strategy": {"type": "string"},
                                "labels": _STRING_MAP,
                                "rules": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "required": ["expr"],
                                        "oneOf": [
                                            {"required": ["alert"]},
                                            {"required": ["record"]},
                                        ],
                                        "properties": {
                                            "alert": {"type": "string"},
                                            "record": {"type": "string"},
                                            "expr": {"type": ["string", "integer"]},
                                            "for": _DURATION,
                                            "keep_firing_for": _DURATION,
                                            "labels": _STRING_MAP,
                                            "annotations": _STRING_MAP,
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            },
        },
    },
}


def operator_objects() -> list[Manifest]:
    return [m for m in render("operator") if m["kind"] in OPERATOR_KINDS]


def test_operator_objects_match_their_api() -> None:
    objects = operator_objects()
    assert {m["kind"] for m in objects} == {"PodMonitor", "PrometheusRule"}
    for manifest in objects:
        jsonschema.validate(manifest, OPERATOR_SCHEMAS[manifest["kind"]])
        # Ask the validator too, so that the day it ships these schemas they are used.
        for version in KUBERNETES_VERSIONS:
            with pytest.raises(SchemaNotFoundError):
                kubernetes_validate.validate(manifest, version, strict=True)


def test_operator_schema_subset_rejects_unknown_fields() -> None:
    monitor = find(operator_objects(), "PodMonitor", SERVICE_NAME)
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(monitor, OPERATOR_SCHEMAS["PodMonitor"])


def test_podmonitor_scrapes_the_service_pods_like_the_monitoring_component() -> None:
    manifests = render("operator")
    monitor = find(manifests, "PodMonitor", SERVICE_NAME)
    template = find(manifests, "Deployment", SERVICE_NAME)["spec"]["template"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for c in template["spec"]["containers"] for p in c["ports"]}
    assert endpoint["port"] in ports
    assert endpoint["path"] == "/metrics"
    relabelings = endpoint["relabelings"]
    assert {"action": "replace", "targetLabel": "job", "replacement": SERVICE_NAME} in relabelings
    assert any(
        r.get("targetLabel") == "node"
        and r.get("sourceLabels") == ["__meta_kubernetes_pod_node_name"]
        for r in relabelings
    )
    # No annotations left for an annotation-based job to scrape the pods a second time.
    assert not template["metadata"].get("annotations")


def test_prometheusrules_are_generated_from_the_rule_files() -> None:
    assert PROMETHEUSRULES_FILE.read_text(encoding="utf-8") == render_prometheusrules(), (
        "deploy/kubernetes/overlays/operator/prometheusrules.yaml is stale: run "
        "make prometheusrules"
    )
    rendered = {
        m["metadata"]["name"]: m["spec"]["groups"]
        for m in render("operator")
        if m["kind"] == "PrometheusRule"
    }
    expected = {
        path.stem: yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for path in RULES_DIR.glob("*.yml")
    }
    assert rendered == expected


def test_prometheusrules_load_in_promtool(tmp_path: Path) -> None:
    files = []
    for manifest in operator_objects():
        if manifest["kind"] == "PrometheusRule":
            path = tmp_path / f"{manifest['metadata']['name']}.yml"
            path.write_text(yaml.safe_dump({"groups": manifest["spec"]["groups"]}), "utf-8")
            files.append(str(path))
    assert files
    run_checked(["promtool", "check", "rules", *files])


# ---------------------------------------------------------------------------------------
# The requests-per-second autoscaling overlay


def adapter_rules(manifests: list[Manifest]) -> list[dict[str, Any]]:
    config_map = find(manifests, "ConfigMap", "prometheus-adapter-rules")
    rules: list[dict[str, Any]] = yaml.safe_load(config_map["data"]["config.yaml"])["rules"]
    return rules


def test_requests_hpa_uses_the_metric_the_adapter_serves() -> None:
    manifests = render("hpa-requests")
    hpa = find(manifests, "HorizontalPodAutoscaler", SERVICE_NAME)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    name = metric["pods"]["metric"]["name"]
    assert metric["pods"]["target"]["type"] == "AverageValue"

    (rule,) = [r for r in adapter_rules(manifests) if r["name"]["as"] == name]
    # The adapter maps the series' namespace and pod labels to the HPA's pods: the labels the
    # monitoring component's relabelling attaches (test_prometheus_kubernetes_sd proves it).
    assert rule["resources"]["overrides"] == {
        "namespace": {"resource": "namespace"},
        "pod": {"resource": "pod"},
    }
    assert re.fullmatch(rule["name"]["matches"], "request_total")
    for placeholder in ("<<.Series>>", "<<.LabelMatchers>>", "<<.GroupBy>>"):
        assert placeholder in rule["metricsQuery"]
    # The CPU autoscaler of the base is replaced, not doubled.
    assert len([m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"]) == 1
