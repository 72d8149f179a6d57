"""deploy/grafana: the dashboard's PromQL reads only what the code exports (or what the
recording rules record), parses with promtool, and every exported engine metric is
drawn or alerted on: the dashboard cannot drift from engine/metrics.py and
engine/radio/metrics.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prom_helpers import (
    DEPLOY,
    RULE_FILES,
    exported_series_names,
    promql_metric_names,
    promtool,
    recording_rule_names,
    run,
)

pytestmark = pytest.mark.unit

GRAFANA = DEPLOY / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

# Grafana's variables, replaced by values a plain PromQL parser accepts.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${area}": ".*",
    "$area": ".*",
    "${priority}": ".*",
    "$priority": ".*",
}
_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<expr>.+),\s*)?(?P<label>\w+)\)$")


def _dashboard(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows
    return out


def _substitute(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    out = []
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            out.append((f"panel {panel['id']} {panel['title']!r}", _substitute(target["expr"])))
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = _LABEL_VALUES.match(query.strip())
        assert match and match["expr"], f"variable {var['name']}: {query}"
        out.append((f"variable {var['name']}", _substitute(match["expr"])))
    return out


@pytest.fixture(scope="module", params=DASHBOARDS, ids=lambda p: p.name)
def dashboard(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _dashboard(request.param)


def test_there_is_a_dashboard() -> None:
    assert [p.name for p in DASHBOARDS] == ["engine.json"]


def test_every_query_reads_exported_metrics(dashboard: dict[str, Any]) -> None:
    known = set(exported_series_names()) | recording_rule_names()
    for where, expr in _queries(dashboard):
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        assert names <= known, f"{where}: {sorted(names - known)} not exported by the code"


def test_every_query_parses_with_promtool(dashboard: dict[str, Any], tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr}
        for i, (_, expr) in enumerate(_queries(dashboard))
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    code, out = run(promtool(), "check", "rules", str(path))
    assert code == 0, out
    assert f"SUCCESS: {len(rules)} rules found" in out


def test_every_engine_metric_is_drawn_or_alerted(dashboard: dict[str, Any]) -> None:
    used = {n for _, expr in _queries(dashboard) for n in promql_metric_names(expr)}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                used |= promql_metric_names(rule["expr"])
    families = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for name in exported_series_names()
        if name.startswith("engine_") and not name.endswith("_created")
    }
    used_families = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in used}
    assert families - used_families == set()


def test_panels_cover_the_issue(dashboard: dict[str, Any]) -> None:
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    titles = " | ".join(p["title"] for p in panels).lower()
    for words in ("p50/p90/p99", "heatmap", "by area", "call-outs vs acks", "escalations",
                  "modem link", "consumer lag", "dead letters"):  # fmt: skip
        assert words in titles, words
    heatmaps = [p for p in panels if p["type"] == "heatmap"]
    assert heatmaps and all(t.get("format") == "heatmap" for p in heatmaps for t in p["targets"])
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["description"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert [t["refId"] for t in panel["targets"]] == [
            chr(65 + i) for i in range(len(panel["targets"]))
        ]


def test_no_unbounded_labels_in_queries(dashboard: dict[str, Any]) -> None:
    for where, expr in _queries(dashboard):
        for forbidden in ("incident_id", "radio_id", "volunteer"):
            assert forbidden not in expr, where


def test_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (ds,) = datasources["datasources"]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA / "provisioning/dashboards/engine.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
