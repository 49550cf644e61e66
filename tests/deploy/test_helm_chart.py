"""The Helm chart, rendered and linted by Helm's own engine, and equal to the kustomize manifests.

No helm binary is reachable here; helm-python-sdk carries Helm v4 as a library and renders,
lints and packages offline (tests/deploy/helm_render.py). Each documented scenario renders
the objects its kustomize overlay renders, with the differences Helm's conventions bring
listed below and nothing else; each validates strictly against the Kubernetes schemas; the
values schema turns typos into errors; and the packaged chart carries the repository's files.
The project's policies (probes, limits, security context, RBAC, ...) are checked on the
kustomize output by test_kubernetes_manifests.py: equality carries them over to the chart.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from helm_render import (
    CHART_DIR,
    RELEASE,
    SCENARIOS,
    VALUES_DIR,
    chart,
    render,
    render_values,
    scenario_values,
)
from kustomize_render import REPO, Manifest, find, workloads
from kustomize_render import render as render_kustomize
from package_chart import ChartLintError, lint
from support.service import StartService

from example_service import __version__
from example_service.settings import ENVIRONMENT_VARIABLES, Settings

# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion: recursiveReadOnly needs
# 1.30), the oldest minor in upstream support when this was written, and the newest schema
# kubernetes-validate carries.
KUBERNETES_VERSIONS = ("1.30.0", "1.33.0", "1.37.0")

# ---------------------------------------------------------------------------------------
# What may differ between the chart's default render and `kubectl kustomize`, and nothing
# else. For release "example-service", the walkthrough's (docs/kubernetes.md):

# The labels Helm charts add by convention (Helm's best practices, `helm create`), on every
# object and pod template, with these values.
HELM_LABELS = {
    "app.kubernetes.io/instance": RELEASE,
    "app.kubernetes.io/managed-by": "Helm",
    "app.kubernetes.io/version": __version__,
    "helm.sh/chart": f"example-service-{__version__}",
}
# ...of which this one also selects: two releases in one namespace never select each other's
# pods (Deployment selectors, Service selectors, PodDisruptionBudget, spread constraints).
HELM_SELECTOR_LABEL = "app.kubernetes.io/instance"
# Names derived from the release: kustomize's name (without the content hash of a generated
# ConfigMap) -> the chart's. The service's own objects keep their names for this release.
RELEASE_NAMES = {
    "example-service": "example-service",
    "example-service-default-deny": "example-service-default-deny",
    "prometheus": "example-service-prometheus",
    "prometheus-pod-discovery": "example-service-prometheus-pod-discovery",
    "prometheus-config": "example-service-prometheus-config",
    "prometheus-rules": "example-service-prometheus-rules",
    "alertmanager": "example-service-alertmanager",
    "alertmanager-config": "example-service-alertmanager-config",
    "alertmanager-webhook-log": "example-service-alertmanager-webhook-log",
    "prometheus-adapter-rules": "example-service-prometheus-adapter-rules",
}
# kustomize generates these ConfigMaps with a content hash in the name, so that a change rolls
# the pods using them; Helm's way is a checksum annotation on the pod template instead.
HASHED_CONFIGMAPS = {
    "example-service",
    "prometheus-config",
    "prometheus-rules",
    "alertmanager-config",
    "alertmanager-webhook-log",
}
CHECKSUM_ANNOTATION = "checksum/config"
# prometheus.yml names the Alertmanager Service; the chart rewrites that one reference.
ALERTMANAGER_TARGET = ('"alertmanager:9093"', '"example-service-alertmanager:9093"')
# Applications installed apart (their own charts), which the chart's policies name.
OTHER_RELEASES = {"prometheus-adapter"}
# `helm test`'s pods: Helm hooks, which kustomize has no counterpart of.
HOOK_ANNOTATION = "helm.sh/hook"
# Lists that Kubernetes treats as maps: kustomize's patches prepend their entries, the
# templates append them; the order means nothing, so both are compared sorted by key.
LIST_MAP_KEYS = {"env": "name", "volumes": "name", "volumeMounts": "mountPath"}
# The one lint finding the chart keeps: the project has no logo.
ACCEPTED_LINT_FINDINGS = [{"severity": 1, "path": "Chart.yaml", "error": "icon is recommended"}]

# Not values: the pod listens on every interface (HOST's default) at the port its probes,
# Service and scrape annotations name, and hostSysfs sets SYSFS_ROOT.
CHART_OWNED_SETTINGS = {"HOST", "PORT", "SYSFS_ROOT"}


def object_key(manifest: Manifest) -> str:
    return f"{manifest['kind']}/{manifest['metadata']['name']}"


def label_maps(manifest: Manifest) -> Iterator[tuple[str, dict[str, str]]]:
    """(where, map) for the object's labels and its pod template's."""
    yield "labels", manifest["metadata"].setdefault("labels", {})
    template = manifest.get("spec", {}).get("template")
    if template is not None:
        yield "template labels", template["metadata"].setdefault("labels", {})


def selector_maps(manifest: Manifest) -> Iterator[dict[str, str]]:
    spec = manifest.get("spec", {})
    if manifest["kind"] == "Service":
        yield spec["selector"]
    elif manifest["kind"] == "NetworkPolicy":
        yield spec["podSelector"]["matchLabels"]
        for rule in spec.get("ingress", []):
            for peer in rule.get("from", []):
                labels = peer.get("podSelector", {}).get("matchLabels", {})
                # prometheus-adapter is another release's: no label of this one selects it.
                if labels and labels.get("app.kubernetes.io/name") not in OTHER_RELEASES:
                    yield labels
    elif "selector" in spec:
        yield spec["selector"]["matchLabels"]
    template = spec.get("template", {}).get("spec", {})
    for constraint in template.get("topologySpreadConstraints", []):
        yield constraint["labelSelector"]["matchLabels"]


def without_helm_conventions(manifest: Manifest) -> Manifest:
    """The chart's object less HELM_LABELS and the checksum annotation, each checked present."""
    manifest = copy.deepcopy(manifest)
    key = object_key(manifest)
    for where, labels in label_maps(manifest):
        for name, value in HELM_LABELS.items():
            assert labels.pop(name, None) == value, f"{key}: {where} {name} is not {value}"
    for selector in selector_maps(manifest):
        assert selector.pop(HELM_SELECTOR_LABEL, None) == RELEASE, f"{key}: selector {selector}"
    template = manifest.get("spec", {}).get("template")
    if template is not None:
        annotations = template["metadata"].get("annotations", {})
        uses_configmap = any("configMap" in v for v in template["spec"].get("volumes", [])) or any(
            "envFrom" in c for c in template["spec"]["containers"]
        )
        checksum = annotations.pop(CHECKSUM_ANNOTATION, None)
        if uses_configmap:
            assert checksum is not None and re.fullmatch(r"[0-9a-f]{64}", checksum), key
        if not annotations:
            template["metadata"].pop("annotations", None)
    return manifest


def kustomize_name(name: str) -> str:
    """The chart's name for a kustomize object's name."""
    base, _, suffix = name.rpartition("-")
    if base in HASHED_CONFIGMAPS and re.fullmatch(r"[a-z0-9]{10}", suffix):
        name = base
    return RELEASE_NAMES[name]


def with_release_names(manifest: Manifest) -> Manifest:
    """The kustomize object with the chart's names, in its name and every reference."""
    manifest = copy.deepcopy(manifest)
    metadata = manifest["metadata"]
    metadata["name"] = kustomize_name(metadata["name"])
    spec = manifest.get("spec", {})
    if "scaleTargetRef" in spec:
        spec["scaleTargetRef"]["name"] = kustomize_name(spec["scaleTargetRef"]["name"])
    if manifest["kind"] == "RoleBinding":
        manifest["roleRef"]["name"] = kustomize_name(manifest["roleRef"]["name"])
        for subject in manifest["subjects"]:
            subject["name"] = kustomize_name(subject["name"])
    if manifest["kind"] == "ConfigMap" and "prometheus.yml" in manifest.get("data", {}):
        text = manifest["data"]["prometheus.yml"]
        assert ALERTMANAGER_TARGET[0] in text
        manifest["data"]["prometheus.yml"] = text.replace(*ALERTMANAGER_TARGET)
    for _, pod in workloads([manifest]):
        if "serviceAccountName" in pod:
            pod["serviceAccountName"] = kustomize_name(pod["serviceAccountName"])
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                volume["configMap"]["name"] = kustomize_name(volume["configMap"]["name"])
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                ref = source["configMapRef"]
                ref["name"] = kustomize_name(ref["name"])
    return manifest


def sorted_list_maps(value: Any) -> Any:
    """value with every LIST_MAP_KEYS list, at any depth, sorted by its key."""
    if isinstance(value, dict):
        return {
            key: (
                sorted((sorted_list_maps(v) for v in item), key=lambda e: e[LIST_MAP_KEYS[key]])
                if key in LIST_MAP_KEYS and isinstance(item, list)
                else sorted_list_maps(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [sorted_list_maps(item) for item in value]
    return value


def comparable_chart(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        object_key(m): sorted_list_maps(without_helm_conventions(m))
        for m in manifests
        if HOOK_ANNOTATION not in m["metadata"].get("annotations", {})
    }


def comparable_kustomize(overlay: str) -> dict[str, Manifest]:
    objects = (with_release_names(m) for m in render_kustomize(overlay))
    return {object_key(m): sorted_list_maps(m) for m in objects}


def differences(chart_objects: dict[str, Manifest], kustomize_objects: dict[str, Manifest]) -> str:
    """A readable account of what differs: objects missing on one side, unified diffs."""
    lines = [f"only in kustomize: {k}" for k in sorted(kustomize_objects.keys() - chart_objects)]
    lines += [f"only in the chart: {k}" for k in sorted(chart_objects.keys() - kustomize_objects)]
    for key in sorted(chart_objects.keys() & kustomize_objects.keys()):
        if chart_objects[key] != kustomize_objects[key]:
            lines.extend(
                difflib.unified_diff(
                    yaml.safe_dump(kustomize_objects[key]).splitlines(),
                    yaml.safe_dump(chart_objects[key]).splitlines(),
                    f"kustomize {key}",
                    f"chart {key}",
                    lineterm="",
                )
            )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# One source of truth


@pytest.mark.parametrize("scenario", [s for s, found in SCENARIOS.items() if found.overlay])
def test_chart_renders_what_kustomize_renders(scenario: str) -> None:
    overlay = SCENARIOS[scenario].overlay
    assert overlay is not None
    found = differences(comparable_chart(render(scenario)), comparable_kustomize(overlay))
    assert not found, f"chart ({scenario}) and kustomize ({overlay}) differ:\n{found}"


def test_a_change_to_one_side_fails_the_comparison() -> None:
    """The comparison is sensitive: a setting, a replica count or a probe changed in the
    chart alone is a difference."""
    kustomize_objects = comparable_kustomize("lab")
    lab = scenario_values("lab")
    for values in (
        {"settings": {"NUM": 26}},
        {"autoscaling": {"minReplicas": 3}},
        {"monitoring": {"prometheus": {"service": {"type": "NodePort", "nodePort": 30178}}}},
        {"networkPolicy": {"enabled": False}},
    ):
        found = differences(comparable_chart(render_values({**lab, **values})), kustomize_objects)
        assert found, f"{values} went unnoticed"
    assert not differences(comparable_chart(render("lab")), kustomize_objects)
    manifests = render("lab")
    deployment = find(manifests, "Deployment", RELEASE)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSeconds"] = 3
    assert differences(comparable_chart(manifests), kustomize_objects)


def test_replica_count_without_the_autoscaler() -> None:
    """replicaCount sets the count only when no autoscaler owns it, and then no autoscaler
    is rendered to fight over it."""
    manifests = render_values({"replicaCount": 3, "autoscaling": {"enabled": False}})
    assert find(manifests, "Deployment", RELEASE)["spec"]["replicas"] == 3
    assert not [m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"]


def test_files_are_links_to_the_single_sources() -> None:
    """The chart's rules and configurations are symbolic links to the files the kustomize
    manifests, the local stack and the rule tests use, never copies."""
    links = {
        "files/prometheus/rules": REPO / "deploy/prometheus/rules",
        "files/prometheus/prometheus.yml": REPO
        / "deploy/kubernetes/components/monitoring/prometheus.yml",
        "files/alertmanager/alertmanager.yml": REPO / "deploy/alertmanager/alertmanager.yml",
        "files/alertmanager/webhook_log.py": REPO / "deploy/alertmanager/webhook_log.py",
        "files/prometheus-adapter/config.yaml": REPO
        / "deploy/kubernetes/overlays/hpa-requests/prometheus-adapter-config.yaml",
    }
    for relative, target in links.items():
        path = CHART_DIR / relative
        assert path.is_symlink(), f"{relative} must link to {target.relative_to(REPO)}"
        assert path.resolve() == target.resolve()
        # Relative, so the link holds in any checkout.
        assert not Path(path.readlink()).is_absolute()
    files = sorted(p.relative_to(CHART_DIR) for p in (CHART_DIR / "files").rglob("*"))
    assert {str(p) for p in files if (CHART_DIR / p).is_symlink()} == set(links)


def test_rules_configmap_holds_every_rule_file() -> None:
    """A rule file added to deploy/prometheus/rules reaches the chart without a listing."""
    rules = find(render("default"), "ConfigMap", "example-service-prometheus-rules")["data"]
    files = (REPO / "deploy/prometheus/rules").glob("*.yml")
    assert rules == {path.name: path.read_text(encoding="utf-8") for path in files}


# ---------------------------------------------------------------------------------------
# Lint and schemas


def test_chart_lints_strictly() -> None:
    report = helm_python.lint(CHART_DIR, strict=True)
    assert report["errors"] == []
    assert report["messages"] == ACCEPTED_LINT_FINDINGS


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_lints_strictly(scenario: str) -> None:
    report = helm_python.lint(CHART_DIR, scenario_values(scenario), strict=True)
    assert report["errors"] == []
    assert report["messages"] == ACCEPTED_LINT_FINDINGS


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_validates_strictly(scenario: str, version: str) -> None:
    failures = []
    for manifest in render(scenario):
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            failures.append(f"{object_key(manifest)}: {path}: {error.message}")
    assert not failures, f"{scenario} against Kubernetes {version}:\n" + "\n".join(failures)


def test_every_values_file_is_a_scenario() -> None:
    files = {path for path in VALUES_DIR.glob("*.yaml")}
    assert files == {s.values_file for s in SCENARIOS.values() if s.values_file is not None}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": "two"}, "at '/replicaCount': got string, want integer"),
        ({"replicas": 2}, "additional properties 'replicas' not allowed"),
        ({"settings": {"NUMBER": 30}}, "additional properties 'NUMBER' not allowed"),
        ({"settings": {"NUM": "thirty"}}, "at '/settings/NUM': got string, want integer"),
        ({"settings": {"PORT": 8080}}, "additional properties 'PORT' not allowed"),
        ({"settings": {"LOG_LEVEL": "verbose"}}, "at '/settings/LOG_LEVEL'"),
        ({"monitoring": {"enabled": "yes"}}, "at '/monitoring/enabled': got string"),
        (
            {"monitoring": {"prometheus": {"service": {"nodeport": 30177}}}},
            "additional properties 'nodeport' not allowed",
        ),
        ({"monitoring": {"prometheus": {"service": {"nodePort": 80}}}}, "nodePort"),
        ({"autoscaling": {"metric": "memory"}}, "at '/autoscaling/metric'"),
        ({"resources": {"limits": {"cpu": None}}}, "missing property 'cpu'"),
        ({"image": {"tag": "1.0.0 "}}, "at '/image/tag'"),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as raised:
        chart().validate_schema(values)
    assert message in str(raised.value)
    # As `helm install` does: the schema is checked before anything renders.
    with pytest.raises(helm_python.HelmValuesError):
        render_values(values)


def test_schema_accepts_every_scenario_and_the_defaults() -> None:
    for scenario in SCENARIOS:
        chart().validate_schema(scenario_values(scenario))


def test_settings_are_the_service_settings() -> None:
    """The values accept exactly the service's own settings (less the chart's), and
    values.yaml names each one a user may add."""
    schema = chart().schema
    assert schema is not None
    accepted = set(schema["properties"]["settings"]["properties"])
    assert accepted == set(ENVIRONMENT_VARIABLES) - CHART_OWNED_SETTINGS
    values_text = (CHART_DIR / "values.yaml").read_text(encoding="utf-8")
    for name in accepted:
        assert re.search(rf"\b{name}\b", values_text), f"values.yaml does not mention {name}"


def test_every_value_is_commented() -> None:
    """Each key of values.yaml has a comment right above it, or sits in a block that has."""
    lines = (CHART_DIR / "values.yaml").read_text(encoding="utf-8").splitlines()
    # (indentation, documented) of the keys enclosing the current line.
    enclosing: list[tuple[int, bool]] = []
    uncommented = []
    for number, line in enumerate(lines):
        key = re.match(r"^( *)([A-Za-z_]+):", line)
        if key is None:
            continue
        indent = len(key.group(1))
        while enclosing and enclosing[-1][0] >= indent:
            enclosing.pop()
        commented = number > 0 and lines[number - 1].lstrip().startswith("#")
        documented = commented or bool(enclosing and enclosing[-1][1])
        if not documented:
            uncommented.append(key.group(2))
        enclosing.append((indent, documented))
    assert not uncommented, f"values.yaml keys without a comment: {uncommented}"


# ---------------------------------------------------------------------------------------
# Chart metadata


def test_chart_metadata_follows_the_package() -> None:
    metadata = chart().metadata
    assert metadata["apiVersion"] == "v2"
    assert metadata["name"] == "example-service"
    assert metadata["appVersion"] == __version__, "appVersion is the package's __version__"
    assert metadata["version"] == __version__, "the chart is released with the service"
    deployment = find(render("default"), "Deployment", RELEASE)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"example-service:{__version__}"


def test_every_object_carries_the_recommended_labels() -> None:
    for manifest in render("default"):
        for where, labels in label_maps(manifest):
            assert labels.get("app.kubernetes.io/name"), f"{object_key(manifest)} {where}"
            assert labels.get("app.kubernetes.io/part-of") == "example-service"
            for name, value in HELM_LABELS.items():
                assert labels.get(name) == value, f"{object_key(manifest)} {where}: {name}"


# ---------------------------------------------------------------------------------------
# Behaviour of the templates beyond the defaults


def references(manifests: list[Manifest]) -> Iterator[tuple[str, str, str]]:
    """(object, kind, name) for each object another one names."""
    for manifest in manifests:
        key = object_key(manifest)
        spec = manifest.get("spec", {})
        if "scaleTargetRef" in spec:
            yield key, spec["scaleTargetRef"]["kind"], spec["scaleTargetRef"]["name"]
        if manifest["kind"] == "RoleBinding":
            yield key, manifest["roleRef"]["kind"], manifest["roleRef"]["name"]
            for subject in manifest["subjects"]:
                yield key, subject["kind"], subject["name"]
        if manifest["kind"] == "ConfigMap" and "prometheus.yml" in manifest["data"]:
            config = yaml.safe_load(manifest["data"]["prometheus.yml"])
            for alertmanagers in config["alerting"]["alertmanagers"]:
                for target in alertmanagers["static_configs"][0]["targets"]:
                    yield key, "Service", target.split(":")[0]
        for _, pod in workloads([manifest]):
            yield from ((key, kind, name) for kind, name in pod_references(pod))


def pod_references(pod: Manifest) -> Iterator[tuple[str, str]]:
    if "serviceAccountName" in pod:
        yield "ServiceAccount", pod["serviceAccountName"]
    for volume in pod.get("volumes", []):
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"]
    for container in pod["containers"]:
        for source in container.get("envFrom", []):
            yield "ConfigMap", source["configMapRef"]["name"]


def test_another_release_name_renames_everything_consistently() -> None:
    """Two releases in one namespace: no shared object name, no shared selector, and every
    reference (ConfigMaps, ServiceAccount, Role, scale target, Prometheus' Alertmanager)
    resolves within its own release."""
    releases = {name: render_values(release=name) for name in ("lab", "staging")}
    names = {}
    for release, manifests in releases.items():
        names[release] = {object_key(m) for m in manifests}
        for key, kind, name in references(manifests):
            assert f"{kind}/{name}" in names[release], f"{release}: {key} names {kind}/{name}"
        for manifest in manifests:
            assert manifest["metadata"]["name"].startswith(f"{release}-example-service")
            for selector in selector_maps(manifest):
                assert selector[HELM_SELECTOR_LABEL] == release
    assert not names["lab"] & names["staging"]
    override = render_values({"fullnameOverride": "fib"}, release="lab")
    assert {m["metadata"]["name"] for m in override} >= {"fib", "fib-prometheus"}


def service_pod(manifests: list[Manifest]) -> Manifest:
    spec: Manifest = find(manifests, "Deployment", RELEASE)["spec"]["template"]
    return spec


def test_a_settings_change_rolls_the_pods() -> None:
    """Helm's counterpart of kustomize's hashed ConfigMap name: the checksum of the
    service's ConfigMap is in its pod template, so a new NUM is a new template."""
    before = service_pod(render("default"))["metadata"]["annotations"][CHECKSUM_ANNOTATION]
    changed = render_values({"settings": {"NUM": 30}})
    after = service_pod(changed)["metadata"]["annotations"][CHECKSUM_ANNOTATION]
    assert before != after
    assert find(changed, "ConfigMap", RELEASE)["data"]["NUM"] == "30"
    # Monitoring's pods do not roll for it.
    prometheus = "example-service-prometheus"
    assert (
        find(changed, "Deployment", prometheus)["spec"]["template"]
        == find(render("default"), "Deployment", prometheus)["spec"]["template"]
    )


def test_knobs_reach_their_fields() -> None:
    manifests = render_values(
        {
            "replicaCount": 3,
            "image": {"repository": "registry.example.org/example-service", "tag": "1.0.1"},
            "settings": {"NUM": 30, "ACCESS_LOG": False, "DRAIN_DELAY": 2.5, "LOG_LEVEL": None},
            "resources": {"limits": {"cpu": "2"}},
            "service": {"type": "NodePort", "port": 8080},
            "podDisruptionBudget": {"maxUnavailable": "25%"},
            "autoscaling": {"minReplicas": 3, "maxReplicas": 10},
            "monitoring": {
                "prometheus": {"service": {"type": "ClusterIP"}, "retention": {"time": "7d"}}
            },
        }
    )
    deployment = find(manifests, "Deployment", RELEASE)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "replicas" not in deployment["spec"], "with autoscaling on, the autoscaler owns it"
    assert container["image"] == "registry.example.org/example-service:1.0.1"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "256Mi"}
    assert find(manifests, "ConfigMap", RELEASE)["data"] == {
        "NUM": "30",
        "ACCESS_LOG": "false",
        "DRAIN_DELAY": "2.5",
        "SHUTDOWN_TIMEOUT": "10",
    }
    service = find(manifests, "Service", RELEASE)["spec"]
    assert (service["type"], service["ports"][0]["port"]) == ("NodePort", 8080)
    pdb = find(manifests, "PodDisruptionBudget", RELEASE)["spec"]
    assert pdb["maxUnavailable"] == "25%"
    hpa = find(manifests, "HorizontalPodAutoscaler", RELEASE)["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    prometheus = find(manifests, "Service", "example-service-prometheus")["spec"]
    assert prometheus["type"] == "ClusterIP"
    assert "nodePort" not in prometheus["ports"][0]
    (prometheus_container,) = find(manifests, "Deployment", "example-service-prometheus")["spec"][
        "template"
    ]["spec"]["containers"]
    assert "--storage.tsdb.retention.time=7d" in prometheus_container["args"]
    # The sidecar runs the service's image, retagged with it.
    alertmanager = find(manifests, "Deployment", "example-service-alertmanager")
    sidecar = alertmanager["spec"]["template"]["spec"]["containers"][1]
    assert sidecar["image"] == container["image"]
    # Autoscaling off: no autoscaler; the replica count is the Deployment's own.
    assert not [
        m
        for m in render_values({"autoscaling": {"enabled": False}})
        if m["kind"] == "HorizontalPodAutoscaler"
    ]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"terminationGracePeriodSeconds": 17},
            "terminationGracePeriodSeconds 17 is shorter than DRAIN_DELAY (5) + "
            "SHUTDOWN_TIMEOUT (10) + 3 s to exit: raise it to at least 18",
        ),
        ({"settings": {"DRAIN_DELAY": 30}}, "raise it to at least 43"),
        ({"autoscaling": {"minReplicas": 7}}, "minReplicas (7) is above"),
    ],
)
def test_inconsistent_values_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmRenderError) as raised:
        render_values(values)
    assert message in str(raised.value)


def test_grace_period_check_uses_the_service_defaults() -> None:
    """Unset, DRAIN_DELAY and SHUTDOWN_TIMEOUT are the service's own defaults, and the
    chart's check assumes the same ones."""
    defaults = Settings()
    needed = defaults.drain_delay + defaults.shutdown_timeout + 3
    unset = {"DRAIN_DELAY": None, "SHUTDOWN_TIMEOUT": None}
    render_values({"settings": unset, "terminationGracePeriodSeconds": int(needed)})
    with pytest.raises(helm_python.HelmRenderError):
        render_values({"settings": unset, "terminationGracePeriodSeconds": int(needed) - 1})


# ---------------------------------------------------------------------------------------
# Packaging


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `make chart` runs, into a temporary directory."""
    destination = tmp_path_factory.mktemp("chart")
    completed = subprocess.run(
        [sys.executable, str(REPO / "tools" / "package_chart.py"), "--destination", destination],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    archive = Path(completed.stdout.strip())
    assert archive == destination / f"example-service-{__version__}.tgz"
    assert archive.is_file()
    return archive


def linked_files() -> dict[str, bytes]:
    """Every file under the chart's files/, links followed: archive name -> contents."""
    found = {}
    for directory, _, names in os.walk(CHART_DIR / "files", followlinks=True):
        for name in names:
            path = Path(directory) / name
            found[f"example-service/{path.relative_to(CHART_DIR)}"] = path.read_bytes()
    return found


def test_package_holds_the_files_themselves(packaged: Path) -> None:
    expected = linked_files()
    assert len([n for n in expected if "/rules/" in n]) >= 2, "the rule files are reached"
    with tarfile.open(packaged) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert all(m.isfile() for m in members.values()), "links resolved, not archived"
        packaged_files = {n for n in members if n.startswith("example-service/files/")}
        assert packaged_files == set(expected)
        for name, contents in expected.items():
            extracted = archive.extractfile(members[name])
            assert extracted is not None
            assert extracted.read() == contents, name


def test_package_loads_and_renders_as_the_directory(packaged: Path) -> None:
    with helm_python.Chart.load(packaged) as loaded:
        assert loaded.metadata["version"] == __version__
        for scenario in SCENARIOS:
            values = scenario_values(scenario)
            assert render_values(values, source=loaded) == render(scenario), scenario


def test_package_refuses_a_chart_that_fails_lint(tmp_path: Path) -> None:
    """`make chart` lints first: a broken template stops it with Helm's own finding."""
    helm_python.Chart.load(CHART_DIR).save_dir(tmp_path)
    broken = tmp_path / "example-service"
    (broken / "templates" / "service.yaml").write_text("{{ .Values.service.port \n", "utf-8")
    with pytest.raises(ChartLintError, match=r"templates/service\.yaml"):
        lint(broken)
    assert lint() == [f"[INFO] {m['path']}: {m['error']}" for m in ACCEPTED_LINT_FINDINGS]


# ---------------------------------------------------------------------------------------
# Everyday settings (podinfo's chart has them; values.schema.json accepts each)

DIGEST = "sha256:" + "0123456789abcdef" * 4
ABC_REPLY = "there is env NUM. Computation succeeded\n"


def kinds(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def hook(manifests: list[Manifest]) -> Manifest:
    (pod,) = [m for m in kinds(manifests, "Pod") if HOOK_ANNOTATION in m["metadata"]["annotations"]]
    return pod


def pods_running_the_image(manifests: list[Manifest]) -> dict[str, Manifest]:
    """Pod spec by object, of every pod one of whose containers runs the service's image."""
    return {
        object_key(manifest): spec
        for manifest, spec in workloads(manifests)
        if any(c["image"].startswith("example-service") for c in spec["containers"])
    }


def test_image_digest_pins_every_container_of_the_image() -> None:
    manifests = render_values({"image": {"digest": DIGEST}})
    pods = pods_running_the_image(manifests)
    assert set(pods) == {
        f"Deployment/{RELEASE}",
        "Deployment/example-service-alertmanager",
        "Pod/example-service-test",
    }
    for key, spec in pods.items():
        images = {c["image"] for c in spec["containers"] if "alertmanager:" not in c["image"]}
        assert images == {f"example-service@{DIGEST}"}, key


def test_image_pull_secrets_reach_every_pod_of_the_image() -> None:
    secrets = [{"name": "registry-credentials"}]
    manifests = render_values({"imagePullSecrets": secrets})
    for key, spec in pods_running_the_image(manifests).items():
        assert spec["imagePullSecrets"] == secrets, key
    prometheus = find(manifests, "Deployment", "example-service-prometheus")
    assert "imagePullSecrets" not in prometheus["spec"]["template"]["spec"]
    for spec in pods_running_the_image(render("default")).values():
        assert "imagePullSecrets" not in spec


def test_service_account() -> None:
    """None by default; created with its name and annotations, or an existing one named; the
    token mounted only when asked for."""
    pod = service_pod(render("default"))["spec"]
    assert "serviceAccountName" not in pod
    assert pod["automountServiceAccountToken"] is False
    assert [a["metadata"]["name"] for a in kinds(render("default"), "ServiceAccount")] == [
        "example-service-prometheus"
    ]

    annotations = {"iam.gke.io/gcp-service-account": "fib@project.iam.gserviceaccount.com"}
    created = render_values({"serviceAccount": {"create": True, "annotations": annotations}})
    account = find(created, "ServiceAccount", RELEASE)
    assert account["metadata"]["annotations"] == annotations
    assert account["automountServiceAccountToken"] is False
    pod = service_pod(created)["spec"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == (RELEASE, False)

    named = render_values(
        {"serviceAccount": {"create": True, "name": "fib", "automountServiceAccountToken": True}}
    )
    assert find(named, "ServiceAccount", "fib")["automountServiceAccountToken"] is True
    pod = service_pod(named)["spec"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("fib", True)

    existing = render_values({"serviceAccount": {"name": "theirs"}})
    assert service_pod(existing)["spec"]["serviceAccountName"] == "theirs"
    assert not [a for a in kinds(existing, "ServiceAccount") if a["metadata"]["name"] == "theirs"]


def test_scheduling_annotations_labels_and_environment() -> None:
    values: dict[str, Any] = {
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "lab", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "lab", "operator": "Exists"}]}
                    ]
                }
            }
        },
        "podAnnotations": {"example.org/owner": "lab-team"},
        "podLabels": {"team": "lab"},
        "extraEnv": [
            {"name": "TZ", "value": "UTC"},
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
        ],
    }
    manifests = render_values(values)
    template = service_pod(manifests)
    spec = template["spec"]
    assert spec["nodeSelector"] == values["nodeSelector"]
    assert spec["tolerations"] == values["tolerations"]
    assert spec["affinity"] == values["affinity"]
    assert template["metadata"]["annotations"]["example.org/owner"] == "lab-team"
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert template["metadata"]["labels"]["team"] == "lab"
    # Labels added to pods never select: the selectors stay the chart's.
    deployment = find(manifests, "Deployment", RELEASE)
    assert "team" not in deployment["spec"]["selector"]["matchLabels"]
    assert "team" not in find(manifests, "Service", RELEASE)["spec"]["selector"]
    (container,) = spec["containers"]
    assert container["env"][-2:] == values["extraEnv"]
    assert container["env"][0] == {"name": "PORT", "value": "5565"}
    # None of it reaches the monitoring pods.
    alertmanager = find(manifests, "Deployment", "example-service-alertmanager")
    assert "nodeSelector" not in alertmanager["spec"]["template"]["spec"]
    assert "team" not in alertmanager["spec"]["template"]["metadata"]["labels"]
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)


def test_resources_reach_the_container() -> None:
    resources = {
        "requests": {"cpu": "500m", "memory": "192Mi"},
        "limits": {"cpu": "2", "memory": "512Mi"},
    }
    (container,) = service_pod(render_values({"resources": resources}))["spec"]["containers"]
    assert container["resources"] == resources


def test_ingress() -> None:
    assert not kinds(render("default"), "Ingress")
    values = {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-read-timeout": "30"},
            "hosts": [
                {"host": "fib.example.org", "paths": [{"path": "/", "pathType": "Prefix"}]},
                {"host": "", "paths": [{"path": "/abc", "pathType": "Exact"}]},
            ],
            "tls": [{"secretName": "fib-tls", "hosts": ["fib.example.org"]}],
        }
    }
    (ingress,) = kinds(render_values(values), "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["metadata"]["annotations"] == values["ingress"]["annotations"]
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == values["ingress"]["tls"]
    backend = {"service": {"name": RELEASE, "port": {"name": "http"}}}
    assert spec["rules"] == [
        {
            "host": "fib.example.org",
            "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]},
        },
        {"http": {"paths": [{"path": "/abc", "pathType": "Exact", "backend": backend}]}},
    ]
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(ingress, version, strict=True)
    # The class is the cluster's default when not given.
    (plain,) = kinds(render_values({"ingress": {"enabled": True}}), "Ingress")
    assert "ingressClassName" not in plain["spec"]


@pytest.mark.parametrize("kind", ["PodMonitor", "ServiceMonitor"])
def test_operator_monitors(kind: str) -> None:
    """Either monitor scrapes the service's pods with the operator overlay's relabelling; with
    the chart's monitoring off it takes the scrape annotations away (one scrape per pod by an
    operator's Prometheus), with it on they stay (the chart's Prometheus discovers by them)."""
    value = kind[0].lower() + kind[1:]
    enabled = {value: {"enabled": True, "labels": {"release": "kps"}}}
    alongside = service_pod(render_values(enabled))["metadata"]["annotations"]
    assert alongside["prometheus.io/scrape"] == "true"
    manifests = render_values({**enabled, "monitoring": {"enabled": False}})
    monitor = find(manifests, kind, RELEASE)
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert (
        monitor["spec"]["selector"]["matchLabels"]
        == find(manifests, "Deployment", RELEASE)["spec"]["selector"]["matchLabels"]
    )
    operator = find(render_kustomize("operator"), "PodMonitor", "example-service")
    (theirs,) = operator["spec"]["podMetricsEndpoints"]
    (ours,) = monitor["spec"]["podMetricsEndpoints" if kind == "PodMonitor" else "endpoints"]
    assert ours["relabelings"][:2] == theirs["relabelings"][:2]
    assert ours["port"] == "http"
    annotations = service_pod(manifests)["metadata"]["annotations"]
    assert not [name for name in annotations if name.startswith("prometheus.io/")]
    assert not kinds(render("default"), kind)


def test_test_hook_gets_abc_through_the_service(start_service: StartService) -> None:
    """`helm test`'s pod asks the Service for /abc: its command, run against the real service
    with the URL's host swapped for the service's address, passes on the lab's reply and
    fails on another one."""
    manifests = render("default")
    pod = hook(manifests)
    assert pod["metadata"]["annotations"][HOOK_ANNOTATION] == "test"
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    service = find(manifests, "Service", RELEASE)
    assert env["URL"] == f"http://{RELEASE}:{service['spec']['ports'][0]['port']}/abc"
    assert env["REPLY"] == ABC_REPLY
    assert container["image"] == f"example-service:{__version__}"
    command = [sys.executable, *container["command"][1:]]
    unset = hook(render_values({"settings": {"NUM": None}}))["spec"]["containers"][0]
    assert {e["name"]: e["value"] for e in unset["env"]}["REPLY"] == ABC_REPLY.replace(
        "is env", "is no env"
    )
    url = f"{start_service(env={'NUM': '25'}).url}/abc"
    passed = subprocess.run(
        command, env={**env, "URL": url}, capture_output=True, text=True, timeout=60, check=False
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr
    failed = subprocess.run(
        command, env={**env, "URL": url, "REPLY": "x"}, capture_output=True, timeout=60, check=False
    )
    assert failed.returncode != 0


def notes(values: dict[str, Any] | None = None) -> str:
    rendered = chart().render(values=values, name=RELEASE, namespace="lab")
    return str(rendered[next(path for path in rendered if path.endswith("NOTES.txt"))])


def test_notes_say_how_to_reach_the_service_and_prometheus() -> None:
    default = notes()
    assert "kubectl port-forward -n lab svc/example-service 8080:80" in default
    assert "curl localhost:8080/abc" in default
    assert "kubectl port-forward -n lab svc/example-service-prometheus 9090" in default
    assert "helm test example-service -n lab" in default
    assert "http://NODE_IP:30177/" in notes(scenario_values("lab"))
    ingress = notes(
        {
            "ingress": {
                "enabled": True,
                "hosts": [
                    {"host": "fib.example.org", "paths": [{"path": "/", "pathType": "Prefix"}]}
                ],
                "tls": [{"secretName": "fib-tls", "hosts": ["fib.example.org"]}],
            }
        }
    )
    assert "curl https://fib.example.org/abc" in ingress
    assert "Prometheus" not in notes(scenario_values("monitoring-off"))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"image": {"digest": "sha256:abc"}}, "at '/image/digest'"),
        ({"imagePullSecrets": ["registry-credentials"]}, "at '/imagePullSecrets/0'"),
        ({"serviceAccount": {"token": True}}, "additional properties 'token' not allowed"),
        ({"extraEnv": [{"name": "PORT", "value": "8080"}]}, "at '/extraEnv/0/name'"),
        ({"podLabels": {"app.kubernetes.io/name": "x"}}, "at '/podLabels'"),
        ({"tolerations": [{"operator": "Maybe"}]}, "at '/tolerations/0/operator'"),
        ({"ingress": {"hosts": [{"host": "fib.example.org"}]}}, "missing property 'paths'"),
        ({"networkPolicy": {"enabled": "no"}}, "at '/networkPolicy/enabled'"),
        ({"serviceMonitor": {"enabled": True, "interval": "5s"}}, "'interval' not allowed"),
    ],
)
def test_schema_rejects_bad_everyday_values(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as raised:
        chart().validate_schema(values)
    assert message in str(raised.value)
