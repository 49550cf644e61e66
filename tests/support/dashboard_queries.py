"""Every PromQL expression of the Grafana dashboard, ready to send to a real Prometheus.

Grafana substitutes its variables before a query leaves the browser; this module does the
same with fixed values, so that the unit tests can parse the expressions and the
end-to-end test can run them against the real Prometheus:

    from support.dashboard_queries import dashboard_queries
    for query in dashboard_queries():
        ...  # GET /api/v1/query?query=<query.expr>; query.panel names it in messages

Template variable queries (`label_values(metric, label)`) are Grafana functions, not
PromQL; `variable_queries()` returns the PromQL they amount to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "example-service.json"

# Grafana's built-in interval variables, at values that suit short test runs: with a 1s to
# 15s scrape interval a 1m window always holds at least two samples, which rate() needs.
BUILTIN_VALUES: dict[str, str] = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

# $name, ${name}, ${name:format} and the deprecated [[name]] / [[name:format]].
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*?)\s*,\s*)?(\w+)\s*\)\s*$", re.DOTALL)


@dataclass(frozen=True)
class DashboardQuery:
    """One PromQL expression of the dashboard, with where it comes from."""

    panel: str
    ref_id: str
    expr: str
    raw: str


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return dashboard


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels folded inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def default_values(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """The built-in variables, and ".*" for each of the dashboard's own variables.

    The dashboard uses its variables only in regex matchers (=~), where ".*" selects
    everything, as Grafana's "All" does.
    """
    values = dict(BUILTIN_VALUES)
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "datasource":
            values[variable["name"]] = ".*"
    return values


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace every Grafana variable in expr; unknown variables raise KeyError."""

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group is not None)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


def dashboard_queries(
    path: Path = DASHBOARD, values: Mapping[str, str] | None = None
) -> list[DashboardQuery]:
    """Every panel target's expression, variables substituted.

    values overrides or extends the defaults (e.g. {"job": "example-service"}).
    """
    dashboard = load_dashboard(path)
    merged = default_values(dashboard) | dict(values or {})
    queries = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            raw = target.get("expr", "")
            queries.append(
                DashboardQuery(
                    panel=panel.get("title", ""),
                    ref_id=target.get("refId", ""),
                    expr=substitute(raw, merged),
                    raw=raw,
                )
            )
    return queries


def variable_queries(
    path: Path = DASHBOARD, values: Mapping[str, str] | None = None
) -> list[DashboardQuery]:
    """The PromQL equivalent of each `label_values(selector, label)` variable query.

    `label_values(sel, label)` lists the values of label over the series sel selects,
    which is what `group by (label) (sel)` returns.
    """
    dashboard = load_dashboard(path)
    merged = default_values(dashboard) | dict(values or {})
    queries = []
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        raw = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = _LABEL_VALUES.match(raw)
        if match is None:
            raise ValueError(f"variable {variable['name']}: unsupported query {raw!r}")
        selector, label = match.group(1), match.group(2)
        if not selector:
            # label_values(label) without a selector spans every series: so does this.
            selector = '{__name__=~".+"}'
        queries.append(
            DashboardQuery(
                panel=f"variable {variable['name']}",
                ref_id=variable["name"],
                expr=substitute(f"group by ({label}) ({selector})", merged),
                raw=raw,
            )
        )
    return queries
