"""Lint the Helm chart strictly, then package it into a .tgz, with Helm's own engine.

helm-python-sdk carries Helm v4 as a library, so no helm binary is needed. The chart's files/
are symbolic links to the repository's own rules and configurations (see the chart's
README): Helm's loader follows them, so the archive holds those files themselves and installs
anywhere. Helm logs each link it follows ("found symbolic link in path"): that is expected.

    make chart                                   # dist/example-service-VERSION.tgz
    python tools/package_chart.py --destination DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import helm_python

REPO = Path(__file__).resolve().parents[1]
CHART_DIR = REPO / "deploy" / "helm" / "example-service"
DESTINATION = REPO / "dist"

# helm_python.lint's severities: 1 info, 2 warning, 3 error. --strict fails on warnings too.
_SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
_FAILING = 2


def lint(chart_dir: Path = CHART_DIR) -> list[str]:
    """`helm lint --strict` of a chart: its findings, or ChartLintError if any fails it."""
    report = helm_python.lint(chart_dir, strict=True)
    findings = [
        f"[{_SEVERITY.get(m['severity'], m['severity'])}] {m['path']}: {m['error'].strip()}"
        for m in report["messages"]
    ]
    failing = [m for m in report["messages"] if m["severity"] >= _FAILING] or report["errors"]
    if failing:
        raise ChartLintError("\n".join(findings or report["errors"]))
    return findings


class ChartLintError(Exception):
    """The chart has lint warnings or errors."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--destination",
        type=Path,
        default=DESTINATION,
        help=f"directory for the .tgz (default: {DESTINATION.relative_to(REPO)})",
    )
    args = parser.parse_args(argv)
    try:
        findings = lint()
    except ChartLintError as error:
        sys.stderr.write(f"{CHART_DIR.relative_to(REPO)} fails helm lint --strict:\n{error}\n")
        return 1
    for finding in findings:
        sys.stderr.write(f"{finding}\n")
    args.destination.mkdir(parents=True, exist_ok=True)
    sys.stdout.write(helm_python.package(CHART_DIR, destination=args.destination) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
