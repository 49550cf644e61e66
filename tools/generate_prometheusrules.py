"""Build the operator overlay's PrometheusRule objects from deploy/prometheus/rules/*.yml.

prometheus-operator wants rules as PrometheusRule objects (spec.groups holds what a rule file
holds), while the rule files are the single source used by the local stack, the in-cluster
ConfigMap and the rule unit tests. Kustomize cannot do this step: it can put a file into a
ConfigMap as a string, but it cannot parse a file into a structured field. So the overlay
carries a generated file, and tests/deploy/test_kubernetes_manifests.py fails whenever it
differs from what this module generates from the current rule files.

    make prometheusrules          # rewrite the file
    python tools/generate_prometheusrules.py --check  # exit 1 if stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
OUTPUT = REPO / "deploy" / "kubernetes" / "overlays" / "operator" / "prometheusrules.yaml"

HEADER = """\
# GENERATED from deploy/prometheus/rules/*.yml: do not edit. Edit the rule files, then run
#   make prometheusrules
# (make test fails while this file and the rule files differ). One PrometheusRule per rule
# file; kube-prometheus-stack selects rules by label (its release label by default), so add
# that label in your own overlay if your Prometheus needs it.
"""


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (expressions, descriptions) stay readable as literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def prometheus_rule(rule_file: Path) -> dict[str, Any]:
    groups = yaml.safe_load(rule_file.read_text(encoding="utf-8"))["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            # Rule file names are already prefixed (example-service-alerts.yml).
            "name": rule_file.stem,
            "labels": {
                "app.kubernetes.io/name": "example-service",
                "app.kubernetes.io/part-of": "example-service",
            },
        },
        "spec": {"groups": groups},
    }


def render() -> str:
    documents = [prometheus_rule(path) for path in rule_files()]
    body = yaml.dump_all(
        documents,
        Dumper=_BlockDumper,
        sort_keys=False,
        explicit_start=True,
        # No folding: an expression reads as one line, as in the rule file.
        width=1 << 16,
        allow_unicode=True,
    )
    return HEADER + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    expected = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != expected:
            sys.stderr.write(f"{OUTPUT.relative_to(REPO)} is stale: run {__file__}\n")
            return 1
        return 0
    OUTPUT.write_text(expected, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
