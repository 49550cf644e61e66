"""The NetworkPolicies, read as a cluster enforces them, against the matrix of who may reach
what (docs/kubernetes.md, "Network policy").

Every render users apply (the kustomize overlays, the chart's scenarios) is evaluated the
way Kubernetes defines NetworkPolicy ingress: a pod that no policy selects takes every
connection; a selected pod takes one only if a rule of a policy selecting it admits the
source and the port. The sources are the rendered pods themselves (their template labels),
another application's pod in the namespace, prometheus-adapter's pod, a pod of another
namespace carrying the same labels as ours, and a client outside the cluster (a node port's).
The destinations are every declared container port of every rendered pod. Each
(source, destination, port) must be allowed exactly when the matrix says so: every flow in it
works, and nothing else does. The kubelet's probes come from the node, which NetworkPolicy
always admits, so they are not part of the matrix.

Only the parts of the API the policies use are evaluated (podSelector peers, numbered or
named ports); anything else (ipBlock, namespaceSelector, matchExpressions, egress) fails the
test, so that a policy using it is not silently misread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from helm_render import SCENARIOS, render_values
from helm_render import render as render_chart
from kustomize_render import OVERLAYS, Manifest, containers, workloads
from kustomize_render import render as render_kustomize

NAME = "app.kubernetes.io/name"
SAME, OTHER, OUTSIDE = "this namespace", "another namespace", "outside the cluster"


@dataclass(frozen=True)
class Source:
    name: str
    labels: dict[str, str]
    where: str


@dataclass(frozen=True)
class Destination:
    name: str  # the pod's app.kubernetes.io/name
    labels: dict[str, str]
    port: int
    port_name: str | None


# The matrix, by app.kubernetes.io/name: (source, destination, port) allowed. "*" is every
# source, outside the cluster included.
SERVICE_CLIENTS = ("*", "example-service", 5565)
SCRAPE = ("prometheus", "example-service", 5565)
ALERTS = ("prometheus", "alertmanager", 9093)
PROMETHEUS_UI = ("*", "prometheus", 9090)
ADAPTER_QUERIES = ("prometheus-adapter", "prometheus", 9090)

BASE = {SERVICE_CLIENTS, SCRAPE}
MONITORING = {*BASE, ALERTS}
KUSTOMIZE_MATRIX = {
    "base": BASE,
    "operator": BASE,
    "lab": {*MONITORING, PROMETHEUS_UI},
    "host-sysfs": MONITORING,
    "hpa-requests": {*MONITORING, ADAPTER_QUERIES},
}
CHART_MATRIX = {
    "default": MONITORING,
    "lab": {*MONITORING, PROMETHEUS_UI},
    "monitoring-off": BASE,
    "host-sysfs": MONITORING,
    "hpa-requests": {*MONITORING, ADAPTER_QUERIES},
}


def sources(manifests: list[Manifest]) -> list[Source]:
    """The rendered pods, and the pods and clients that are not ours."""
    ours = [Source(labels[NAME], labels, SAME) for labels in pod_labels(manifests)]
    prometheus = next((s for s in ours if s.name == "prometheus"), None)
    strangers = [
        Source("another application", {NAME: "another-application"}, SAME),
        Source("prometheus-adapter", {NAME: "prometheus-adapter"}, SAME),
        Source("a client outside the cluster", {}, OUTSIDE),
    ]
    if prometheus is not None:
        # A podSelector alone selects in the policy's namespace only.
        strangers.append(Source("prometheus", prometheus.labels, OTHER))
    return ours + strangers


def pod_labels(manifests: list[Manifest]) -> list[dict[str, str]]:
    found = []
    for manifest, _ in workloads(manifests):
        metadata = (
            manifest["metadata"]
            if manifest["kind"] == "Pod"
            else manifest["spec"]["template"]["metadata"]
        )
        found.append(dict(metadata["labels"]))
    return found


def destinations(manifests: list[Manifest]) -> list[Destination]:
    found = []
    for manifest, spec in workloads(manifests):
        labels = (
            manifest["metadata"]
            if manifest["kind"] == "Pod"
            else manifest["spec"]["template"]["metadata"]
        )["labels"]
        for container in containers(spec):
            for port in container.get("ports", []):
                assert port.get("protocol", "TCP") == "TCP"
                found.append(
                    Destination(labels[NAME], labels, port["containerPort"], port.get("name"))
                )
    return found


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"not evaluated here: {selector}"
    return selector.get("matchLabels", {}).items() <= labels.items()


def peer_admits(peer: dict[str, Any], source: Source) -> bool:
    assert set(peer) == {"podSelector"}, f"not evaluated here: {peer}"
    return source.where == SAME and selects(peer["podSelector"], source.labels)


def port_admits(entry: dict[str, Any], destination: Destination) -> bool:
    assert set(entry) <= {"port", "protocol"}, f"not evaluated here: {entry}"
    if entry.get("protocol", "TCP") != "TCP":
        return False
    port = entry.get("port")
    if port is None:
        return True
    if isinstance(port, str):
        return port == destination.port_name
    return bool(port == destination.port)


def rule_admits(rule: dict[str, Any], source: Source, destination: Destination) -> bool:
    peers = rule.get("from") or []
    ports = rule.get("ports") or []
    from_ok = not peers or any(peer_admits(peer, source) for peer in peers)
    port_ok = not ports or any(port_admits(entry, destination) for entry in ports)
    return from_ok and port_ok


def allowed(policies: list[Manifest], source: Source, destination: Destination) -> bool:
    selecting = []
    for policy in policies:
        spec = policy["spec"]
        assert spec.get("policyTypes") == ["Ingress"], f"{policy['metadata']['name']}: {spec}"
        if selects(spec["podSelector"], destination.labels):
            selecting.append(spec)
    if not selecting:
        return True  # not isolated
    return any(
        rule_admits(rule, source, destination)
        for spec in selecting
        for rule in spec.get("ingress", [])
    )


def expected(matrix: set[tuple[str, str, int]], source: Source, destination: Destination) -> bool:
    flow = (destination.name, destination.port)
    if ("*", *flow) in matrix:
        return True
    return source.where == SAME and (source.name, *flow) in matrix


def mismatches(manifests: list[Manifest], matrix: set[tuple[str, str, int]]) -> list[str]:
    policies = [m for m in manifests if m["kind"] == "NetworkPolicy"]
    found = []
    for source in sources(manifests):
        for destination in destinations(manifests):
            want = expected(matrix, source, destination)
            if allowed(policies, source, destination) != want:
                verdict = "refused" if want else "allowed"
                found.append(
                    f"{source.name} ({source.where}) -> {destination.name}:{destination.port} "
                    f"is {verdict}"
                )
    # Every flow of the matrix has a destination: a misspelt one checks nothing.
    names = {(d.name, d.port) for d in destinations(manifests)}
    found += [f"no pod listens for {flow}" for flow in matrix if flow[1:] not in names]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomize_policies_allow_the_matrix_and_nothing_else(overlay: str) -> None:
    found = mismatches(render_kustomize(overlay), KUSTOMIZE_MATRIX[overlay])
    assert not found, f"{overlay}:\n" + "\n".join(found)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chart_policies_allow_the_matrix_and_nothing_else(scenario: str) -> None:
    found = mismatches(render_chart(scenario), CHART_MATRIX[scenario])
    assert not found, f"{scenario}:\n" + "\n".join(found)


def test_the_matrix_check_sees_a_missing_or_a_wider_policy() -> None:
    """Without the policies everything is allowed; an extra allow-all is a finding too."""
    manifests = render_kustomize("lab")
    bare = [m for m in manifests if m["kind"] != "NetworkPolicy"]
    assert "another application (this namespace) -> alertmanager:5001 is allowed" in mismatches(
        bare, KUSTOMIZE_MATRIX["lab"]
    )
    wide = {
        "kind": "NetworkPolicy",
        "metadata": {"name": "wide"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
    }
    found = mismatches([*manifests, wide], KUSTOMIZE_MATRIX["lab"])
    assert "prometheus (another namespace) -> alertmanager:9093 is allowed" in found
    # A flow of the matrix refused: Prometheus' alerts, with the Alertmanager policy's port
    # changed.
    for manifest in manifests:
        if manifest["kind"] == "NetworkPolicy" and manifest["metadata"]["name"] == "alertmanager":
            manifest["spec"]["ingress"][0]["ports"][0]["port"] = 9094
    found = mismatches(manifests, KUSTOMIZE_MATRIX["lab"])
    assert found == ["prometheus (this namespace) -> alertmanager:9093 is refused"]


def test_chart_policies_turn_off() -> None:
    manifests = render_values({"networkPolicy": {"enabled": False}})
    assert not [m for m in manifests if m["kind"] == "NetworkPolicy"]


def test_chart_policies_keep_to_their_release() -> None:
    """Two releases in one namespace: each release's policies select its own pods and admit
    its own Prometheus, not the other release's."""
    lab = render_values(release="lab")
    staging = render_values(release="staging")
    policies = [m for m in lab if m["kind"] == "NetworkPolicy"]
    theirs = {labels[NAME]: labels for labels in pod_labels(staging)}
    # Not ours to decide: no lab policy selects staging's pods...
    assert not [p for p in policies if selects(p["spec"]["podSelector"], theirs["alertmanager"])]
    # ...and staging's Prometheus is no source that lab's Alertmanager admits.
    ours = {labels[NAME]: labels for labels in pod_labels(lab)}
    mine = Destination("alertmanager", ours["alertmanager"], 9093, "web")
    stranger = Source("prometheus", theirs["prometheus"], SAME)
    assert not allowed(policies, stranger, mine)
    assert allowed(policies, Source("prometheus", ours["prometheus"], SAME), mine)
